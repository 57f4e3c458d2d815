"""The processes that hold queue leases (``lease_holders``) and giving back the leases
of those known dead (the rules are ``mssante.leases``). The functions run inside the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.store.models import QUEUED, LeaseHolder
from mssante.store.schema import lease_holders, queue


async def beat(conn: AsyncConnection, holder: LeaseHolder, *, postgresql: bool) -> None:
    """Record that ``holder`` is alive at ``holder.heartbeat_at`` (its row written again
    if another process, taking it for dead, deleted it)."""
    values = {"id": holder.id, "host": holder.host, "pid": holder.pid,
              "started_at": holder.started_at, "heartbeat_at": holder.heartbeat_at}
    insert = pg.insert(lease_holders) if postgresql else sqlite.insert(lease_holders)
    await conn.execute(insert.values(values).on_conflict_do_update(
        index_elements=[lease_holders.c.id], set_={"heartbeat_at": holder.heartbeat_at}))


async def read(conn: AsyncConnection) -> list[LeaseHolder]:
    rows = await conn.execute(select(lease_holders).order_by(lease_holders.c.id))
    return [LeaseHolder(id=r.id, host=r.host, pid=int(r.pid), started_at=r.started_at,
                        heartbeat_at=r.heartbeat_at) for r in rows]


async def release(conn: AsyncConnection, holder_ids: Sequence[str]) -> int:
    """Give back the leases of ``holder_ids`` (queued entries become due when their
    next attempt is) and forget those holders; returns how many leases went back."""
    if not holder_ids:
        return 0
    result = await conn.execute(update(queue).where(
        queue.c.status == QUEUED, queue.c.claimed_by.in_(list(holder_ids)))
        .values(claimed_until=0.0, claimed_by=None))
    await conn.execute(delete(lease_holders).where(lease_holders.c.id.in_(list(holder_ids))))
    return int(result.rowcount)


async def release_orphans(conn: AsyncConnection) -> int:
    """Give back the leases no known holder holds: claimed before holders were named
    (migration 0008q), or by a holder already forgotten. A live holder always has its
    row (it beats before it claims, and beats its row back if it was taken for dead)."""
    result = await conn.execute(update(queue).where(
        queue.c.status == QUEUED, queue.c.claimed_until > 0.0,
        or_(queue.c.claimed_by.is_(None),
            queue.c.claimed_by.not_in(select(lease_holders.c.id))))
        .values(claimed_until=0.0, claimed_by=None))
    return int(result.rowcount)
