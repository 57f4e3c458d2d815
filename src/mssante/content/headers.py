"""Reading and adding the few headers the operator needs, without parsing bodies.

Only the header section is parsed (RFC 5322 §2.1: it ends at the first empty
line), so a 25 MB attachment costs nothing here and broken MIME below the headers
never prevents delivery.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

_PARSER = HeaderParser(policy=compat32)
MAX_HEADER_SECTION = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HeaderView:
    """The headers the rules look at, decoded."""

    message_id: str | None
    subject: str | None
    from_header: str | None
    from_addresses: tuple[str, ...]
    reply_to: tuple[str, ...]
    in_reply_to: str | None
    references: str | None
    date: str | None
    x_mss_mes: str | None
    has_date: bool

    @property
    def referenced_ids(self) -> str:
        return " ".join(v for v in (self.in_reply_to, self.references) if v)


def split_message(body: bytes) -> tuple[bytes, bytes]:
    """Header section (with its final CRLF) and the rest (starting at the empty line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        index = body.find(sep, 0, MAX_HEADER_SECTION)
        if index >= 0:
            cut = index + len(sep) // 2
            return body[:cut], body[cut:]
    return body, b""


def _text(msg: Message, name: str) -> str | None:
    raw = msg.get(name)
    if raw is None:
        return None
    try:
        return str(make_header(decode_header(str(raw)))).strip()
    except (UnicodeError, LookupError, ValueError):
        return str(raw).strip()


def _addresses(msg: Message, name: str) -> tuple[str, ...]:
    values = [str(v) for v in msg.get_all(name, [])]
    return tuple(addr for _, addr in email.utils.getaddresses(values) if addr)


def read_headers(body: bytes) -> HeaderView:
    head, _ = split_message(body)
    # RFC 6532: header fields may carry raw UTF-8; RFC 2047 words are decoded by _text.
    msg = _PARSER.parsestr(head.decode("utf-8", "replace"))
    return HeaderView(
        message_id=_text(msg, "Message-ID"),
        subject=_text(msg, "Subject"),
        from_header=_text(msg, "From"),
        from_addresses=_addresses(msg, "From"),
        reply_to=_addresses(msg, "Reply-To"),
        in_reply_to=_text(msg, "In-Reply-To"),
        references=_text(msg, "References"),
        date=_text(msg, "Date"),
        x_mss_mes=_text(msg, "X-MSS-MES"),
        has_date=msg.get("Date") is not None,
    )


def rfc5322_date(ts: float | None = None) -> str:
    """RFC 5322 §3.3 date in UTC with the "+0000" zone (``-0000`` would mean "unknown")."""
    moment = dt.datetime.now(dt.UTC) if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)
    return email.utils.format_datetime(moment)


def prepend_headers(body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """Put headers on top of the message, CRLF-terminated (RFC 5321 §4.4 for Received)."""
    lines = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)
    return lines + body


def received_header(*, helo: str | None, peer: str | None, by: str, protocol: str,
                    queue_id: str, recipient: str | None) -> str:
    """RFC 5321 §4.4 trace header; protocol per RFC 3848 (ESMTPS, ESMTPSA)."""
    parts = [f"from {helo or 'unknown'} ({peer or 'unknown'})", f"by {by} (mssante)",
             f"with {protocol} id {queue_id}"]
    if recipient:
        parts.append(f"for <{recipient}>")
    return "\r\n\t".join(parts) + "; " + rfc5322_date()
