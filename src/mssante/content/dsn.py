"""Delivery status notifications, RFC 3464 (format) and RFC 3461 (when to send).

A DSN is a ``multipart/report; report-type=delivery-status`` message with three
parts: a text for people, the ``message/delivery-status`` fields, and the original
message (whole for RET=FULL, headers only for RET=HDRS or when no RET was given,
RFC 3461 §4.3).

The ``message/delivery-status`` part is pure US-ASCII (RFC 3464 §2.1): a character
outside it (an accent in a certificate DN quoted by a diagnostic, a UTF-8 address)
is written ``\\x{HHHH}``, the embedded-unicode-char of RFC 6533 §3, and a UTF-8
address gets the ``utf-8`` address type (RFC 6533 §3) instead of ``rfc822``. A
diagnostic names its type: ``smtp`` only for a reply a remote server gave, with
``Remote-MTA`` beside it; a failure decided here (the domain left the whitelist,
the next hop's certificate is not listed for it, no connection) is
``X-mssante`` (RFC 3464 §2.3.6) and has no ``Remote-MTA`` (§2.3.5).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from enum import StrEnum

from mssante.content.headers import header_section, rfc5322_date


class Action(StrEnum):  # RFC 3464 §2.3.3
    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"
    EXPANDED = "expanded"


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    recipient: str  # Final-Recipient (rfc822)
    action: Action
    status: str  # enhanced status code, e.g. 5.1.1 (RFC 3463)
    # "smtp; 550 5.1.1 No such mailbox" (a remote server's reply, with remote_mta), or
    # "X-mssante; ..." for a failure decided locally (RFC 3464 §2.3.6)
    diagnostic: str | None = None
    orcpt: str | None = None  # "rfc822;addr" from the RCPT ORCPT parameter
    remote_mta: str | None = None  # the server that answered; None when none did
    will_retry_until: float | None = None  # for Action.DELAYED


_SUBJECTS = {
    Action.FAILED: "Undelivered Mail Returned to Sender / Message non distribué",
    Action.DELAYED: "Delayed Mail (still being retried) / Message retardé",
    Action.DELIVERED: "Successful Mail Delivery Report / Message distribué",
    Action.RELAYED: "Successful Mail Delivery Report / Message relayé",
    Action.EXPANDED: "Successful Mail Delivery Report",
}

_EXPLANATIONS = {
    Action.FAILED: ("Your message could not be delivered to the following recipients. "
                    "Votre message n'a pas pu être distribué aux destinataires suivants."),
    Action.DELAYED: ("Your message has not been delivered yet; delivery is being retried. "
                     "Votre message n'est pas encore distribué ; de nouvelles tentatives "
                     "sont en cours."),
    Action.DELIVERED: ("Your message was delivered to the following recipients. "
                       "Votre message a été distribué aux destinataires suivants."),
    Action.RELAYED: ("Your message was relayed to a server that does not return delivery "
                     "notifications. Votre message a été relayé."),
    Action.EXPANDED: "Your message was expanded.",
}


def ascii_field(text: str) -> str:
    """``text`` as US-ASCII for a delivery-status field (RFC 3464 §2.1): each other
    character as RFC 6533 §3's ``\\x{HHHH}``, line breaks and controls as spaces."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(" ")
        elif ord(ch) < 0x80:
            out.append(ch)
        else:
            out.append(f"\\x{{{ord(ch):X}}}")  # no leading zeros
    return "".join(out)


def address_field(address: str) -> str:
    """An address-type and address (RFC 3464 §2.3.2): ``rfc822`` for an ASCII address,
    ``utf-8`` with RFC 6533 §3's escapes for an internationalised one."""
    if address.isascii():
        return f"rfc822; {ascii_field(address)}"
    return f"utf-8; {ascii_field(address)}"


def build_dsn(*, reporting_mta: str, from_address: str, to: str,
              statuses: Sequence[RecipientStatus], original: bytes, envid: str | None,
              ret: str | None, arrival: float, now: float | None = None) -> bytes:
    """Build the report sent to ``to`` (the original envelope sender)."""
    now = time.time() if now is None else now
    action = statuses[0].action
    boundary = f"=_dsn_{uuid.uuid4().hex}"
    head = header_section(original)
    returned = original if ret == "FULL" else head
    returned_type = "message/rfc822" if ret == "FULL" else "text/rfc822-headers"

    human = [_EXPLANATIONS[action], ""]
    for st in statuses:
        line = f"  <{st.recipient}>: {st.diagnostic or st.status}"
        human.append(line)
    # RFC 3464 §2.2: per-message fields, then a blank line before each recipient block.
    fields = [f"Reporting-MTA: dns; {ascii_field(reporting_mta)}"]
    if envid:
        fields.append(f"Original-Envelope-Id: {ascii_field(envid)}")
    fields.append(f"Arrival-Date: {rfc5322_date(arrival)}")
    blocks = ["\r\n".join(fields)]
    for st in statuses:
        rf: list[str] = []
        if st.orcpt:
            rf.append(f"Original-Recipient: {ascii_field(st.orcpt)}")
        rf.append(f"Final-Recipient: {address_field(st.recipient)}")
        rf.append(f"Action: {st.action}")  # RFC 3464 §2.3.3
        rf.append(f"Status: {st.status}")  # RFC 3464 §2.3.4
        if st.remote_mta:
            rf.append(f"Remote-MTA: dns; {ascii_field(st.remote_mta)}")
        if st.diagnostic:
            rf.append(f"Diagnostic-Code: {ascii_field(st.diagnostic)}")
        rf.append(f"Last-Attempt-Date: {rfc5322_date(now)}")
        if st.will_retry_until is not None:
            rf.append(f"Will-Retry-Until: {rfc5322_date(st.will_retry_until)}")
        blocks.append("\r\n".join(rf))
    domain = reporting_mta
    headers = [
        f"From: Mail Delivery System <{from_address}>",
        f"To: <{to}>",
        f"Subject: {Header(_SUBJECTS[action], 'utf-8').encode()}",  # RFC 2047
        f"Date: {rfc5322_date(now)}",
        f"Message-ID: <{uuid.uuid4().hex}@{domain}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    parts = [
        "\r\n".join(headers),
        "",
        "This is a MIME-encapsulated delivery status notification.",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "\r\n".join(human),
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        "\r\n\r\n".join(blocks),
        "",
        f"--{boundary}",
        f"Content-Type: {returned_type}",
        "",
    ]
    text = "\r\n".join(parts).encode("utf-8")
    return text + b"\r\n" + returned.rstrip(b"\r\n") + f"\r\n\r\n--{boundary}--\r\n".encode()
