"""Reading and adding the few headers the operator needs, without parsing bodies.

Only the header section is parsed (RFC 5322 §2.1: it ends at the first empty
line), so a 25 MB attachment costs nothing here and broken MIME below the headers
never prevents delivery.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from dataclasses import dataclass
from email.header import decode_header, make_header

from mssante.domain.addresses import (
    AddressSyntaxError,
    Mailbox,
    mailboxes,
    parse_address_list,
    parse_one_mailbox,
    readable,
)

MAX_HEADER_SECTION = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HeaderView:
    """The headers the rules look at, decoded."""

    message_id: str | None
    subject: str | None
    from_header: str | None
    has_from: bool  # a From field is present, whatever its value
    from_mailboxes: tuple[Mailbox, ...]  # one when valid; empty when absent or unparseable
    sender: Mailbox | None
    reply_to: tuple[Mailbox, ...]
    in_reply_to: str | None
    references: str | None
    date: str | None
    x_mss_mes: str | None
    has_date: bool
    has_bcc: bool  # only a sender's own copy keeps its Bcc
    x_mss_alerte: str | None = None  # domain/alerts.py: an authority's alert id

    @property
    def referenced_ids(self) -> str:
        return " ".join(v for v in (self.in_reply_to, self.references) if v)


_BARE_EOL = re.compile(rb"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def canonical_line_endings(body: bytes) -> bytes:
    """Every line ending as CRLF (a bare CR or LF becomes one), ending with CRLF.

    Applied when a message is received, so that what the rules read, what is stored
    and what is relayed are the same lines: a bare CR hidden in a header must not
    become a new header field at the next hop.
    """
    body = crlf_line_endings(body)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body


def crlf_line_endings(data: bytes) -> bytes:
    """Every bare CR or LF of ``data`` made CRLF; ``data`` itself when there is none."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        return _BARE_EOL.sub(b"\r\n", data)
    return data


def header_section(body: bytes) -> bytes:
    """The header section (with its final CRLF), copied alone: reading the headers of a
    25 MB message costs the size of its headers. Without an empty line within
    MAX_HEADER_SECTION octets, the message is all header."""
    if body.startswith(b"\r\n"):
        return b""
    index = body.find(b"\r\n\r\n", 0, MAX_HEADER_SECTION)
    return body[:index + 2] if index >= 0 else body


_WANTED = frozenset({"bcc", "message-id", "subject", "from", "sender", "reply-to",
                     "in-reply-to", "references", "date", "x-mss-mes", "x-mss-alerte"})
# RFC 5322 §3.6: fields that occur at most once; a second one could show a reader
# another value than the one the rules read.
_ONCE = ("from", "sender", "reply-to")


class HeaderSyntaxError(ValueError):
    """The header section cannot be trusted: control characters, a repeated field that
    must occur once, or an address field that does not parse."""


# RFC 5322 §2.2, §3.6.8: a field name is printable US-ASCII but the colon, then the
# colon (obsolete syntax allows white space before it, RFC 5322 §4.5.8). IMAP reads
# names the same way (imap/mime.py), so the rules and every reader see the same fields.
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+[ \t]*\Z")


def _fields(text: str, *, strict: bool = False) -> dict[str, list[str]]:
    """The wanted fields of a header section, unfolded (RFC 5322 §2.2.3).

    Lines end with CRLF only (see canonical_line_endings). Raw UTF-8 is allowed
    (RFC 6532) in values. A line that is neither a field nor a continuation is skipped,
    so broken headers never stop delivery; ``strict`` refuses it instead, and a first
    line that continues nothing, since such a line would be read as part of whatever
    field a later hop puts above it.
    """
    pieces: dict[str, list[list[str]]] = {}
    current: list[str] | None = None
    for number, line in enumerate(text.split("\r\n"), 1):
        if not line:
            break
        if line[0] in " \t":
            if current is not None:
                current.append(line)
            elif strict and number == 1:
                raise HeaderSyntaxError("the header section begins with a continuation line")
            continue
        name, sep, value = line.partition(":")
        if not sep or not _FIELD_NAME.match(name):
            if strict:
                raise HeaderSyntaxError(f"header line {number} is not a header field")
            current = None
            continue
        key = name.rstrip(" \t").lower()
        if key not in _WANTED:
            current = None
            continue
        current = [value]
        pieces.setdefault(key, []).append(current)
    return {key: ["".join(parts).strip() for parts in values]
            for key, values in pieces.items()}


