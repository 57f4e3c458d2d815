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
- A grouped write: ``await tx.grouped(work, key)`` runs ``work(conn)``, a synchronous
  function of a SQLAlchemy ``Connection``, in a write transaction shared with the other
  grouped writes of this process, and returns its result once that transaction has
  committed. A commit costs the same for one change or fifty (on SQLite, the fsync of
  ``synchronous=FULL``), so the small writes of concurrent IMAP sessions (STORE,
  EXPUNGE, APPEND, ``\\Recent`` claims) and the audit entries of reads and logins share
  theirs; each caller still answers only after the commit that holds its change.
  The group is taken once the write lock is held: the works submitted while the
  previous group committed, or while another process held the database, all join it
  (at most ``GROUP_SIZE``). Within a group the works run one after the other, in
  ``key`` order (a folder id: on PostgreSQL, every process then locks folder rows in
  the same order, so two groups never deadlock), each seeing the changes of those
  before it, as if each had run alone in that order. A work that raises fails its
  group, which runs again one work per transaction, so that the failing work gets its
  own error and the others commit: a work must therefore have no effect outside its
  transaction (the caller publishes changes once it returns).
- On a SQLite file, a group runs whole in one call to a thread of its own, on a
  synchronous connection (``database.create_sqlite_writer``): lock, BEGIN IMMEDIATE,
  the works, COMMIT, unlock, with no trip through the event loop in between. Through
  the async driver each statement waits for the loop to come round, and under load
  the write lock, which the other processes wait for, was held that much longer. On
  PostgreSQL (and an in-memory SQLite database) the works run through ``run_sync``
  in one async transaction.
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
- On SQLite, the writers of the processes sharing one database file (an operator's
  workers) take turns on a lock file beside it (``flock``) before SQLite's own write
  lock: a writer that waits is woken as soon as the other lets go, where SQLite's busy
  handler would poll with growing sleeps (1, 2, 5, 10 ... 100 ms) and overshoot. The
  lock file only orders writers; SQLite's lock still guards the data, and a writer
  that does not take the lock file (another tool) is waited for by ``busy_timeout``.
  Within a process, the ``asyncio.Lock`` orders writers, the group's thread included.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Select
from sqlalchemy.sql.base import Executable

from mssante.database import (
    BEGIN_OPTION,
    POSTGRESQL,
    SQLITE_POINT_BUSY_TIMEOUT_MS,
    converted,
    create_point_reader,
    create_sqlite_writer,
    is_memory,
)
from mssante.errors import StoreError
from mssante.store.batch import settle

R = TypeVar("R")
Work = Callable[[Connection], Any]
GROUP_SIZE = 128  # works per grouped transaction at most
GROUP_WEIGHT = 16 * 1024 * 1024  # and octets (APPENDed bodies), unless one work is more
LOCK_SUFFIX = "-writers"  # the lock file: the database's path and this
_Item = tuple[int, Work, "asyncio.Future[Any]", int]  # key, work, its caller, weight


