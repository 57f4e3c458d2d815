"""Sending as an authenticated identity: the one path of submission and the web.

Whatever way a person or a program hands a message in (submission on 587 and 465,
the webmail), these functions decide, with the rules of ``domain/``, and store it
with ``accept.accept``: the same rules, the same Sent copy, the same queue. They
raise ``operator/refusals.py``'s refusals, which each way in turns into its answer.

Implementation notes:
- Three stages, as SMTP has them: ``check_sender`` (MAIL), ``check_recipient``
  (RCPT), ``submit_data`` (DATA). ``submit`` runs the three for a message handed in
  whole (the web).
- The sender, the ``From`` mailboxes and the ``Sender`` mailbox must be mailboxes
  the identity may use (domain.policy.check_may_send_as). The rights are read again
  from the store at each stage (``usable_senders``), never kept from the login: a
  delegate revoked meanwhile can no longer send.
- ``From`` must be exactly one mailbox (domain.addresses, the parser every reader
  uses). A message without a From field gets one, the sender; a message with one,
  whatever its value, never gets a second.
- Every recipient must be in the trust space: on the whitelist (remote) or an
  existing, open local mailbox. Refusals name the address and the reason.
- A patient may only reply in an open conversation (domain.patient): each recipient
  is checked when it is given, the threading headers with the message.
- Missing Date and Message-ID are added (RFC 6409 §8.2, §8.3).
- The accepted message is kept, marked \\Seen, in the Sent folder of the sender's
  mailbox, in the same transaction: an IMAP client need not APPEND it again.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass

from mssante.audit.events import actor_of
from mssante.auth.identity import Identity
from mssante.content.headers import crlf_line_endings, header_section, rfc5322_date
from mssante.domain.addresses import Address, is_trust_space_domain, parse_address
from mssante.domain.patient import check_patient_recipient, check_patient_reply, message_ids
from mssante.domain.policy import (
    check_may_send_as,
    check_patient_address,
    check_recipient_in_trust_space,
)
from mssante.errors import InvalidAddress, PolicyViolation
from mssante.operator import maillog
from mssante.operator.accept import (
    Incoming,
    RcptParams,
    Trace,
    accept,
    check_local_recipient,
    checked_headers,
    parse_recipient,
    trace,
    with_added_headers,
)
from mssante.operator.refusals import (
    BadAddress,
    MessageTooBig,
    OutsideTrustSpace,
    PatientRule,
    SenderNotAllowed,
    UnknownMailbox,
)
from mssante.operator.runtime import OperatorRuntime

SUBMISSION = maillog.SUBMISSION  # RFC 3848 ESMTPSA: submission's protocol


@dataclass(frozen=True, slots=True)
class Client:
    """Who hands the message in, for its Received field and the mail log."""

    protocol: str  # RFC 3848 "ESMTPSA" at submission; the web names its own
    address: str | None = None  # the client's IP address
    helo: str | None = None  # the name it gave itself (EHLO), if any


@dataclass(frozen=True, slots=True)
class Submission:
    """A message and its envelope, as an identity hands them in."""

    sender: str  # the envelope sender: a mailbox the identity may use
    recipients: Sequence[tuple[str, RcptParams]]  # each with its DSN parameters
    body: bytes  # the RFC 5322 message, CRLF line endings (submit_data: below trace)
    envid: str | None = None  # RFC 3461 §4.4, as given
    ret: str | None = None  # RFC 3461 §4.3: FULL or HDRS


async def usable_senders(ctx: OperatorRuntime, identity: Identity) -> frozenset[str]:
    """The mailboxes (lower case) ``identity`` may send as, read now: a grant,
    revocation or closed mailbox counts from the next call, as over IMAP."""
    store = ctx.store
    if identity.is_program:
        return frozenset(m.address for m in
                         await store.mailboxes_for_certificate(identity.login))
    return await store.usable_mailboxes(identity.login)


async def check_sender(ctx: OperatorRuntime, identity: Identity, address: str) -> Address:
    """The envelope sender ``address``, if ``identity`` may send as it."""
    if not address:
        raise SenderNotAllowed("The null sender is not allowed here")
    try:
        sender = parse_address(address)
    except InvalidAddress as exc:
        raise BadAddress(str(exc), address=address) from None
    try:
        check_may_send_as(identity.login, sender, await usable_senders(ctx, identity))
    except PolicyViolation as exc:
        raise SenderNotAllowed(str(exc), address=address) from None
    return sender


async def check_recipient(ctx: OperatorRuntime, identity: Identity, sender: str,
                          address: str, *, accepted: int = 0) -> Address:
    """Recipient ``address`` of a message from ``sender`` (checked already) that has
    ``accepted`` recipients already: the patient rules for a patient, then a local
    mailbox that exists and is open, or a remote one in the trust space."""
    rcpt = parse_recipient(address, accepted=accepted)
    if identity.is_patient:
        conversations = await ctx.store.conversations(sender.lower())
        try:
            check_patient_recipient(rcpt.key, rcpt.is_patient, conversations)
        except PolicyViolation as exc:
            raise PatientRule(f"{rcpt}: {exc}", address=str(rcpt)) from None
    if ctx.is_local(rcpt.key):
        await check_local_recipient(ctx, rcpt)
    else:
        _check_remote(ctx, rcpt)
    return rcpt


def _check_remote(ctx: OperatorRuntime, rcpt: Address) -> None:
    listed = is_trust_space_domain(rcpt.domain) and ctx.trust.whitelist.is_listed(rcpt.domain)
    try:
        check_recipient_in_trust_space(rcpt, listed)
    except PolicyViolation as exc:
        raise OutsideTrustSpace(str(exc), address=str(rcpt)) from None
    try:
        check_patient_address(rcpt)
    except PolicyViolation as exc:
        raise UnknownMailbox(str(exc), address=str(rcpt)) from None


async def submit(ctx: OperatorRuntime, identity: Identity, message: Submission,
                 client: Client) -> str:
    """Check, store and queue a message handed in whole; returns its queue id.

    The sender and each recipient are checked as ``check_sender`` and
    ``check_recipient`` do (the first refusal is raised), then the message as
    ``submit_data`` does. Bare CR or LF line endings are made CRLF.
    """
    limit = ctx.settings.max_message_size
    if len(message.body) > limit:  # as SMTP's SIZE limit (RFC 1870)
        raise MessageTooBig(f"Message exceeds the limit of {limit} bytes")
    if not message.recipients:  # RFC 5321 §3.3: at least one RCPT
        raise BadAddress("A message needs at least one recipient")
    await check_sender(ctx, identity, message.sender)
    for accepted, (recipient, _) in enumerate(message.recipients):
        await check_recipient(ctx, identity, message.sender, recipient, accepted=accepted)
    received = trace(ctx, helo=client.helo, peer=client.address, protocol=client.protocol,
                     recipients=[r for r, _ in message.recipients])
    body = received.received + crlf_line_endings(message.body)
    return await submit_data(
        ctx, identity, Submission(message.sender, message.recipients, body, message.envid,
                                  message.ret), client, received)


async def submit_data(ctx: OperatorRuntime, identity: Identity, message: Submission,
                      client: Client, received: Trace) -> str:
    """The last stage: the message of a transaction whose sender and recipients were
    checked one by one. ``message.body`` begins with ``received`` (the trace made
    before the data was read). The rights are checked again, the headers read and
    checked, From, Date and Message-ID added if missing; then the message is stored,
    with its Sent copy, and queued; returns the queue id."""
    body = message.body
    sender = message.sender
    headers = checked_headers(body, top=len(received.received))
    usable = await usable_senders(ctx, identity)
    try:  # the sender again: the rights may have changed since it was checked
        check_may_send_as(identity.login, parse_address(sender), usable)
    except (InvalidAddress, PolicyViolation) as exc:
        raise SenderNotAllowed(str(exc), address=sender) from None
    authors = [("From", m) for m in headers.from_mailboxes]
    if headers.sender is not None:
        authors.append(("Sender", headers.sender))
    for field, mailbox in authors:
        try:
            check_may_send_as(identity.login, mailbox.address(), usable)
        except (InvalidAddress, PolicyViolation) as exc:
            raise SenderNotAllowed(f"{field} header: {exc}",
                                   address=mailbox.addr_spec) from None
    recipients = [r for r, _ in message.recipients]
    if identity.is_patient:
        await _check_patient_reply(ctx, sender.lower(), recipients, headers.referenced_ids)
    extra: list[tuple[str, str]] = []
    if not headers.has_from:  # RFC 5322 §3.6 requires one; never beside one already there
        extra.append(("From", f"<{sender}>"))
    if not headers.has_date:
        extra.append(("Date", rfc5322_date()))
    if not headers.message_id:
        extra.append(("Message-ID", email.utils.make_msgid(domain=sender.rpartition("@")[2])))
    if extra:  # accept puts them below Received, in one copy of the message
        # the header section exactly as it will be stored, checked again
        headers = checked_headers(with_added_headers(received, extra, header_section(body)))
    msg = Incoming(
        envelope_from=sender, recipients=list(message.recipients), body=body,
        headers=headers, envid=message.envid, ret=message.ret, trace=received,
        sent_copy=sender.lower() if ctx.is_local(sender) else None,
        actor=actor_of(identity.login, identity.psc.subject if identity.psc else None,
                       identity.app_password),
        source=f"{client.protocol} {client.address or ''}".strip())
    queue_id = await accept(ctx, msg, extra_headers=extra)
    maillog.submitted(queue_id, sender=sender, recipients=recipients, size=len(body),
                      client=client.address, login=identity.login, protocol=client.protocol)
    return queue_id


async def _check_patient_reply(ctx: OperatorRuntime, patient: str, recipients: Sequence[str],
                               referenced: str) -> None:
    store = ctx.store
    threads = await store.threads_of(patient, message_ids(referenced))
    try:
        check_patient_reply([r.lower() for r in recipients], threads,
                            await store.conversations(patient))
    except PolicyViolation as exc:
        raise PatientRule(str(exc)) from None
