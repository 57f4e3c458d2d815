"""What other operators' queue entries delivered here (``XMSS-DELIVERY``, README "The
queue"), so that a retry of a committed transaction is not stored twice.

A row is written in the transaction that stores the message, one per recipient:
(the sending operator's certificate DN, its queue entry's identifier, the recipient).
The functions run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.store.models import DeliveryId
from mssante.store.schema import delivery_ids

CHUNK = 500  # rows per statement: far below both engines' parameter limits
_KEY = [delivery_ids.c.peer, delivery_ids.c.delivery_id, delivery_ids.c.recipient]
_OF_PEER = select(*_KEY).where(
    delivery_ids.c.peer == bindparam("peer"),
    delivery_ids.c.delivery_id.in_(bindparam("ids", expanding=True)))
_INSERT_SQLITE = sqlite.insert(delivery_ids).on_conflict_do_nothing().returning(*_KEY)
_INSERT_PG = pg.insert(delivery_ids).on_conflict_do_nothing().returning(*_KEY)


async def stored(conn: AsyncConnection, ids: Sequence[DeliveryId]) -> set[DeliveryId]:
    """Those of ``ids`` a committed transaction stored: one statement per sending peer
    (a transaction has one), through the primary key's prefix (peer, delivery_id), its
    SQL compiled once and reused; the recipients are matched here."""
    wanted = set(ids)
    by_peer: dict[str, set[str]] = {}
    for d in wanted:
        by_peer.setdefault(d.peer, set()).add(d.delivery_id)
    found: set[DeliveryId] = set()
    for peer, delivered in sorted(by_peer.items()):
        values = sorted(delivered)
        for start in range(0, len(values), CHUNK):
            rows = await conn.execute(_OF_PEER, {"peer": peer,
                                                 "ids": values[start:start + CHUNK]})
            found.update(d for r in rows
                         if (d := DeliveryId(r.peer, r.delivery_id, r.recipient)) in wanted)
    return found


async def record(conn: AsyncConnection, ids: Sequence[DeliveryId], *, now: float,
                 postgresql: bool) -> set[DeliveryId]:
    """Insert ``ids``; returns those already there (stored by another transaction, on
    PostgreSQL one that committed while this one waited for its rows)."""
    rows = [{"peer": d.peer, "delivery_id": d.delivery_id, "recipient": d.recipient,
             "received_at": now} for d in dict.fromkeys(ids)]
    inserted: set[DeliveryId] = set()
    for start in range(0, len(rows), CHUNK):
        result = await conn.execute(_INSERT_PG if postgresql else _INSERT_SQLITE,
                                    rows[start:start + CHUNK])
        inserted.update(DeliveryId(r.peer, r.delivery_id, r.recipient) for r in result)
    return set(ids) - inserted


async def purge(conn: AsyncConnection, *, before: float) -> int:
    """Forget what was received before ``before``; returns how many rows went."""
    result = await conn.execute(delete(delivery_ids).where(delivery_ids.c.received_at < before))
    return int(result.rowcount)

