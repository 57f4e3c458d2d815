"""Recording what happened to queue entries: delivered, deferred, failed, delay notified.

Delivery workers report one entry at a time and many at once; the store runs
these reports through a group commit, and ``write_outcomes`` writes a batch with
one statement per kind of outcome (executemany).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import Double, bindparam, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.audit.events import BOUNCE, RELAY
from mssante.errors import NotFound
from mssante.store.models import DELIVERED, FAILED
from mssante.store.schema import audit_entries, queue


class Kind(Enum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"
    DELAY_NOTIFIED = "delay_notified"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    entry_id: int
    now: float = 0.0
    next_attempt_at: float = 0.0
    error: str = ""
    relay: str = ""  # DELIVERED: the next hop that took it

    def params(self) -> dict[str, Any]:
        return {"p_id": self.entry_id, "p_now": self.now, "p_next": self.next_attempt_at,
                "p_error": self.error, "p_relay": self.relay or None}


_BY_ID = update(queue).where(queue.c.id == bindparam("p_id"))
_STATEMENTS = {
    # a delivered entry has no error left: last_error told why an earlier attempt failed
    Kind.DELIVERED: _BY_ID.values(status=DELIVERED, delivered_at=bindparam("p_now"),
                                  finished_at=bindparam("p_now"), claimed_until=0.0,
                                  last_error="", relayed_to=bindparam("p_relay")),
    # attempts += 1, schedule the next, release the claim
    Kind.DEFERRED: _BY_ID.values(attempts=queue.c.attempts + 1,
                                 next_attempt_at=bindparam("p_next"),
                                 last_error=bindparam("p_error"), claimed_until=0.0),
    Kind.FAILED: _BY_ID.values(status=FAILED, attempts=queue.c.attempts + 1,
                               last_error=bindparam("p_error"), finished_at=bindparam("p_now"),
                               claimed_until=0.0),
    Kind.DELAY_NOTIFIED: _BY_ID.values(delay_notified=True),
}

def _audit_from_queue(action: str, detail: Any) -> Any:
    """The audit entry of a queue entry's outcome, read from the entry in SQL: written in
    the outcome's transaction without reading the entry back first."""
    return insert(audit_entries).from_select(
        ["at", "action", "actor", "mailbox", "message_id", "source", "detail"],
        select(bindparam("p_now", type_=Double), literal(action), literal("mta"),
               func.lower(queue.c.envelope_from), func.coalesce(queue.c.message_id, ""),
               func.coalesce(queue.c.relayed_to, ""), detail)
        .where(queue.c.id == bindparam("p_id")))


_AUDIT = {  # what the audit trail records of an outcome (audit/events.py)
    Kind.DELIVERED: _audit_from_queue(RELAY, literal("to ") + queue.c.recipient),
    Kind.FAILED: _audit_from_queue(BOUNCE, literal("to ") + queue.c.recipient + literal(": ")
                                   + queue.c.last_error),
}


async def write_outcomes(conn: AsyncConnection, batch: Sequence[Outcome], *,
                         audit: bool = False) -> list[Exception | None]:
    """Apply every outcome of ``batch``; an unknown entry gets NotFound, the others apply.
    ``audit``: the relays and bounces leave their audit entries, in this transaction."""
    if audit:
        results = await _write_outcomes(conn, batch)
        for kind, statement in _AUDIT.items():
            rows = [o.params() for o in batch if o.kind is kind]
            if rows:
                await conn.execute(statement, rows)
        return results
    return await _write_outcomes(conn, batch)


async def _write_outcomes(conn: AsyncConnection,
                          batch: Sequence[Outcome]) -> list[Exception | None]:
    if len(batch) == 1:
        (outcome,) = batch
        result = await conn.execute(_STATEMENTS[outcome.kind], outcome.params())
        return [None if result.rowcount else _missing(outcome.entry_id)]
    ids = [o.entry_id for o in batch]
    if len(set(ids)) < len(ids):  # one entry twice: keep the order they came in
        for outcome in batch:
            await conn.execute(_STATEMENTS[outcome.kind], outcome.params())
    else:
        for kind in Kind:
            rows = [o.params() for o in batch if o.kind is kind]
            if rows:
                await conn.execute(_STATEMENTS[kind], rows)
    # Writes first (see engine.py), then which entries exist: an update of an
    # unknown id changed nothing.
    found = set((await conn.execute(select(queue.c.id).where(queue.c.id.in_(set(ids)))))
                .scalars())
    return [None if o.entry_id in found else _missing(o.entry_id) for o in batch]


def _missing(entry_id: int) -> NotFound:
    return NotFound(f"no queue entry {entry_id}")
