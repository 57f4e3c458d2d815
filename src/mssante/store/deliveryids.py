"""What other operators' queue entries delivered here (``XMSS-DELIVERY``, README "The
queue"), so that a retry of a committed transaction is not stored twice.

A row is written in the transaction that stores the message, one per recipient:
(the sending operator's certificate DN, its queue entry's identifier, the recipient).
The functions run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.store.models import DeliveryId
from mssante.store.schema import delivery_ids

CHUNK = 500  # rows per statement: far below both engines' parameter limits
_KEY = [delivery_ids.c.peer, delivery_ids.c.delivery_id, delivery_ids.c.recipient]
_INSERT_SQLITE = sqlite.insert(delivery_ids).on_conflict_do_nothing().returning(*_KEY)
_INSERT_PG = pg.insert(delivery_ids).on_conflict_do_nothing().returning(*_KEY)


async def stored(conn: AsyncConnection, ids: Sequence[DeliveryId]) -> set[DeliveryId]:
    """Those of ``ids`` a committed transaction stored."""
    found: set[DeliveryId] = set()
    unique = sorted(set(ids), key=lambda d: (d.peer, d.delivery_id, d.recipient))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start:start + CHUNK]
        rows = await conn.execute(select(*_KEY).where(or_(*(
            and_(delivery_ids.c.peer == d.peer, delivery_ids.c.delivery_id == d.delivery_id,
                 delivery_ids.c.recipient == d.recipient) for d in chunk))))
        found.update(DeliveryId(r.peer, r.delivery_id, r.recipient) for r in rows)
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

