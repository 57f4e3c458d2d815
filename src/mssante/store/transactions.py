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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mssante.database import BEGIN_OPTION, POSTGRESQL, converted


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

    async def dispose(self) -> None:
        await self.engine.dispose()
