"""Writing accepted messages: bodies, mailbox entries with their UIDs, queue entries.

``write_deliveries`` writes a batch of deliveries inside the caller's
transaction with a fixed number of statements whatever the batch size: one
UPDATE of ``mailboxes.uidnext`` (RETURNING the new values), one INSERT of the
new bodies, one of the mailbox entries, one of the queue entries (RETURNING
their ids in parameter order).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.errors import Conflict, NotFound
from mssante.store.models import QUEUED, Accepted, MessageSummary, OutboundRecipient
from mssante.store.schema import bodies, mailboxes, messages, queue

_INSERT_MESSAGES = insert(messages)
_INSERT_QUEUE = insert(queue).returning(queue.c.id, sort_by_parameter_order=True)
_INSERT_BODY_SQLITE = sqlite.insert(bodies).on_conflict_do_nothing(
    index_elements=[bodies.c.sha256])
_pg_insert_body = pg.insert(bodies)
# DO UPDATE (not DO NOTHING) locks an existing row, so that a concurrent removal of
# an orphan body (which locks it first) either waits for us or is redone by us.
_INSERT_BODY_PG = _pg_insert_body.on_conflict_do_update(
    index_elements=[bodies.c.sha256], set_={"size": _pg_insert_body.excluded.size})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to accept: its body, the local mailboxes, the remote recipients."""

    sha256: str
    body: bytes
    envelope_from: str
    local: tuple[str, ...]  # lower case, no duplicates
    remote: tuple[OutboundRecipient, ...]
    summary: MessageSummary
    envid: str | None
    ret: str | None
    now: float | None  # None: the time of the transaction


class Refused(Exception):
    """Some deliveries of a batch name unknown or deactivated mailboxes: roll back, and
    write the others again without them. ``errors`` maps batch index to error."""

    def __init__(self, errors: dict[int, Exception]) -> None:
        super().__init__(f"{len(errors)} deliveries refused")
        self.errors = errors


async def write_deliveries(conn: AsyncConnection, batch: Sequence[Delivery], *,
                           postgresql: bool) -> list[Accepted]:
    """Write every delivery of ``batch``, or raise Refused naming the bad ones."""
    now = time.time()
    counts = Counter(key for delivery in batch for key in delivery.local)
    first_uid: dict[str, tuple[int, int]] = {}
    if counts:
        first_uid = await _take_uids(conn, counts, batch, postgresql=postgresql)

    # Sorted: concurrent batches lock existing body rows in the same order.
    new_bodies = {d.sha256: {"sha256": d.sha256, "size": len(d.body), "data": d.body}
                  for d in sorted(batch, key=lambda d: d.sha256)}
    await conn.execute(_INSERT_BODY_PG if postgresql else _INSERT_BODY_SQLITE,
                       list(new_bodies.values()))

    uids: list[dict[str, int]] = []
    entries: list[dict[str, Any]] = []
    for d in batch:
        mine: dict[str, int] = {}
        for key in d.local:
            mailbox_id, uid = first_uid[key]
            first_uid[key] = (mailbox_id, uid + 1)
            mine[key] = uid
            entries.append({
                "mailbox_id": mailbox_id, "uid": uid, "body_sha256": d.sha256,
                "received_at": now if d.now is None else d.now, "flags": "",
                "envelope_from": d.envelope_from, "message_id": d.summary.message_id,
                "subject": d.summary.subject, "from_header": d.summary.from_header,
                "date_header": d.summary.date_header, "size": len(d.body)})
        uids.append(mine)
    if entries:
        await conn.execute(_INSERT_MESSAGES, entries)

    queued = [{
        "body_sha256": d.sha256, "envelope_from": d.envelope_from, "recipient": r.recipient,
        "orcpt": r.orcpt, "notify": ",".join(sorted(n.upper() for n in r.notify)),
        "ret": d.ret.upper() if d.ret else None, "envid": d.envid, "status": QUEUED,
        "attempts": 0, "next_attempt_at": now if d.now is None else d.now,
        "claimed_until": 0.0, "created_at": now if d.now is None else d.now,
        "last_error": "", "delay_notified": False,
    } for d in batch for r in d.remote]
    ids: list[int] = []
    if queued:
        ids = [int(i) for i in (await conn.execute(_INSERT_QUEUE, queued)).scalars()]

    accepted: list[Accepted] = []
    for d, mine in zip(batch, uids, strict=True):
        accepted.append(Accepted(sha256=d.sha256, message_uids=mine,
                                 queue_ids=ids[:len(d.remote)]))
        ids = ids[len(d.remote):]
    return accepted


async def _take_uids(conn: AsyncConnection, counts: Counter[str], batch: Sequence[Delivery],
                     *, postgresql: bool) -> dict[str, tuple[int, int]]:
    """Advance each mailbox's uidnext by its count in the batch (RFC 9051 §2.3.1.1:
    UIDs strictly ascending); return address -> (mailbox id, first UID taken)."""
    keys = sorted(counts)
    if all(n == 1 for n in counts.values()):
        step: Any = 1
    else:
        step = case(dict(counts), value=mailboxes.c.address, else_=0)
    bump = update(mailboxes).values(uidnext=mailboxes.c.uidnext + step)
    if postgresql and len(keys) > 1:
        # Lock the rows in id order: concurrent deliveries cannot deadlock.
        locked = (select(mailboxes.c.id).where(mailboxes.c.address.in_(keys))
                  .order_by(mailboxes.c.id).with_for_update().cte("locked"))
        bump = bump.where(mailboxes.c.id == locked.c.id)
    else:
        bump = bump.where(mailboxes.c.address.in_(keys))
    rows = (await conn.execute(bump.returning(mailboxes.c.id, mailboxes.c.address,
                                              mailboxes.c.active, mailboxes.c.uidnext)))
    found = {row.address: row for row in rows}

    errors: dict[int, Exception] = {}
    for index, delivery in enumerate(batch):
        missing = [key for key in delivery.local if key not in found]
        inactive = [key for key in delivery.local if key in found and not found[key].active]
        if missing:
            errors[index] = NotFound(f"no mailbox {', '.join(missing)}")
        elif inactive:
            errors[index] = Conflict(f"mailbox {', '.join(inactive)} is deactivated")
    if errors:
        raise Refused(errors)
    return {key: (int(row.id), int(row.uidnext) - counts[key]) for key, row in found.items()}
