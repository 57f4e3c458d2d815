"""ESMTP parameters of MAIL and RCPT, parsed without I/O.

aiosmtpd upper-cases every parameter and refuses those it does not know;
DSN (RFC 3461) needs ENVID and ORCPT kept as written, so the server hands the
raw parameter text to these parsers instead. A recipient's parameters are kept in
``operator.accept.RcptParams``, which every way in gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mssante.operator.accept import RcptParams
from mssante.smtp.replies import BAD_PARAMETER, UNKNOWN_PARAMETER, SMTPReply

NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2
# The project's own RCPT parameter between mssante operators (README "The queue"):
# XMSS-DELIVERY=<xtext>, the identifier of the sender's queue entry. Offered by the
# MTA's EHLO only (after STARTTLS, the peer an operator of the trust space).
XMSS_DELIVERY = "XMSS-DELIVERY"
MAX_DELIVERY_ID = 100

_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")  # RFC 5321 §4.1.2 esmtp-keyword
# RFC 5321 §4.1.2 esmtp-value, with RFC 6531 §3.3 UTF8-non-ascii (a lone surrogate is an
# octet that was not UTF-8, as aiosmtpd decodes)
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\x80-\ud7ff\ue000-\U0010ffff]+")
_SIZE = re.compile(r"[0-9]{1,20}")  # RFC 1870 §3: size-value ::= 1*20DIGIT, ASCII digits


def xtext_decode(value: str) -> str:
    """RFC 3461 §4: ``+XX`` is the octet with hex value XX; other chars stand as is.
    Octets are read as UTF-8 (RFC 6533 allows UTF-8 addresses in ORCPT)."""
    for i, char in enumerate(value):
        if not ("!" <= char <= "~") or char == "=":
            raise SMTPReply(BAD_PARAMETER.with_text(f"invalid xtext at position {i}"))
        if char == "+" and not _XTEXT_HEX.match(value, i):
            raise SMTPReply(BAD_PARAMETER.with_text("invalid xtext: '+' needs two hex digits"))
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "+":
            out.append(int(value[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(value[i]))
            i += 1
    return out.decode("utf-8", "replace")


def xtext_encode(value: str) -> str:
    """RFC 3461 §4: encode '+', '=' and characters outside '!'..'~'."""
    out: list[str] = []
    for char in value:
        if "!" <= char <= "~" and char not in "+=":
            out.append(char)
        else:
            out.extend(f"+{b:02X}" for b in char.encode("utf-8"))
    return "".join(out)


def _split(params: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    # RFC 5321 §4.1.2: parameters are separated by SP; str.split() would also split at
    # the other white space of Unicode (\x0b, \x1c, U+2028...), which is no separator
    for token in params.split(" "):
        if not token:
            continue
        key, sep, value = token.partition("=")
        if not _KEYWORD.fullmatch(key) or (sep and not _VALUE.fullmatch(value)):
            raise SMTPReply(BAD_PARAMETER.with_text(f"invalid parameter {token!r}"))
        upper = key.upper()
        if upper in seen:  # RFC 3461 §4.1: each parameter at most once
            raise SMTPReply(BAD_PARAMETER.with_text(f"parameter {upper} given twice"))
        seen.add(upper)
        out.append((upper, value if sep else None))
    return out


@dataclass(slots=True)
class MailParams:
    size: int | None = None  # RFC 1870
    body: str = "7BIT"  # RFC 6152: 7BIT or 8BITMIME
    smtputf8: bool = False  # RFC 6531
    ret: str | None = None  # RFC 3461 §4.3: FULL or HDRS
    envid: str | None = None  # RFC 3461 §4.4, decoded
    auth: str | None = None  # RFC 4954 §5, accepted and ignored


def parse_mail_params(params: str) -> MailParams:
    out = MailParams()
    for key, value in _split(params):
        if key == "SIZE":
            if value is None or not _SIZE.fullmatch(value):
                raise SMTPReply(BAD_PARAMETER.with_text("SIZE needs a number"))
            out.size = int(value)
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise SMTPReply(BAD_PARAMETER.with_text("BODY is 7BIT or 8BITMIME"))
            out.body = value.upper()
        elif key == "SMTPUTF8":
            if value is not None:
                raise SMTPReply(BAD_PARAMETER.with_text("SMTPUTF8 takes no value"))
            out.smtputf8 = True
        elif key == "RET":
            if value is None or value.upper() not in ("FULL", "HDRS"):
                raise SMTPReply(BAD_PARAMETER.with_text("RET is FULL or HDRS"))
            out.ret = value.upper()
        elif key == "ENVID":
            if value is None:
                raise SMTPReply(BAD_PARAMETER.with_text("ENVID needs a value"))
            envid = xtext_decode(value)
            if not all(" " <= c <= "~" for c in envid):  # RFC 3461 §4.4: printable ASCII
                raise SMTPReply(BAD_PARAMETER.with_text("ENVID must be printable ASCII"))
            if len(envid) > MAX_ENVID:
                raise SMTPReply(BAD_PARAMETER.with_text(f"ENVID longer than {MAX_ENVID}"))
            out.envid = envid
        elif key == "AUTH":  # RFC 4954 §5: AUTH=xtext or AUTH=<>; kept as sent, unused
            if value is None:
                raise SMTPReply(BAD_PARAMETER.with_text("AUTH needs a value"))
            out.auth = value
        else:
            raise SMTPReply(UNKNOWN_PARAMETER.with_text(f"MAIL parameter {key} not supported"))
    return out


def parse_rcpt_params(params: str, *, delivery_ids: bool = False) -> RcptParams:
    """``delivery_ids``: XMSS-DELIVERY is offered (the MTA), else refused as unknown."""
    out = RcptParams()
    for key, value in _split(params):
        if key == "NOTIFY":
            if value is None:
                raise SMTPReply(BAD_PARAMETER.with_text("NOTIFY needs a value"))
            listed = value.upper().split(",")
            items = frozenset(listed)
            # RFC 3461 §4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY
            if listed != ["NEVER"] and not items <= NOTIFY_VALUES:
                raise SMTPReply(BAD_PARAMETER.with_text(
                    "NOTIFY is NEVER, or a list of SUCCESS, FAILURE and DELAY"))
            out.notify = items
        elif key == "ORCPT":
            if value is None or ";" not in value:
                raise SMTPReply(BAD_PARAMETER.with_text("ORCPT is addr-type;xtext"))
            addr_type, _, addr = value.partition(";")
            if not _KEYWORD.fullmatch(addr_type):
                raise SMTPReply(BAD_PARAMETER.with_text("ORCPT has an invalid addr-type"))
            decoded = xtext_decode(addr)
            if any(c < " " or c == "\x7f" for c in decoded):
                raise SMTPReply(BAD_PARAMETER.with_text("ORCPT carries a control character"))
            if len(decoded) > MAX_ORCPT:
                raise SMTPReply(BAD_PARAMETER.with_text("ORCPT too long"))
            out.orcpt = f"{addr_type.lower()};{decoded}"
        elif key == XMSS_DELIVERY and delivery_ids:
            if value is None:
                raise SMTPReply(BAD_PARAMETER.with_text(f"{XMSS_DELIVERY} needs a value"))
            ident = xtext_decode(value)
            if not ident or not all("!" <= c <= "~" for c in ident):
                raise SMTPReply(BAD_PARAMETER.with_text(
                    f"{XMSS_DELIVERY} must be printable ASCII without spaces"))
            if len(ident) > MAX_DELIVERY_ID:
                raise SMTPReply(BAD_PARAMETER.with_text(
                    f"{XMSS_DELIVERY} longer than {MAX_DELIVERY_ID}"))
            out.delivery_id = ident
        else:
            raise SMTPReply(UNKNOWN_PARAMETER.with_text(f"RCPT parameter {key} not supported"))
    return out


def rcpt_params_wire(params: RcptParams) -> list[str]:
    """The parameters to relay on the next hop's RCPT (RFC 3461 §5.2)."""
    out: list[str] = []
    if params.notify:
        order = ["NEVER", "SUCCESS", "FAILURE", "DELAY"]
        out.append("NOTIFY=" + ",".join(v for v in order if v in params.notify))
    if params.orcpt:
        addr_type, _, addr = params.orcpt.partition(";")
        out.append(f"ORCPT={addr_type};{xtext_encode(addr)}")
    return out
