"""Every store test runs on SQLite and on PostgreSQL.

PostgreSQL: ``MSSANTE_TEST_POSTGRES_URL`` (default the local trust-auth server).
Each test gets a fresh schema, dropped afterwards. When the server cannot be
reached the PostgreSQL cases skip, unless ``MSSANTE_REQUIRE_POSTGRES`` is set:
then they fail.

``database`` is empty (the migration tests start there); ``store`` opens it migrated to
the head. On SQLite that database is a copy of one migrated once per run: opening it
then finds the head and migrates nothing, as every later start of an operator does
(tests/store/test_migrations.py opens empty databases itself).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import POSTGRES_URL, postgres_schema

from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.store import Store, open_store

DOMAIN = "ch-xyz.mssante.fr"
RULES = Rules()
SQLITE = "sqlite+aiosqlite:///"
_MIGRATED: list[Path] = []  # the run's SQLite database migrated to the head, once made


@dataclass
class Database:
    """One empty database (a SQLite file, or a PostgreSQL schema) to open stores on."""

    engine: str  # "sqlite" | "postgres"
    url: str
    schema: str | None = None
    opened: list[Store] = field(default_factory=list)

    async def open(self) -> Store:
        store = await open_store(self.url, schema=self.schema)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database("sqlite", f"{SQLITE}{tmp_path / 'operator.sqlite3'}")
        yield db
        for store in db.opened:
            await store.close()
        return
    async with postgres_schema() as schema:
        db = Database("postgres", POSTGRES_URL, schema)
        try:
            yield db
        finally:
            for store in db.opened:
                await store.close()


async def _migrated_copy(target: Path, factory: pytest.TempPathFactory) -> None:
    """``target`` as a copy of an SQLite database migrated to the head (made at the
    first call, closed, hence checkpointed: one file)."""
    if not _MIGRATED:
        template = factory.mktemp("migrated") / "operator.sqlite3"
        await (await open_store(f"{SQLITE}{template}")).close()
        _MIGRATED.append(template)
    for suffix in ("", "-wal", "-shm"):
        source = _MIGRATED[0].with_name(_MIGRATED[0].name + suffix)
        if source.exists():
            shutil.copy2(source, target.with_name(target.name + suffix))


@pytest.fixture
async def store(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Store:
    if database.engine == "sqlite":
        target = Path(database.url.removeprefix(SQLITE))
        if not target.exists():
            await _migrated_copy(target, tmp_path_factory)
    return await database.open()


RowCounter = Callable[[str], Awaitable[int]]


@pytest.fixture
def count_rows(store: Store) -> RowCounter:
    """Rows in one of the store's tables, read past the API (to check what is written)."""

    async def count(table: str) -> int:
        async with store.tx.engine.connect() as conn:  # the tests look past the API here
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())

    return count


@pytest.fixture
async def people(store: Store) -> Store:
    """dr, dr2 (health), soc (social), sec (staff), pat (patient)."""
    await store.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin", rpps="10101010101")
    await store.create_person("dr2", PersonKind.HEALTH, "Dr Bruno Petit")
    await store.create_person("soc", PersonKind.SOCIAL, "Chloé Roux")
    await store.create_person("sec", PersonKind.STAFF, "Denise Blanc")
    await store.create_person("pat", PersonKind.PATIENT, "Eve Noir")
    return store


@pytest.fixture
async def mailboxes(people: Store) -> Store:
    """Besides the people: dr's PER Alice.Martin@ and the ORG cardiologie@ dr is
    responsible for, both on ch-xyz.mssante.fr."""
    await people.create_mailbox(f"Alice.Martin@{DOMAIN}", MailboxType.PER, rules=RULES,
                                owner="dr")
    await people.create_mailbox(f"cardiologie@{DOMAIN}", MailboxType.ORG, rules=RULES,
                                responsible=["dr"], organisation="CH XYZ",
                                service="Cardiologie")
    return people
