"""Writing accepted messages: bodies, mailbox entries with their UIDs, queue entries.

``write_deliveries`` writes a batch of deliveries inside the caller's
transaction with a fixed number of statements whatever the batch size (and, for
a professional's message to patients, its conversation rows): one
SELECT of the target folders, one UPDATE of their ``uidnext`` and
``highestmodseq`` (RETURNING the new values), one INSERT of the
new bodies, one of the mailbox entries, one of the queue entries (RETURNING
their ids in parameter order).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.audit.events import AuditEvent
from mssante.content.sortkeys import stored as stored_sort_keys
from mssante.domain.addresses import PATIENT_DOMAIN
from mssante.domain.patient import CareNote, ProfessionalMessage
from mssante.errors import Conflict, NotFound, Replayed
from mssante.store import audit, carethreads, conversations, deliveryids, receipts
from mssante.store.bodies import insert as insert_bodies
from mssante.store.models import (
    QUEUED,
    Accepted,
    DeliveryId,
    MessageSummary,
    OutboundRecipient,
)
from mssante.store.receipts import ReceiptNote
from mssante.store.schema import folders, mailboxes, messages, queue

INBOX = "INBOX"
SENT = "\\Sent"  # RFC 6154 special use of the folder that keeps sent messages
SEEN = "\\Seen"
_INSERT_MESSAGES = insert(messages)
_INSERT_QUEUE = insert(queue).returning(queue.c.id, sort_by_parameter_order=True)


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
    sent: str | None = None  # lower-case address whose Sent folder keeps a copy (\\Seen)
    patient: ProfessionalMessage | None = None  # recorded for each local patient recipient
    care: tuple[CareNote, ...] = ()  # professional mailboxes' conversations with patients
    reports: tuple[ReceiptNote, ...] = ()  # a DSN's or MDN's news of an earlier message
    audit: tuple[AuditEvent, ...] = ()  # the audit trail's entries of this acceptance
    keywords: tuple[str, ...] = ()  # IMAP keywords of the INBOX copies ($Alerte)
    delivery_ids: tuple[DeliveryId, ...] = ()  # another operator's entries (XMSS-DELIVERY)


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
    received = [i for d in batch for i in d.delivery_ids]
    if received:  # first: a retry stored meanwhile by another transaction writes nothing
        again = await deliveryids.record(conn, received, now=now, postgresql=postgresql)
        seen: set[DeliveryId] = set()
        replayed: dict[int, Exception] = {}
        for n, d in enumerate(batch):  # ... nor a second copy in this very batch
            if again.intersection(d.delivery_ids) or seen.intersection(d.delivery_ids):
                replayed[n] = Replayed("XMSS-DELIVERY identifiers stored meanwhile")
            seen.update(d.delivery_ids)
        if replayed:
            raise Refused(replayed)
    counts: Counter[tuple[str, str]] = Counter()
    for delivery in batch:
        counts.update((key, INBOX) for key in delivery.local)
        if delivery.sent:
            counts[(delivery.sent, SENT)] += 1
    taken: dict[tuple[str, str], _Taken] = {}
    if counts:
        taken = await _take_uids(conn, counts, batch, postgresql=postgresql)

    await insert_bodies(conn, {d.sha256: d.body for d in batch}, postgresql=postgresql)

    uids: list[dict[str, int]] = []
    entries: list[dict[str, Any]] = []
    for d in batch:
        mine: dict[str, int] = {}
        keys = stored_sort_keys(d.body)  # IMAP SORT and THREAD (content/sortkeys.py)
        targets = [(key, INBOX) for key in d.local]
        if d.sent and (d.sent, SENT) in taken:
            targets.append((d.sent, SENT))
        for target in targets:
            place = taken[target]
            uid = place.next_uid
            place.next_uid += 1
            if target[1] == INBOX:
                mine[target[0]] = uid
            entries.append({
                "mailbox_id": place.mailbox_id, "folder_id": place.folder_id, "uid": uid,
                "modseq": place.modseq, "body_sha256": d.sha256,
                "received_at": now if d.now is None else d.now,
                "flags": " ".join(d.keywords) if target[1] == INBOX else SEEN,
                "envelope_from": d.envelope_from, "message_id": d.summary.message_id,
                "subject": d.summary.subject, "from_header": d.summary.from_header,
                "date_header": d.summary.date_header, "size": len(d.body),
                "sort_keys": keys})
        uids.append(mine)
    if entries:
        await conn.execute(_INSERT_MESSAGES, entries)

    queued = [{
        "body_sha256": d.sha256, "envelope_from": d.envelope_from, "recipient": r.recipient,
        "orcpt": r.orcpt, "notify": ",".join(sorted(n.upper() for n in r.notify)),
        "ret": d.ret.upper() if d.ret else None, "envid": d.envid, "status": QUEUED,
        "attempts": 0, "next_attempt_at": now if d.now is None else d.now,
        "claimed_until": 0.0, "created_at": now if d.now is None else d.now,
        "last_error": "", "delay_notified": False, "message_id": d.summary.message_id,
    } for d in batch for r in d.remote]
    ids: list[int] = []
    if queued:
        ids = [int(i) for i in (await conn.execute(_INSERT_QUEUE, queued)).scalars()]

    # The conversations a professional's message opens or closes, in this transaction:
    # once the 250 has gone, the patient can reply (domain/patient.py).
    for d in batch:
        if d.patient is None:
            continue
        for address in d.local:
            if address.endswith("@" + PATIENT_DOMAIN):
                await conversations.record(conn, address, d.patient,
                                           now=now if d.now is None else d.now,
                                           postgresql=postgresql)
    for d in batch:  # the professional side of the same conversations (carethreads.py)
        if d.care:
            await carethreads.record(conn, d.care, now=now if d.now is None else d.now,
                                     postgresql=postgresql)
        if d.reports:  # the timeline of the message reported on (receipts.py)
            await receipts.record(conn, d.reports, now=now if d.now is None else d.now)
    events = [(e, now if d.now is None else d.now) for d in batch for e in d.audit]
    if events:  # the audit trail: each acceptance and delivery with its entry
        await audit.append_at(conn, events)

    folder_ids = tuple(sorted({place.folder_id for place in taken.values()}))
    accepted: list[Accepted] = []
    for d, mine in zip(batch, uids, strict=True):
        accepted.append(Accepted(sha256=d.sha256, message_uids=mine,
                                 queue_ids=ids[:len(d.remote)], folder_ids=folder_ids))
        ids = ids[len(d.remote):]
    return accepted


@dataclass(slots=True)
class _Taken:
    mailbox_id: int
    folder_id: int
    next_uid: int  # the next UID of the range taken
    modseq: int  # the folder's new HIGHESTMODSEQ: every message of the batch gets it


async def _take_uids(conn: AsyncConnection, counts: Counter[tuple[str, str]],
                     batch: Sequence[Delivery], *, postgresql: bool
                     ) -> dict[tuple[str, str], _Taken]:
    """Advance the UIDNEXT of each target folder (the INBOX of a recipient, the Sent
    folder of a sender) by its count in the batch and its HIGHESTMODSEQ by one
    (RFC 9051 §2.3.1.1: UIDs strictly ascending; RFC 7162 §3.1.1); return
    (address, INBOX | SENT) -> the range taken. A sender without a Sent folder gets
    no copy; INBOX is never deleted nor given a special use (folders.py)."""
    addresses = sorted({address for address, _ in counts})
    rows = (await conn.execute(
        select(mailboxes.c.id, mailboxes.c.address, mailboxes.c.active,
               folders.c.id.label("folder_id"), folders.c.name, folders.c.special_use)
        .select_from(mailboxes)
        .outerjoin(folders, and_(folders.c.mailbox_id == mailboxes.c.id,
                                 or_(folders.c.name == INBOX, folders.c.special_use == SENT)))
        .where(mailboxes.c.address.in_(addresses)))).all()
    found: dict[str, Any] = {}
    place: dict[tuple[str, str], tuple[int, int]] = {}  # target -> (mailbox id, folder id)
    for row in rows:
        found[row.address] = row
        if row.folder_id is None:
            continue
        which = INBOX if row.name == INBOX else SENT
        place[(row.address, which)] = (int(row.id), int(row.folder_id))

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

    by_folder: dict[int, int] = {}
    for target, count in counts.items():
        if target in place:
            by_folder[place[target][1]] = by_folder.get(place[target][1], 0) + count
    step: Any = 1 if all(n == 1 for n in by_folder.values()) else case(
        by_folder, value=folders.c.id, else_=0)
    bump = update(folders).values(uidnext=folders.c.uidnext + step,
                                  highestmodseq=folders.c.highestmodseq + 1)
    if postgresql and len(by_folder) > 1:
        # Lock the rows in id order: concurrent deliveries cannot deadlock.
        locked = (select(folders.c.id).where(folders.c.id.in_(sorted(by_folder)))
                  .order_by(folders.c.id).with_for_update().cte("locked"))
        bump = bump.where(folders.c.id == locked.c.id)
    else:
        bump = bump.where(folders.c.id.in_(sorted(by_folder)))
    bumped = {int(row.id): row for row in await conn.execute(
        bump.returning(folders.c.id, folders.c.uidnext, folders.c.highestmodseq))}
    taken: dict[tuple[str, str], _Taken] = {}
    for target, (mailbox_id, folder_id) in place.items():
        if target not in counts:
            continue
        row = bumped[folder_id]
        first = int(row.uidnext) - by_folder[folder_id]
        taken[target] = _Taken(mailbox_id, folder_id, first, int(row.highestmodseq))
    return taken
