"""Behaviour both SMTP handlers share: EHLO keywords, DATA checks, recipients."""

from __future__ import annotations

from aiosmtpd.smtp import Envelope, Session

from mssante.content.headers import HeaderSyntaxError, HeaderView, read_headers
from mssante.domain.addresses import Address, parse_address
from mssante.domain.policy import (
    MailboxClosed,
    NoSuchMailbox,
    check_deliverable,
    check_patient_address,
)
from mssante.errors import InvalidAddress
from mssante.operator.runtime import OperatorRuntime
from mssante.smtp.replies import (
    BAD_ADDRESS_SYNTAX,
    HEADER_SYNTAX,
    MAILBOX_DISABLED,
    NO_SUCH_USER,
    TOO_MANY_RECIPIENTS,
    SMTPReply,
)

MAX_RECIPIENTS = 1000  # RFC 5321 §4.5.3.1.8 requires at least 100


def ehlo_keywords(responses: list[str], *, advertise_auth: bool) -> list[str]:
    """Add PIPELINING (RFC 2920), DSN (RFC 3461), ENHANCEDSTATUSCODES (RFC 2034)."""
    head, tail = responses[:-1], responses[-1]
    if not advertise_auth:
        head = [r for r in head if not r.startswith("250-AUTH")]
    return [*head, "250-PIPELINING", "250-DSN", "250-ENHANCEDSTATUSCODES", tail]


def recipient_address(envelope: Envelope, text: str) -> Address:
    if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
        raise SMTPReply(TOO_MANY_RECIPIENTS)
    try:
        return parse_address(text)
    except InvalidAddress as exc:
        raise SMTPReply(BAD_ADDRESS_SYNTAX.with_text(str(exc))) from None


async def check_local_recipient(ctx: OperatorRuntime, rcpt: Address) -> None:
    """A recipient of this operator: a valid patient address if it is one, and an
    existing, open mailbox (domain.policy); the same answer at the MTA and at
    submission."""
    try:
        check_patient_address(rcpt)
        mailbox = await ctx.mailbox(rcpt.key)
        check_deliverable(rcpt, exists=mailbox is not None,
                          active=mailbox is not None and mailbox.active)
    except NoSuchMailbox as exc:
        raise SMTPReply(NO_SUCH_USER.with_text(str(exc))) from None
    except MailboxClosed as exc:
        raise SMTPReply(MAILBOX_DISABLED.with_text(str(exc))) from None


def checked_headers(body: bytes, *, top: int = 0) -> HeaderView:
    """The headers of a received message, refused with 550 5.6.0 when untrustworthy.

    ``top``: the length of what the operator put above the client's data (its
    Received field): the client's first line must begin a field, or it would be read
    as the end of the field above it, ours here or any a later hop adds.
    """
    if body[top:top + 1] in (b" ", b"\t"):
        raise SMTPReply(HEADER_SYNTAX.with_text(
            "Message headers refused: the message begins with a continuation line"))
    try:
        return read_headers(body, strict=True)
    except HeaderSyntaxError as exc:
        raise SMTPReply(HEADER_SYNTAX.with_text(f"Message headers refused: {exc}")) from None


def peer_host(session: Session) -> str | None:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None
