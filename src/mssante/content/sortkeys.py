"""What IMAP SORT and THREAD read of a message, computed once from its header section
when the message is stored and kept beside it (``messages.sort_keys``, migration
0008s; messages stored before it get theirs at the first SORT, imap/sorting.py).

A ``SortKeys`` holds, per message: the base subject (basesubject.py) and whether it
was a reply or forward, the addr-mailbox of the first From, To and Cc address
(RFC 5256 §3: SORT FROM, TO, CC), the display name of the first From and To address
or its addr-spec (RFC 5957 §3: DISPLAYFROM, DISPLAYTO), the sent date (the Date field
in seconds since the epoch, UTC; None when it cannot be read, and SORT then uses the
INTERNALDATE, RFC 5256 §3 DATE), and what THREAD=REFERENCES links by (RFC 5256 §3
step 1): the Message-ID and the referenced message ids (References, else the first
msg-id of In-Reply-To).

Implementation notes:
- Every string key is case-mapped with i;ascii-casemap (RFC 4790 §9.2), the default
  comparator of SORT (RFC 5256 §2.2), so sorting compares plain strings; Python's
  order of code points is the order of their UTF-8 octets.
- Encoded words are decoded (RFC 5256 §2.1 step 1, RFC 5957 §3 for display names) by
  content.mime.decode_words, the same decoding SEARCH applies.
- ``encode`` and ``decode`` write and read the stored form: a JSON array that starts
  with ``VERSION``; a stored value of another version is computed again.
- Message ids are compared as written, case-sensitively, without their angle
  brackets; only syntactically plausible ids (``<left@right>``) are kept.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from dataclasses import dataclass

from mssante.content.basesubject import base_subject, casemap
from mssante.content.headers import header_section
from mssante.content.mime import Entity, decode_words, header_text
from mssante.domain.addresses import AddressSyntaxError, Group, Mailbox, parse_address_list

VERSION = 1
_MSG_ID = re.compile(r"<\s*([^<>\s@]+@[^<>\s]+?)\s*>")


@dataclass(frozen=True, slots=True)
class SortKeys:
    subject: str  # base subject, case-mapped
    reply: bool  # the subject was a reply or forward (RFC 5256 §2.1)
    from_: str  # addr-mailbox of the first From address, case-mapped ("" if none)
    to: str
    cc: str
    display_from: str  # RFC 5957 §3, case-mapped
    display_to: str
    sent: float | None  # the Date field, epoch seconds; None when unreadable
    message_id: str | None
    references: tuple[str, ...]  # oldest first (References), else In-Reply-To's first


def _first_mailbox(value: str | None) -> Mailbox | None:
    if value is None:
        return None
    try:
        items = parse_address_list(value)
    except AddressSyntaxError:
        return None
    for item in items:
        if isinstance(item, Group):
            if item.mailboxes:
                return item.mailboxes[0]
            continue
        return item
    return None


def _mailbox_key(mailbox: Mailbox | None) -> str:
    return "" if mailbox is None else casemap(mailbox.local)


def _display_key(mailbox: Mailbox | None) -> str:
    """RFC 5957 §3: the decoded display name, else the addr-spec."""
    if mailbox is None:
        return ""
    name = decode_words(mailbox.display_name or "").strip()
    return casemap(name or f"{mailbox.local}@{mailbox.domain}")


def _sent(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as RFC 5322 §3.3 says it means
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.timestamp()
    except (ValueError, OverflowError):
        return None


def message_ids(value: str | None) -> list[str]:
    return [] if not value else _MSG_ID.findall(value)


def keys_of(header: bytes) -> SortKeys:
    """The sort keys of a message from its header section (or the whole message)."""
    root = Entity(header, 0, len(header))

    def text(name: str) -> str | None:
        values = root.values(name)
        return header_text(values[0]) if values else None

    def raw(name: str) -> str | None:
        return root.get(name)

    subject, reply = base_subject(text("subject") or "")
    sender = _first_mailbox(raw("from"))
    recipient = _first_mailbox(raw("to"))
    ids = message_ids(raw("message-id"))
    references = message_ids(raw("references"))
    if not references:
        references = message_ids(raw("in-reply-to"))[:1]
    return SortKeys(subject, reply, _mailbox_key(sender), _mailbox_key(recipient),
                    _mailbox_key(_first_mailbox(raw("cc"))), _display_key(sender),
                    _display_key(recipient), _sent(raw("date")), ids[0] if ids else None,
                    tuple(references))


def stored(message: bytes) -> str:
    """The stored form of a message's sort keys, from its header section."""
    return encode(keys_of(header_section(message)))


def encode(keys: SortKeys) -> str:
    return json.dumps([VERSION, keys.subject, keys.reply, keys.from_, keys.to, keys.cc,
                       keys.display_from, keys.display_to, keys.sent, keys.message_id,
                       list(keys.references)], ensure_ascii=False, separators=(",", ":"))


def decode(stored: str | None) -> SortKeys | None:
    """The stored form back; None when absent, unreadable or of another version."""
    if not stored:
        return None
    try:
        value = json.loads(stored)
        if not isinstance(value, list) or len(value) != 11 or value[0] != VERSION:
            return None
        (_, subject, reply, from_, to, cc, display_from, display_to, sent, message_id,
         references) = value
        return SortKeys(str(subject), bool(reply), str(from_), str(to), str(cc),
                        str(display_from), str(display_to),
                        None if sent is None else float(sent),
                        None if message_id is None else str(message_id),
                        tuple(str(r) for r in references))
    except (ValueError, TypeError):
        return None
