"""SMTP replies, each named once with the specification that decides it.

Enhanced status codes: RFC 3463. Basic codes: RFC 5321 §4.2.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from mssante.operator.refusals import (
    BadAddress,
    ClosedMailbox,
    HeadersRefused,
    MessageTooBig,
    OutsideTrustSpace,
    PatientRule,
    Refused,
    SenderNotAllowed,
    StoredMeanwhile,
    TooManyRecipients,
    UnknownMailbox,
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete SMTP reply: basic code, enhanced code and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.status, text)

    @property
    def permanent(self) -> bool:
        return self.code >= 500


class SMTPReply(Exception):
    """Raised deep in the rules, caught once per command, pushed to the client as is."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")  # RFC 3463 §3.2 X.1.0
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")  # RFC 3463 §3.2 X.1.5
MESSAGE_ACCEPTED = Reply(250, "2.6.0", "Message accepted")

AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")  # RFC 4954 §6
CLIENT_CERT_REQUIRED = Reply(
    530, "5.7.0", "A client certificate from the MSSanté trust space is required")
CERT_REJECTED = Reply(550, "5.7.1", "Client certificate refused")
SENDER_NOT_ALLOWED = Reply(550, "5.7.1", "Sender not allowed")
SENDER_DOMAIN_NOT_LISTED = Reply(550, "5.7.1", "Sender domain not served by your certificate")
RECIPIENT_NOT_IN_TRUST_SPACE = Reply(550, "5.7.1", "Recipient outside the MSSanté trust space")
RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")  # RFC 5321 §3.9
NO_SUCH_USER = Reply(550, "5.1.1", "No such mailbox")  # RFC 3463 X.1.1
MAILBOX_DISABLED = Reply(550, "5.2.1", "Mailbox closed")  # RFC 3463 X.2.1
BAD_ADDRESS_SYNTAX = Reply(553, "5.1.3", "Bad address syntax")  # RFC 3463 X.1.3
PATIENT_RULE = Reply(550, "5.7.1", "Refused by the patient messaging rules")
LINE_TOO_LONG = Reply(500, "5.5.6", "Line too long (RFC 5321 section 4.5.3.1.6)")  # RFC 3463 X.5.6
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message too big for system")  # RFC 1870 §6
BAD_PARAMETER = Reply(501, "5.5.4", "Invalid command arguments")  # RFC 3463 X.5.4
UNKNOWN_PARAMETER = Reply(555, "5.5.4", "Unsupported parameter")  # RFC 5321 §4.1.1.11
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")  # RFC 5321 §4.5.3.1.8
TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure, try again later")
# The store could not write for want of space: nothing was kept, the client keeps the
# message and tries again (RFC 5321 §4.2.3 452 "insufficient system storage";
# RFC 3463 §3.4 X.3.1 "mail system full").
STORAGE_FULL = Reply(452, "4.3.1", "Insufficient system storage, try again later")
HEADER_SYNTAX = Reply(550, "5.6.0", "Message headers are malformed")
REFUSED = Reply(550, "5.7.1", "Refused")  # RFC 3463 §3.8 X.7.1: not authorized

# The reply to each refusal of the acceptance path (operator/refusals.py), its text the
# refusal's reason.
REFUSALS: dict[type[Refused], Reply] = {
    SenderNotAllowed: SENDER_NOT_ALLOWED,
    BadAddress: BAD_ADDRESS_SYNTAX,
    OutsideTrustSpace: RECIPIENT_NOT_IN_TRUST_SPACE,
    UnknownMailbox: NO_SUCH_USER,
    ClosedMailbox: MAILBOX_DISABLED,
    PatientRule: PATIENT_RULE,
    HeadersRefused: HEADER_SYNTAX,
    TooManyRecipients: TOO_MANY_RECIPIENTS,
    MessageTooBig: MESSAGE_TOO_BIG,
    StoredMeanwhile: TEMPORARY_FAILURE,
}


def refusal_reply(refusal: Refused) -> Reply:
    reply = next((REFUSALS[kind] for kind in type(refusal).__mro__ if kind in REFUSALS),
                 REFUSED)
    return reply.with_text(refusal.reason)


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def answers_refusals(hook: F) -> F:
    """A handler hook whose refusals (``Refused``) are raised as their ``SMTPReply``:
    errors converted at the boundary (STYLE 9)."""
    @functools.wraps(hook)
    async def wrapper(*args: Any) -> Any:
        try:
            return await hook(*args)
        except Refused as exc:
            raise SMTPReply(refusal_reply(exc)) from None
    return cast(F, wrapper)
