"""Accepting a message, whatever way it came in: the MTA, submission, the web.

What every way shares: a recipient of this operator is checked the same way
(``check_local_recipient``), the header section the same way (``checked_headers``),
and a message is stored and queued by one function (``accept``). Refusals are
``operator/refusals.py``'s; each way in turns them into its own answer.

The invariant (DESIGN "Storage"): the caller tells the client the message is accepted
(SMTP ``250``) only after ``Store.accept_message`` has committed the body with every
mailbox and queue entry, and the patient conversation a professional's message opens
or closes.

The message arrives with its ``Received`` header already on top (``trace``, given to
the SMTP machine before DATA is read), so that the body read is the body stored: a
25 MB message is not copied once more to put a line above it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from mssante.audit.events import DELIVERY, RECEPTION, SUBMISSION, AuditEvent, clip
from mssante.content.dsn import Action, RecipientStatus
from mssante.content.headers import (
    HeaderSyntaxError,
    HeaderView,
    prepend_headers,
    read_headers,
    received_header,
)
from mssante.content.reports import read_report
from mssante.domain.addresses import Address, parse_address
from mssante.domain.alerts import ALERT_KEYWORD, is_alert
from mssante.domain.patient import care_notes, professional_message
from mssante.domain.policy import (
    MailboxClosed,
    NoSuchMailbox,
    check_deliverable,
    check_patient_address,
)
from mssante.errors import Conflict, InvalidAddress, NotFound, Replayed
from mssante.operator.refusals import (
    BadAddress,
    ClosedMailbox,
    HeadersRefused,
    StoredMeanwhile,
    TooManyRecipients,
    UnknownMailbox,
)
from mssante.operator.runtime import OperatorRuntime
from mssante.store.models import DeliveryId, MessageSummary, OutboundRecipient
from mssante.store.receipts import ReceiptNote

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 1000  # RFC 5321 §4.5.3.1.8 requires at least 100


@dataclass(slots=True)
class RcptParams:
    """What a recipient asks of delivery status notifications (RFC 3461 §4)."""

    notify: frozenset[str] = field(default_factory=frozenset)  # empty: default (FAILURE)
    orcpt: str | None = None  # RFC 3461 §4.2 "addr-type;addr", xtext decoded
    # XMSS-DELIVERY (README "The queue"): the sending operator's queue entry, the same
    # at each of its attempts; only from an operator, on the MTA
    delivery_id: str | None = None


def parse_recipient(text: str, *, accepted: int = 0) -> Address:
    """The address of one more recipient of a message that has ``accepted`` already."""
    if accepted >= MAX_RECIPIENTS:
        raise TooManyRecipients("Too many recipients")
    try:
        return parse_address(text)
    except InvalidAddress as exc:
        raise BadAddress(str(exc), address=text) from None


async def check_local_recipient(ctx: OperatorRuntime, rcpt: Address) -> None:
    """A recipient of this operator: a valid patient address if it is one, and an
    existing, open mailbox (domain.policy); the same answer for every way in."""
    try:
        check_patient_address(rcpt)
        mailbox = await ctx.mailbox(rcpt.key)
        check_deliverable(rcpt, exists=mailbox is not None,
                          active=mailbox is not None and mailbox.active)
    except NoSuchMailbox as exc:
        raise UnknownMailbox(str(exc), address=str(rcpt)) from None
    except MailboxClosed as exc:
        raise ClosedMailbox(str(exc), address=str(rcpt)) from None


def checked_headers(body: bytes, *, top: int = 0) -> HeaderView:
    """The headers of a received message, refused when untrustworthy.

    ``top``: the length of what the operator put above the client's data (its
    Received field): the client's first line must begin a field, or it would be read
    as the end of the field above it, ours here or any a later hop adds.
    """
    if body[top:top + 1] in (b" ", b"\t"):
        raise HeadersRefused(
            "Message headers refused: the message begins with a continuation line")
    try:
        return read_headers(body, strict=True)
    except HeaderSyntaxError as exc:
        raise HeadersRefused(f"Message headers refused: {exc}") from None


@dataclass(frozen=True, slots=True)
class Trace:
    """The queue id of a message being received and its Received field (CRLF-ended)."""

    queue_id: str
    received: bytes


def trace(ctx: OperatorRuntime, *, helo: str | None, peer: str | None, protocol: str,
          recipients: Sequence[str]) -> Trace:
    """RFC 5321 §4.4: the trace header of a message about to be received; protocol per
    RFC 3848 (ESMTPS from the MTA, ESMTPSA at submission), or the way it came in."""
    queue_id = uuid.uuid4().hex[:16].upper()
    only = recipients[0] if len(recipients) == 1 else None
    received = received_header(helo=helo, peer=peer, by=ctx.hostname, protocol=protocol,
                               queue_id=queue_id, recipient=only)
    return Trace(queue_id, prepend_headers(b"", [("Received", received)]))


@dataclass(frozen=True, slots=True)
class Incoming:
    envelope_from: str  # "" for the null sender
    recipients: Sequence[tuple[str, RcptParams]]
    body: bytes  # beginning with trace.received
    headers: HeaderView
    envid: str | None
    ret: str | None
    trace: Trace
    sent_copy: str | None = None  # submission: the sender's mailbox, whose Sent keeps a copy
    actor: str = ""  # who handed it in (a login, a certificate's DN), for the audit trail
    source: str = ""  # from where: the protocol and the client's address
    # the sending operator's certificate DN, which keys its XMSS-DELIVERY identifiers
    delivery_peer: str | None = None


def delivery_ids(msg: Incoming) -> list[DeliveryId]:
    """The sending operator's queue entries ``msg`` is for (XMSS-DELIVERY), one per
    recipient that named one."""
    if msg.delivery_peer is None:
        return []
    return [DeliveryId(msg.delivery_peer, p.delivery_id, r.lower())
            for r, p in msg.recipients if p.delivery_id]


def with_added_headers(trace: Trace, headers: Sequence[tuple[str, str]],
                       received: bytes) -> bytes:
    """``received`` (a message, or its header section, beginning with ``trace``) with
    ``headers`` below its Received field: how a message is stored when submission adds
    a From, Date or Message-ID, so that the rules check exactly what is stored."""
    top = len(trace.received)
    return b"".join((trace.received, prepend_headers(b"", list(headers)),
                     memoryview(received)[top:]))


def receipt_notes(local: Sequence[str], body: bytes, from_addresses: Sequence[str]
                  ) -> tuple[ReceiptNote, ...]:
    """What a DSN or an MDN for mailboxes of this operator says of the message it
    reports on (content/reports.py), for that message's timeline. A report speaks only
    for recipients of the domain it comes from (its From, which the acceptance checked
    against the sending operator's certificate or the submitting identity): nobody
    reports that another operator's recipient read a message."""
    report = read_report(body)
    if report is None or report.original_message_id is None:
        return ()
    domains = {a.rpartition("@")[2].lower() for a in from_addresses}
    return tuple(ReceiptNote(mailbox=m, message_id=report.original_message_id,
                             recipient=e.recipient, kind=e.kind, status=e.status,
                             detail=e.detail)
                 for m in local for e in report.entries
                 if e.recipient.rpartition("@")[2] in domains)


def accepted_events(msg: Incoming, local: Sequence[str]) -> list[AuditEvent]:
    """The audit trail's entries of accepting ``msg``: handed in (submission, the web)
    or received from another operator, then stored in each local mailbox."""
    message_id = clip(msg.headers.message_id)
    recipients = clip(", ".join(r for r, _ in msg.recipients))
    handed = (AuditEvent(SUBMISSION, clip(msg.actor), msg.sent_copy, message_id,
                         clip(msg.source), f"to {recipients}")
              if msg.sent_copy is not None else
              AuditEvent(RECEPTION, clip(msg.actor), clip(msg.envelope_from.lower()),
                         message_id, clip(msg.source), f"to {recipients}"))
    return [handed, *(AuditEvent(DELIVERY, clip(msg.actor), address, message_id,
                                 clip(msg.source), f"from {clip(msg.envelope_from)}")
                      for address in local)]


async def accept(ctx: OperatorRuntime, msg: Incoming, *,
                 extra_headers: Sequence[tuple[str, str]] = ()) -> str:
    """Store and queue ``msg``, ``extra_headers`` added below its Received header;
    returns the queue id named in that header."""
    now = time.time()
    queue_id = msg.trace.queue_id
    if not msg.body.startswith(msg.trace.received):
        raise ValueError("the message does not begin with its Received header")
    body = msg.body
    if extra_headers:  # one copy, only when a client left out Date or Message-ID
        body = with_added_headers(msg.trace, extra_headers, body)
    local = [r.lower() for r, _ in msg.recipients if ctx.is_local(r)]
    remote = [OutboundRecipient(r, p.orcpt, p.notify) for r, p in msg.recipients
              if not ctx.is_local(r)]
    summary = MessageSummary(message_id=msg.headers.message_id, subject=msg.headers.subject,
                             from_header=msg.headers.from_header, date_header=msg.headers.date)
    headers = msg.headers
    patient = professional_message(
        envelope_from=msg.envelope_from,
        from_addresses=[m.addr_spec for m in headers.from_mailboxes],
        message_id=headers.message_id, in_reply_to=headers.in_reply_to,
        references=headers.references, subject=headers.subject, mss_mes=headers.x_mss_mes,
        reply_to=[m.addr_spec for m in headers.reply_to])
    reports = receipt_notes(local, msg.body, [m.addr_spec for m in headers.from_mailboxes]
                            ) if local else ()
    care = care_notes(
        envelope_from=msg.envelope_from, sent_from=msg.sent_copy,
        recipients=[r for r, _ in msg.recipients], local=local,
        message_id=headers.message_id, in_reply_to=headers.in_reply_to,
        references=headers.references, subject=headers.subject, mss_mes=headers.x_mss_mes,
        report=bool(reports))
    audit_events = accepted_events(msg, local)
    # an authority's alert is marked for the recipients of this operator (domain/alerts)
    alert = is_alert(alert_header=headers.x_mss_alerte, envelope_from=msg.envelope_from,
                     from_addresses=[m.addr_spec for m in headers.from_mailboxes],
                     authorities=ctx.settings.alert_authorities)
    try:
        accepted = await ctx.store.accept_message(
            body, envelope_from=msg.envelope_from, local=local, remote=remote, summary=summary,
            envid=msg.envid, ret=msg.ret, sent=msg.sent_copy, patient=patient, care=care,
            reports=reports, audit_events=audit_events,
            keywords=(ALERT_KEYWORD,) if alert else (), delivery_ids=delivery_ids(msg))
    except Replayed as exc:
        raise StoredMeanwhile(str(exc)) from None
    except NotFound as exc:  # removed since it was checked
        raise UnknownMailbox(str(exc)) from None
    except Conflict as exc:  # closed since it was checked
        raise ClosedMailbox(str(exc)) from None
    if remote:
        ctx.bodies.put(accepted.sha256, body)
    # After the commit, nothing may turn into a refusal: the client would send the
    # message again. Failures here are logged loudly instead.
    delivered = [RecipientStatus(recipient=r, action=Action.DELIVERED, status="2.0.0",
                                 diagnostic="X-mssante; delivered to mailbox",
                                 orcpt=p.orcpt)
                 for r, p in msg.recipients if ctx.is_local(r) and "SUCCESS" in p.notify]
    try:
        await ctx.send_dsn(to=msg.envelope_from, statuses=delivered, original=body,
                           envid=msg.envid, ret=msg.ret, arrival=now)
    except Exception:
        log.exception("message %s accepted but its success DSN could not be queued", queue_id)
    if remote:
        ctx.wake_queue()
    return queue_id
