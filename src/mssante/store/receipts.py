"""A message's timeline, as the sender's operator knows it: submitted, stored in the
mailboxes of this operator, relayed to the recipient's operator (the next hop that
answered ``250``), deferred, failed, and what the reports that came back say
(delivered, read, processed by the receiving software...).

What it is made of, all written in the transaction of the action it records:
- the Sent copy (``messages`` in the sender's ``Sent``): submitted, by whom, when;
- the copies in other mailboxes of this operator: delivered at once;
- the queue entries of the same body and sender: queued, deferred with the last error,
  relayed (``queue.relayed_to``), failed;
- ``receipts``: each DSN recipient group and MDN addressed to the sender's mailbox
  (content/reports.py), recorded when it is accepted (``record``).

An integration receipt that says the documents could not be integrated (``processed/
Error: <code>^<label>``, the ANS codes 900–906 of domain/documents.py) is no success:
its event is ``integration-failed``, with the code and label (``Event.error_code``,
``Event.error_label``); a plain ``processed`` is an integration that succeeded.

A report counts only if it reached the sender's mailbox and names, as its final
recipient, a recipient of the message: anyone in the trust space can write an MDN
with any Original-Message-ID, and a forged one must not mark someone else's message
read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.domain.documents import integration_failure
from mssante.store.models import DELIVERED, FAILED
from mssante.store.schema import folders, mailboxes, messages, queue, receipts

SENT_FOLDER = "Sent"
# what each report kind becomes in the timeline (DSN actions, RFC 3464 §2.3.3; MDN
# disposition types, RFC 8098 §3.2.6.2)
REPORT_EVENTS = {"delivered": "delivered", "relayed": "relayed", "expanded": "delivered",
                 "delayed": "delayed", "failed": "failed", "displayed": "read",
                 "processed": "processed", "deleted": "deleted", "dispatched": "dispatched"}
INTEGRATION_FAILED = "integration-failed"  # a processed receipt with an ANS error code
# a recipient's state is its most advanced event
_RANK = ("submitted", "queued", "deferred", "delayed", "relayed", "delivered", "failed",
         "deleted", "dispatched", INTEGRATION_FAILED, "processed", "read")


@dataclass(frozen=True, slots=True)
class ReceiptNote:
    """A report received by a mailbox of this operator, to record."""

    mailbox: str  # lower case
    message_id: str  # the reported message's <id>
    recipient: str
    kind: str
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    event: str  # submitted, queued, deferred, delayed, relayed, delivered, failed, read...
    recipient: str  # "" for the message as a whole
    detail: str
    operator: str = ""  # the domain whose operator it is about ("" for this operator)
    hop: str = ""  # relayed: the next hop that answered 250 (host:port)
    error_code: int | None = None  # integration-failed: the ANS code (900–906)
    error_label: str = ""  # and its label


@dataclass(frozen=True, slots=True)
class Timeline:
    message_id: str
    sender: str  # the mailbox whose Sent folder holds it
    subject: str | None
    events: tuple[Event, ...]  # in time order
    recipients: dict[str, str] = field(default_factory=dict)  # recipient → its state


async def record(conn: AsyncConnection, notes: Sequence[ReceiptNote], *, now: float) -> None:
    if notes:
        await conn.execute(insert(receipts), [
            {"mailbox": n.mailbox, "message_id": n.message_id, "recipient": n.recipient,
             "kind": n.kind, "status": n.status, "detail": n.detail, "at": now}
            for n in notes])


async def timeline(conn: AsyncConnection, message_id: str, *, mailbox: str | None = None
                   ) -> list[Timeline]:
    """The timeline of each sent copy of ``message_id`` (one per sending mailbox, or
    only ``mailbox``'s); empty when no mailbox of this operator sent it. With
    ``mailbox``, every read goes through an index (the webmail asks at each message
    page of a mailbox's own messages)."""
    columns = (mailboxes.c.address, folders.c.name, messages.c.received_at,
               messages.c.body_sha256, messages.c.envelope_from, messages.c.subject)
    joined = messages.join(mailboxes, mailboxes.c.id == messages.c.mailbox_id) \
        .join(folders, folders.c.id == messages.c.folder_id)
    wanted = select(*columns).select_from(joined).where(
        messages.c.message_id == message_id, folders.c.name == SENT_FOLDER)
    if mailbox is not None:
        wanted = wanted.where(mailboxes.c.address == mailbox.lower())
    sent = (await conn.execute(wanted.order_by(messages.c.received_at, messages.c.id))).all()
    if not sent:
        return []
    copies = (await conn.execute(  # the copies of the same bodies, delivered here
        select(*columns).select_from(joined)
        .where(messages.c.body_sha256.in_({c.body_sha256 for c in sent}),
               messages.c.message_id == message_id, folders.c.name != SENT_FOLDER)
        .order_by(messages.c.received_at, messages.c.id))).all()
    out = []
    for copy in sent:
        events = [Event(copy.received_at, "submitted", "", f"by {copy.address}")]
        local = {other.address for other in copies if other.body_sha256 == copy.body_sha256}
        recipients = set(local)
        for other in copies:  # delivered at once to mailboxes of this operator
            if other.body_sha256 == copy.body_sha256:
                events.append(Event(other.received_at, "delivered", other.address,
                                    "stored in the mailbox (this operator)"))
        entries = await conn.execute(
            select(queue).where(queue.c.body_sha256 == copy.body_sha256,
                                queue.c.envelope_from == copy.envelope_from)
            .order_by(queue.c.id))
        for entry in entries:
            recipient = entry.recipient.lower()
            recipients.add(recipient)
            domain = recipient.rpartition("@")[2]
            events.append(Event(entry.created_at, "queued", recipient,
                                "for the recipient's operator", operator=domain))
            if entry.status == DELIVERED and entry.delivered_at is not None:
                via = f" via {entry.relayed_to}" if entry.relayed_to else ""
                events.append(Event(entry.delivered_at, "relayed", recipient,
                                    f"accepted by the operator of {domain}{via}",
                                    operator=domain, hop=entry.relayed_to or ""))
            elif entry.status == FAILED:
                events.append(Event(entry.finished_at or entry.next_attempt_at, "failed",
                                    recipient, entry.last_error, operator=domain))
            elif entry.attempts:
                events.append(Event(entry.next_attempt_at, "deferred", recipient,
                                    f"{entry.attempts} attempt(s), next at this time: "
                                    f"{entry.last_error}", operator=domain))
        reports = await conn.execute(
            select(receipts).where(receipts.c.message_id == message_id,
                                   receipts.c.mailbox == copy.address)
            .order_by(receipts.c.at, receipts.c.id))
        for report in reports:
            if report.recipient not in recipients:  # a forged or misdirected report
                continue
            domain = "" if report.recipient in local else report.recipient.rpartition("@")[2]
            events.append(_report_event(report.at, report.kind, report.recipient,
                                        report.status, report.detail, domain))
        events.sort(key=lambda e: (e.at, _RANK.index(e.event) if e.event in _RANK else 99))
        states: dict[str, str] = {}
        for event in events:
            if event.recipient:
                before = states.get(event.recipient)
                if before is None or _advance(before, event.event):
                    states[event.recipient] = event.event
        out.append(Timeline(message_id, copy.address, copy.subject, tuple(events),
                            dict(sorted(states.items()))))
    return out


def _report_event(at: float, kind: str, recipient: str, status: str, detail: str,
                  domain: str) -> Event:
    """A report's event: its kind as the timeline names it; a ``processed`` receipt that
    carries an integration error code is ``integration-failed``, with the code."""
    text = " ".join(p for p in (status, detail) if p)
    if kind == "processed":
        failure = integration_failure(detail) or integration_failure(status)
        if failure is not None:
            return Event(at, INTEGRATION_FAILED, recipient, text, operator=domain,
                         error_code=failure[0], error_label=failure[1])
    return Event(at, REPORT_EVENTS.get(kind, kind), recipient, text, operator=domain)


def _advance(before: str, after: str) -> bool:
    """Whether a recipient in state ``before`` moves to ``after``: later news wins,
    except that a delay or deferral after delivery is not news (a late report)."""
    waiting = ("queued", "deferred", "delayed")
    return after not in waiting or before in waiting
