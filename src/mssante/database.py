"""Engines for the two databases, and the conversion of driver errors.

SQLite (aiosqlite) is the embedded default: WAL, ``synchronous=FULL`` so that a
commit survives a power cut before SMTP answers 250, foreign keys on, and a busy
timeout for writers of other processes. Transactions:

- the sqlite3 module runs with ``isolation_level = "IMMEDIATE"``: it opens
  ``BEGIN IMMEDIATE`` by itself before the first INSERT, UPDATE or DELETE, so a
  writer takes the write lock before it writes and never fails half-way to
  upgrade a read lock (SQLITE_BUSY_SNAPSHOT), at no extra round trip to the
  driver thread; a lone SELECT runs in autocommit and sees the latest commit;
- a transaction that reads before it writes (check an invariant, then change)
  sets the ``mssante_begin`` execution option to ``"IMMEDIATE"``: the ``begin``
  event then emits ``BEGIN IMMEDIATE`` first, so that the check and the change
  happen under the same write lock (migrations too: DDL inside the transaction).

A file database also has a synchronous engine (``create_sqlite_writer``, the sqlite3
module itself, same pragmas and transactions) for the store's grouped writes, which run
a whole transaction in one call to a thread of their own (store/transactions.py).

PostgreSQL (asyncpg) is the engine for several processes or machines.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from mssante.errors import Conflict, StorageFull, StoreError

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
SQLITE_FULL = 13  # primary result code: "database or disk is full" (sqlite.org/rescode.html)
PG_DISK_FULL = "53100"  # SQLSTATE disk_full (PostgreSQL appendix A, class 53)
BEGIN_OPTION = "mssante_begin"  # execution option: "IMMEDIATE" to lock before reading
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POINT_BUSY_TIMEOUT_MS = 1_000

_SQLITE_PRAGMAS = (
    f"busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",  # first: switching to WAL may wait
    "journal_mode = WAL",
    "synchronous = FULL",
    "foreign_keys = ON",
)


def database_url(url: str) -> URL:
    """Parse ``url`` and choose the async driver: aiosqlite or asyncpg."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == SQLITE:
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in (POSTGRESQL, "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise StoreError(f"unsupported database {backend!r} in {url!r}: use sqlite or postgresql")


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == SQLITE and url.database in (None, "", ":memory:")


def create_engine(url: URL, *, schema: str | None = None) -> AsyncEngine:
    """One engine per store; for PostgreSQL, ``schema`` becomes the search_path."""
    if url.get_backend_name() == SQLITE:
        kwargs: dict[str, Any] = {}
        if is_memory(url):
            # One connection holds the whole database; a queue of one (not the
            # StaticPool default) makes concurrent users wait their turn.
            kwargs = {"poolclass": AsyncAdaptedQueuePool, "pool_size": 1, "max_overflow": 0}
        # No rollback when a connection goes back to the pool: reads never open a
        # transaction (no implicit BEGIN before a SELECT, see above) and writes end theirs
        # with engine.begin(); the rollback would cost a trip to the driver's thread.
        kwargs["pool_reset_on_return"] = None
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(url, connect_args=connect_args, pool_size=8, max_overflow=8)


def create_point_reader(url: URL) -> Engine | None:
    """For a SQLite file, a second engine on the same database through the standard
    sqlite3 module, for short reads run in the caller's thread (the event loop's):
    ``Transactions.point``. None for PostgreSQL (asyncpg needs no thread) and for an
    in-memory database (which another connection cannot see).

    Its connections only read (``query_only``); in WAL mode a reader never waits for
    a writer. The pool grows as needed instead of blocking the thread: a checkout that
    waited would stop the event loop.
    """
    if url.get_backend_name() != SQLITE or is_memory(url):
        return None
    engine = create_sync_engine(url.set(drivername="sqlite+pysqlite"),
                                connect_args={"check_same_thread": False},
                                pool_size=4, max_overflow=-1)
    event.listen(engine, "connect", _sqlite_point_connect)
    return engine


def _sqlite_point_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # a WAL reader waits only while a connection recovers the WAL index: rare and
    # short; this wait holds the event loop, so it is kept short too
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_POINT_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()


def create_sqlite_writer(url: URL) -> Engine:
    """A synchronous engine on the SQLite file of ``url`` (one connection), its
    transactions opened ``BEGIN IMMEDIATE``."""
    engine = create_sync_engine(url.set(drivername="sqlite"), pool_size=1, max_overflow=0,
                                pool_reset_on_return=None)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Any: the DBAPI connection is the aiosqlite adapter, untyped in SQLAlchemy.
    dbapi_connection.isolation_level = None  # no implicit BEGIN while setting pragmas
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
    dbapi_connection.isolation_level = "IMMEDIATE"


def _sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get(BEGIN_OPTION) == "IMMEDIATE":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def converted(conflict: str | None = None) -> Iterator[None]:
    """Turn driver errors into StoreError; an integrity error into Conflict(``conflict``)."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(conflict or f"the change conflicts with stored data: {_reason(exc)}"
                       ) from exc
    except SQLAlchemyError as exc:
        if _disk_full(getattr(exc, "orig", None)):
            raise StorageFull(f"database storage full: {_reason(exc)}") from exc
        raise StoreError(f"database error: {_reason(exc)}") from exc
    except OSError as exc:  # asyncpg: connection refused, reset
        if exc.errno == errno.ENOSPC:
            raise StorageFull(f"database storage full: {exc}") from exc
        raise StoreError(f"database unreachable: {exc}") from exc


def _disk_full(orig: object) -> bool:
    """Whether a driver error says the disk is full (SQLite or PostgreSQL)."""
    if isinstance(orig, sqlite3.Error):
        return (getattr(orig, "sqlite_errorcode", 0) & 0xFF) == SQLITE_FULL
    if getattr(orig, "sqlstate", None) == PG_DISK_FULL:  # asyncpg, through SQLAlchemy
        return True
    return isinstance(orig, OSError) and orig.errno == errno.ENOSPC


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.splitlines()[0] if text else type(exc).__name__
