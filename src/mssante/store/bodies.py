"""Message bodies, stored once and addressed by their SHA-256 (DESIGN "Storage").

A body is inserted with the first mailbox or queue entry that holds it and deleted
in the transaction that removes the last one. The functions run inside the caller's
transaction: each as a function of a synchronous ``Connection`` (``*_in``, for the
grouped writes of transactions.py) and of an ``AsyncConnection``, which runs the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.store.schema import bodies, messages, queue

CHUNK = 1000  # keys per IN (...) list: far below both engines' parameter limits

INSERT_SQLITE = sqlite.insert(bodies).on_conflict_do_nothing(index_elements=[bodies.c.sha256])
_pg_insert = pg.insert(bodies)
# DO UPDATE (not DO NOTHING) locks an existing row, so that a concurrent removal of
# an orphan body (which locks it first) either waits for us or is redone by us.
INSERT_PG = _pg_insert.on_conflict_do_update(index_elements=[bodies.c.sha256],
                                             set_={"size": _pg_insert.excluded.size})
_SHAS = bodies.c.sha256.in_(bindparam("shas", expanding=True))
_LOCK_BODIES = select(bodies.c.sha256).where(_SHAS).order_by(bodies.c.sha256).with_for_update()
_DROP_ORPHANS = delete(bodies).where(
    _SHAS, ~exists().where(messages.c.body_sha256 == bodies.c.sha256),
    ~exists().where(queue.c.body_sha256 == bodies.c.sha256))


async def insert(conn: AsyncConnection, found: Mapping[str, bytes], *, postgresql: bool) -> None:
    """Insert the bodies not stored yet (``insert_in``)."""
    await conn.run_sync(insert_in, found, postgresql=postgresql)


def insert_in(conn: Connection, found: Mapping[str, bytes], *, postgresql: bool) -> None:
    """Insert the bodies not stored yet, in hash order (concurrent writers lock existing
    rows in the same order)."""
    rows = [{"sha256": sha, "size": len(body), "data": body}
            for sha, body in sorted(found.items())]
    if rows:
        conn.execute(INSERT_PG if postgresql else INSERT_SQLITE, rows)


async def drop_orphans(conn: AsyncConnection, shas: Iterable[str], *, postgresql: bool) -> None:
    """Delete those of ``shas`` no mailbox entry or queue entry holds any more
    (``drop_orphans_in``)."""
    await conn.run_sync(drop_orphans_in, shas, postgresql=postgresql)


def drop_orphans_in(conn: Connection, shas: Iterable[str], *, postgresql: bool) -> None:
    """Delete those of ``shas`` no mailbox entry or queue entry holds any more."""
    ordered = sorted(set(shas))
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start:start + CHUNK]
        if postgresql:  # wait for deliveries adding a reference (delivery.py)
            conn.execute(_LOCK_BODIES, {"shas": chunk})
        conn.execute(_DROP_ORPHANS, {"shas": chunk})