class Transactions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name  # "sqlite" | "postgresql"
        self.postgresql = self.dialect == POSTGRESQL
        self._lock_fd: int | None = None
        self._sync: Engine | None = None  # grouped writes on a SQLite file
        self._sync_conn: Connection | None = None  # its connection, used in _thread only
        self._thread: ThreadPoolExecutor | None = None
        if self.postgresql:
            self._writer = self._checking_writer = engine
            self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._write_lock: asyncio.Lock | None = None
        else:
            self._writer = self._reader = engine
            self._checking_writer = engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            self._write_lock = asyncio.Lock()
            if not is_memory(engine.url) and engine.url.database:
                try:
                    self._lock_fd = os.open(engine.url.database + LOCK_SUFFIX,
                                            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                except OSError as exc:  # as SQLite itself says of a folder it cannot use
                    raise StoreError(f"database error: unable to open database file "
                                     f"{engine.url.database}: {exc.strerror}") from exc
                self._sync = create_sqlite_writer(engine.url)
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._pending: list[_Item] = []
        self._pending_lock = threading.Lock()  # the group's thread takes from _pending
        self._drainer: asyncio.Task[None] | None = None
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
            async with self._write_lock or contextlib.nullcontext(), self._writers(), \
                    engine.begin() as conn:
                yield conn

    async def grouped(self, work: Callable[[Connection], R], key: int = 0, *,
                      weight: int = 0) -> R:
        """``work(conn)`` in a write transaction shared with the concurrent grouped works
        of this process; its result once that transaction has committed (module notes).
        ``weight``: the octets it writes (a group holds ``GROUP_WEIGHT`` at most).
        Cancelling the caller does not cancel a group already running: the work may
        still be committed, as with any transaction cancelled while committing."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._pending_lock:
            self._pending.append((key, work, future, weight))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return cast(R, await future)

    async def _drain(self) -> None:
        while self._pending:
            group: list[_Item] = []
            try:
                results = await self._commit(group, self._take)
            except Exception as exc:
                if not group:  # it failed before taking any: the next ones run alone
                    group = self._take()
                if len(group) == 1:
                    settle(group[0][2], exc)
                    continue
                for one in group:  # isolate the work that broke the group
                    await self._alone(one)
                continue
            except BaseException:  # cancelled or worse: nobody is left waiting
                with self._pending_lock:
                    group += self._pending
                    self._pending = []
                for item in group:
                    item[2].cancel()
                raise
            for item, result in zip(group, results, strict=True):
                settle(item[2], result)

    async def _alone(self, item: _Item) -> None:
        try:
            [result] = await self._commit([], lambda: [item])
        except Exception as exc:
            settle(item[2], exc)
        else:
            settle(item[2], result)

    async def _commit(self, group: list[_Item], take: Callable[[], list[_Item]]
                      ) -> list[Any]:
        """Take a group (``take``, into ``group``) once the write lock is held, run its
        works in one transaction and commit; their results."""
        if self._sync is None or self._thread is None:
            async with self.write() as conn:
                group += take()
                return await conn.run_sync(_run, [item[1] for item in group])
        assert self._write_lock is not None
        sync, fd = self._sync, self._lock_fd

        def in_thread() -> list[Any]:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                group.extend(take())
                conn = self._sync_conn = self._sync_conn or sync.connect()
                try:
                    with conn.begin():
                        return _run(conn, [item[1] for item in group])
                except Exception:
                    if conn.invalidated:  # a broken connection: a new one next time
                        conn.close()
                        self._sync_conn = None
                    raise
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

        with converted():
            async with self._write_lock:
                running = asyncio.get_running_loop().run_in_executor(self._thread, in_thread)
                return await asyncio.shield(running)  # the lock is held until it is done

    def _take(self) -> list[_Item]:
        with self._pending_lock:
            live = [item for item in self._pending if not item[2].done()]  # done: cancelled
            taken, weight = 0, 0
            for item in live:
                weight += item[3]
                if taken and (taken >= GROUP_SIZE or weight > GROUP_WEIGHT):
                    break
                taken += 1
            group, self._pending = live[:taken], live[taken:]
        group.sort(key=lambda item: item[0])
        return group

    @contextlib.asynccontextmanager
    async def _writers(self) -> AsyncIterator[None]:
        """The lock file of the processes writing this SQLite database (module notes)."""
        fd = self._lock_fd
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting = asyncio.get_running_loop().run_in_executor(
                None, fcntl.flock, fd, fcntl.LOCK_EX)
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:  # let go once the thread gets it
                waiting.add_done_callback(lambda done: _unlock(fd, done))
                raise
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

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
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)
        await self.engine.dispose()
        thread, self._thread = self._thread, None  # closing twice closes once
        if thread is not None:  # the connection closes in its thread
            await asyncio.get_running_loop().run_in_executor(thread, self._close_sync)
            thread.shutdown()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _close_sync(self) -> None:
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None


def _run(conn: Connection, works: Sequence[Work]) -> list[Any]:
    return [work(conn) for work in works]


def _unlock(fd: int, done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is None:
        with contextlib.suppress(OSError):  # closed meanwhile: nothing left to hold
            fcntl.flock(fd, fcntl.LOCK_UN)


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
