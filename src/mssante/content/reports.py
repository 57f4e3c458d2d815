"""Reading the reports that come back about a message: delivery status notifications
(RFC 3464) and message disposition notifications (RFC 8098), as the sender's operator
receives them, for the message's timeline (store/receipts.py).

A report is ``multipart/report`` (RFC 6522) whose ``report-type`` names its second part:
``delivery-status`` (``message/delivery-status``: a per-message group, then one group
per recipient with ``Final-Recipient``, ``Action``, ``Status``) or
``disposition-notification`` (``message/disposition-notification``: ``Final-Recipient``,
``Original-Message-ID``, ``Disposition``). A DSN names the original message by the
``Message-ID`` of the returned message or headers (third part).

Hostile input: read with content/mime.py (bounded structure), fields capped in number
and length; what does not parse is no report (the message is still delivered as mail).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mssante.content.mime import LEAF, MESSAGE, Entity, decode_transfer

MAX_GROUPS = 1000  # recipient groups read from one DSN
MAX_FIELD = 998  # RFC 5322 §2.1.1 line length: longer values are cut
MAX_REPORT = 1024 * 1024  # octets of the status part read

DSN_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
# RFC 8098 §3.2.6.2 disposition types; "processed" is also the ANS integration receipt
DISPOSITIONS = frozenset({"displayed", "deleted", "dispatched", "processed"})

_MSGID = re.compile(r"<[^<>\s]{1,990}>")
_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True, slots=True)
class ReportEntry:
    recipient: str  # the Final-Recipient's address, lower case ("" if none)
    kind: str  # a DSN action or an MDN disposition type
    status: str  # DSN status code, or the MDN disposition as written
    detail: str  # Diagnostic-Code, or the MDN's error/modifier text


@dataclass(frozen=True, slots=True)
class Report:
    report_type: str  # "delivery-status" | "disposition-notification"
    original_message_id: str | None
    entries: tuple[ReportEntry, ...]


def _cut(value: str) -> str:
    return " ".join(value.split())[:MAX_FIELD]


def _groups(text: str) -> list[dict[str, str]]:
    """Field groups separated by empty lines (RFC 3464 §2.1), first value of each name."""
    groups: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                groups.append(current)
                if len(groups) > MAX_GROUPS:
                    break
            current, name = {}, ""
            continue
        if line[0] in " \t" and name:
            current[name] = current[name] + " " + line.strip()
            continue
        field, colon, value = line.partition(":")
        if not colon:
            continue
        name = field.strip().lower()
        if name in current:  # a repeated field: the first counts
            name = ""
            continue
        current[name] = value.strip()
    if current:
        groups.append(current)
    return groups[:MAX_GROUPS + 1]


def _address(value: str | None) -> str:
    """``rfc822; someone@example`` (RFC 3464 §2.3.2) → the address, lower case."""
    if not value:
        return ""
    _, _, address = value.partition(";")
    address = address.strip().strip("<>").strip()
    return address.lower()[:320] if "@" in address else ""


def _message_id(value: str | None) -> str | None:
    found = _MSGID.search(value or "")
    return found.group(0) if found else None


def _status_text(part: Entity) -> str:
    data = part.body[:MAX_REPORT]
    try:
        data = decode_transfer(data, part.encoding)
    except ValueError:
        return ""
    return data.decode("utf-8", "replace")


def read_report(raw: bytes) -> Report | None:
    """The report ``raw`` is, or None when it is not one this module reads."""
    top = Entity(raw, 0, len(raw))
    kind, subtype, params = top.content_type
    if (kind, subtype) != ("multipart", "report"):
        return None
    report_type = next((v.strip('"').lower() for k, v in params if k == "report-type"), "")
    children = top.children
    if report_type not in ("delivery-status", "disposition-notification") or len(children) < 2:
        return None
    status = children[1]
    if status.kind != LEAF or status.content_type[:2] not in (
            ("message", report_type), ("message", "global-" + report_type)):  # RFC 6533 §6
        return None
    groups = _groups(_status_text(status))
    if not groups:
        return None
    if report_type == "disposition-notification":
        fields = groups[0]
        disposition = _cut(fields.get("disposition", ""))
        _, _, after = disposition.partition(";")
        dtype, _, modifier = after.strip().partition("/")
        dtype = dtype.strip().lower()
        if dtype not in DISPOSITIONS:
            return None
        entry = ReportEntry(_address(fields.get("final-recipient")), dtype, disposition,
                            _cut(modifier.strip() or fields.get("error", "")))
        return Report(report_type, _message_id(fields.get("original-message-id")), (entry,))
    entries = []
    for fields in groups[1:]:
        action = fields.get("action", "").strip().lower()
        if action not in DSN_ACTIONS:
            continue
        code = fields.get("status", "").strip()
        entries.append(ReportEntry(_address(fields.get("final-recipient")), action,
                                   code if _STATUS.match(code) else "",
                                   _cut(fields.get("diagnostic-code", ""))))
    original: str | None = None
    if len(children) >= 3:
        returned = children[2]
        if returned.kind == MESSAGE:
            original = _message_id(returned.message.get("message-id"))
        else:  # text/rfc822-headers: the returned header section is the body
            original = _message_id(Entity(returned.raw, returned.body_start,
                                          returned.end).get("message-id"))
    return Report(report_type, original, tuple(entries)) if entries else None
