"""Opening a store migrates it; opening it again changes nothing and loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.errors import StoreError
from mssante.store import MessageSummary, OutboundRecipient, Store, open_store
from mssante.store.migrate import head_revision
from mssante.store.schema import metadata

DOMAIN = "ch-xyz.mssante.fr"


def _schema_diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_open_applies_migrations_to_head(database) -> None:
    store = await database.open()  # on the empty database (the fixture ``store`` copies)
    assert head_revision() == "0008s"
    assert await store.schema_revision() == head_revision()
    assert store.dialect == {"sqlite": "sqlite", "postgres": "postgresql"}[database.engine]
    assert store.url == database.url


async def test_migrated_schema_matches_the_tables_the_queries_use(store: Store) -> None:
    async with store.tx.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []


async def test_reopen_is_idempotent_and_keeps_data(database) -> None:
    first = await database.open()
    await first.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin")
    await first.create_mailbox(f"Alice.Martin@{DOMAIN}", MailboxType.PER, rules=Rules(),
                               owner="dr")
    accepted = await first.accept_message(
        b"Subject: hi\r\n\r\nbody\r\n", envelope_from=f"bob@{DOMAIN}",
        local=[f"alice.martin@{DOMAIN}"],
        remote=[OutboundRecipient("carol@medecin.mssante.fr")],
        summary=MessageSummary("<1@x>", "hi", f"bob@{DOMAIN}", None), now=1000.0)
    await first.close()

    second = await database.open()
    third = await database.open()  # a second open on a migrated database: no-op
    assert await third.schema_revision() == head_revision()
    person = await second.get_person("dr")
    assert person is not None and person.display_name == "Dr Alice Martin"
    inbox = await second.folders.get(f"alice.martin@{DOMAIN}", "INBOX")
    assert inbox is not None and inbox.uidnext == 2
    [message] = await second.list_messages(f"alice.martin@{DOMAIN}")
    assert message.uid == 1 and message.body_sha256 == accepted.sha256
    assert await second.get_body(accepted.sha256) == b"Subject: hi\r\n\r\nbody\r\n"
    [entry] = await second.queue_entries()
    assert entry.id == accepted.queue_ids[0] and entry.status == "queued"


async def test_sqlite_is_durable_wal_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "operator.sqlite3"
    store = await open_store(f"sqlite:///{path}")  # plain sqlite:// gets aiosqlite
    try:
        async with store.tx.engine.connect() as conn:
            pragmas = {name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                       for name in ("journal_mode", "synchronous", "foreign_keys",
                                    "busy_timeout")}
    finally:
        await store.close()
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["synchronous"] == 2  # FULL
    assert pragmas["foreign_keys"] == 1
    assert pragmas["busy_timeout"] > 0
    with sqlite3.connect(path) as raw:  # WAL is a property of the file
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_memory_database_works_for_concurrent_users() -> None:
    store = await open_store("sqlite+aiosqlite://")
    try:
        await asyncio.gather(*(store.create_person(f"dr{n}", PersonKind.HEALTH, f"Dr {n}")
                               for n in range(5)), store.list_persons())
        assert [p.login for p in await store.list_persons()] == [f"dr{n}" for n in range(5)]
    finally:
        await store.close()


async def test_a_schema_from_a_newer_release_is_refused(database) -> None:
    store = await database.open()
    async with store.tx.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="9999"):
        await database.open()


@pytest.mark.parametrize("url", ["mysql://db/mail", "not a url"])
async def test_unsupported_url_is_refused(url: str) -> None:
    with pytest.raises(StoreError):
        await open_store(url)


async def test_unreachable_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unable to open"):
        await open_store(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'db'}")
    with pytest.raises(StoreError, match="unreachable"):
        await open_store("postgresql+asyncpg://postgres@127.0.0.1:1/test")