def _check(text: str, fields: dict[str, list[str]]) -> None:
    """Refuse what would let a message look different to a reader than to the rules:
    control characters in the header section (RFC 5322 §2.2: printable characters,
    space and tab), a From, Sender or Reply-To given twice (RFC 5322 §3.6), a From or
    Sender that is not exactly one mailbox, a Reply-To that is not an address list
    (RFC 5322 §3.6.2; domain.addresses is the one parser every reader uses)."""
    match = _CONTROL.search(text.replace("\r\n", ""))
    if match:
        raise HeaderSyntaxError(f"control character {match.group()!r} in the header section")
    for name in _ONCE:
        if len(fields.get(name, [])) > 1:
            raise HeaderSyntaxError(f"more than one {_TITLES[name]} header field")
    for name, parse in (("from", parse_one_mailbox), ("sender", parse_one_mailbox),
                        ("reply-to", parse_address_list)):
        for value in fields.get(name, []):
            try:
                parse(value)
            except AddressSyntaxError as exc:
                raise HeaderSyntaxError(f"{_TITLES[name]} header: {exc}") from None


_TITLES = {"from": "From", "sender": "Sender", "reply-to": "Reply-To"}


def check_header_section(body: bytes) -> None:
    """The checks of ``read_headers(body, strict=True)``, for a caller without a use
    for the fields."""
    read_headers(body, strict=True)


def _decoded(value: str) -> str:
    """RFC 2047 encoded words, decoded when present."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value))).strip()
    except (UnicodeError, LookupError, ValueError):
        return value


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return _decoded(values[0]) if values else None


def address_text(value: str) -> str:
    """An address field as a person reads it (domain.addresses.readable), kept as the
    message's From summary: what listings show and SEARCH FROM matches. The decoded
    value when it does not parse."""
    try:
        return readable(parse_address_list(value), _decoded)
    except AddressSyntaxError:
        return _decoded(value)


def _mailboxes(fields: dict[str, list[str]], name: str) -> tuple[Mailbox, ...]:
    """The mailboxes of the first ``name`` field; empty when absent or unparseable (the
    strict read refuses the latter before anything uses it)."""
    values = fields.get(name)
    if not values:
        return ()
    try:
        return mailboxes(parse_address_list(values[0]))
    except AddressSyntaxError:
        return ()


def read_headers(body: bytes, *, strict: bool = False) -> HeaderView:
    """The headers the rules need, in one pass; ``strict`` raises HeaderSyntaxError for
    a header section that cannot be trusted (see _check)."""
    head = header_section(body)
    if len(head) > MAX_HEADER_SECTION:  # no empty line early on: the body is not decoded
        if strict:
            raise HeaderSyntaxError(f"header section longer than {MAX_HEADER_SECTION} octets")
        head = head[:MAX_HEADER_SECTION]
    text = head.decode("utf-8", "replace")
    fields = _fields(text, strict=strict)
    if strict:
        _check(text, fields)
    return HeaderView(
        message_id=_first(fields, "message-id"),
        subject=_first(fields, "subject"),
        from_header=address_text(fields["from"][0]) if "from" in fields else None,
        has_from="from" in fields,
        from_mailboxes=_mailboxes(fields, "from"),
        sender=next(iter(_mailboxes(fields, "sender")), None),
        reply_to=_mailboxes(fields, "reply-to"),
        in_reply_to=_first(fields, "in-reply-to"),
        references=_first(fields, "references"),
        date=_first(fields, "date"),
        x_mss_mes=_first(fields, "x-mss-mes"),
        has_date="date" in fields,
        has_bcc="bcc" in fields,
        x_mss_alerte=_first(fields, "x-mss-alerte"),
    )


def rfc5322_date(ts: float | None = None) -> str:
    """RFC 5322 §3.3 date in UTC with the "+0000" zone (``-0000`` would mean "unknown")."""
    moment = dt.datetime.now(dt.UTC) if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)
    return email.utils.format_datetime(moment)


def prepend_headers(body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """Put headers on top of the message, CRLF-terminated (RFC 5321 §4.4 for Received).
    A value may be folded ("CRLF" + tab) but carries no other control character."""
    for name, value in headers:
        if _CONTROL.search(name) or _CONTROL.search(value.replace("\r\n\t", "")):
            raise ValueError(f"control character in header {name!r}")
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
