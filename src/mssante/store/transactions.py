"""The operator database's transactions, shared by every repository of the store.

``Store`` (people, mailboxes, mail, queue, outbox, conversations) and ``FolderStore``
(IMAP folders) each receive the same ``Transactions``: one engine, one write lock on
SQLite, one way to open a write or a read, and driver errors converted at this
boundary (``database.converted``).

- A write transaction: ``async with tx.write() as conn``. ``writes_first`` when the
  first statement writes (SQLite then takes its write lock by itself, engine notes in
  ``database.py``); otherwise the transaction begins IMMEDIATE, so that a check and the
  change it guards run under the same lock. An integrity error becomes
  ``Conflict(conflict)``.
- A read: ``async with tx.read() as conn``, in autocommit on PostgreSQL.
- A point read: ``async with tx.point() as conn``, for a few rows found by an index
  (a mailbox, a person's rights, delivery identifiers), on the hot paths of SMTP and
  IMAP. On a SQLite file it runs in the event loop's own thread through the sqlite3
  module (``database.create_point_reader``): a WAL read of a few rows takes tens of
  microseconds, where aiosqlite's hand-off to its thread and back costs about a
  millisecond under load. Only ``execute`` may be called on it, and nothing that may
  read much (bodies, searches): that would hold the event loop. Elsewhere it is
  ``read()``.
- Point rows: ``await tx.point_rows(statement, params)``, for the reads of every
  message (a login's rights at MAIL and DATA): on a SQLite file, the statement's SQL,
  compiled once, runs on a plain sqlite3 connection, and the rows come back as
  tuples of the driver's values (integers for booleans): SQLAlchemy's own execution
  costs several times the query there. For statements of plain columns and no
  expanding parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Select
from sqlalchemy.sql.base import Executable

from mssante.database import (
    BEGIN_OPTION,
    POSTGRESQL,
    SQLITE_POINT_BUSY_TIMEOUT_MS,
    converted,
    create_point_reader,
)
from mssante.errors import StoreError


class Transactions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name  # "sqlite" | "postgresql"
        self.postgresql = self.dialect == POSTGRESQL
        if self.postgresql:
            self._writer = self._checking_writer = engine
            self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._write_lock: asyncio.Lock | None = None
        else:
            self._writer = self._reader = engine
            self._checking_writer = engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            self._write_lock = asyncio.Lock()
        self._point = create_point_reader(engine.url)
        # point_rows: the plain sqlite3 connection, opened at first use, and the SQL of
        # each statement with its parameters' names in order and their bound values
        self._raw: sqlite3.Connection | None = None
        self._raw_path = (engine.url.database if self._point is not None
                          and not engine.url.query else None)
        self._compiled: dict[Select[Any], tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    @contextlib.asynccontextmanager
    async def write(self, conflict: str | None = None, *,
                    writes_first: bool = False) -> AsyncIterator[AsyncConnection]:
        """One write transaction; an integrity error becomes Conflict(``conflict``)."""
        engine = self._writer if writes_first else self._checking_writer
        with converted(conflict):
            async with self._write_lock or contextlib.nullcontext(), engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        with converted():
            async with self._reader.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def point(self) -> AsyncIterator[AsyncConnection]:
        """A read of a few rows by an index (see the module's notes)."""
        if self._point is None:
            async with self.read() as conn:
                yield conn
            return
        with converted(), self._point.connect() as sync:
            # typed as the AsyncConnection the read functions take: it has its execute
            yield cast(AsyncConnection, _InlineReader(sync))

    async def point_rows(self, statement: Select[Any], parameters: Mapping[str, Any]
                         ) -> list[tuple[Any, ...]]:
        """The rows of a point read as tuples (see the module's notes)."""
        if self._raw_path is None or self._point is None:
            async with self.point() as conn:
                return [tuple(row) for row in await conn.execute(statement, parameters)]
        compiled = self._compiled.get(statement)
        if compiled is None:
            done = statement.compile(dialect=self._point.dialect)
            compiled = (str(done), tuple(done.positiontup or ()), dict(done.params))
            self._compiled[statement] = compiled
        sql, names, bound = compiled
        values = [parameters[name] if name in parameters else bound[name] for name in names]
        try:
            if self._raw is None:
                self._raw = sqlite3.connect(self._raw_path, isolation_level=None,
                                            check_same_thread=False)
                self._raw.execute(f"PRAGMA busy_timeout = {SQLITE_POINT_BUSY_TIMEOUT_MS}")
                self._raw.execute("PRAGMA query_only = ON")
            return self._raw.execute(sql, values).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    async def dispose(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._point is not None:
            self._point.dispose()
        await self.engine.dispose()


class _InlineReader:
    """``AsyncConnection.execute`` over a synchronous connection: the statement runs
    at once, in this thread, and its rows are all fetched before the await returns."""

    __slots__ = ("_sync",)

    def __init__(self, sync: Connection) -> None:
        self._sync = sync

    async def execute(self, statement: Executable,
                      parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
                      ) -> CursorResult[Any]:
        result = self._sync.execute(statement, parameters)
        return cast(CursorResult[Any], result.freeze()())
