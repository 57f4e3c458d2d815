"""Alembic migrations, applied when a store opens.

Alembic's synchronous API runs inside ``AsyncConnection.run_sync`` so that one
code path serves both engines. The whole upgrade is one transaction; on
PostgreSQL it first takes an advisory lock, so that processes starting together
on one database migrate one after the other (on SQLite, ``BEGIN IMMEDIATE``
does the same).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.database import POSTGRESQL
from mssante.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
_ADVISORY_LOCK = 0x6D7373616E7465  # "mssante"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(connection: AsyncConnection) -> None:
    """Bring the schema to the latest revision, inside the caller's transaction."""
    if connection.dialect.name == POSTGRESQL:
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": _ADVISORY_LOCK})
    try:
        await connection.run_sync(_upgrade)
    except CommandError as exc:  # e.g. a revision from a newer release
        raise StoreError(f"cannot migrate the database schema: {exc}") from exc


async def current_revision(connection: AsyncConnection) -> str | None:
    return await connection.run_sync(_current)
