"""Target ``smtp_params``: the ESMTP parameters of MAIL and RCPT (smtp/params.py).

The octets are read as aiosmtpd hands a command's argument over with SMTPUTF8 on (UTF-8,
undecodable octets as surrogate escapes) and given to ``parse_mail_params`` and
``parse_rcpt_params``.

Oracles:
- the only exception is ``SMTPReply`` (a 501 or 555 reply);
- what is accepted follows the grammar, checked here by a reference written from the
  RFCs and independent of the parser: RFC 5321 §4.1.2 ``Mail-parameters`` (keyword,
  ``=``, a value of octets 33-60 and 62-126, RFC 6531 §3.3 UTF-8 allowed), parameters
  separated by spaces, each at most once (RFC 3461 §4.1), and per parameter RFC 1870
  (``SIZE=1*20DIGIT``), RFC 6152 (``BODY``), RFC 6531 (``SMTPUTF8`` without value),
  RFC 3461 §4.1-4.4 (``NOTIFY``, ``ORCPT`` as addr-type ``;`` xtext, ``RET``, ``ENVID``
  xtext) and RFC 4954 §5 (``AUTH=`` with a value, xtext or not: it is not used), and
  the project's ``XMSS-DELIVERY=`` xtext on the MTA only;
- what is accepted and written back as the queue relays it (``rcpt_params_wire``,
  ``xtext_encode``) parses to the same parameters.
"""

from __future__ import annotations

import re

from fuzz.oracles import expect
from mssante.operator.accept import RcptParams
from mssante.smtp.params import (
    XMSS_DELIVERY,
    MailParams,
    parse_mail_params,
    parse_rcpt_params,
    rcpt_params_wire,
    xtext_encode,
)
from mssante.smtp.replies import SMTPReply

MAX_LEN = 2048

# RFC 5321 §4.1.2; RFC 6531 §3.3 adds UTF8-non-ascii to esmtp-value (no lone surrogate:
# that is an octet that was not UTF-8)
_PARAM = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\x80-\ud7ff\ue000-\U0010ffff]+))?")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")  # RFC 3461 §4
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")  # RFC 5322 §3.2.3


def grammar(text: str) -> list[tuple[str, str | None]] | None:
    """(upper-case keyword, value) of each parameter, or None when ``text`` is not
    ``Mail-parameters`` (RFC 5321 §4.1.2) with each keyword at most once."""
    out: list[tuple[str, str | None]] = []
    for piece in text.split(" "):
        if not piece:
            continue  # runs of spaces, and spaces around: tolerated as every MTA does
        match = _PARAM.fullmatch(piece)
        if match is None:
            return None
        keyword = match.group(1).upper()
        if any(keyword == seen for seen, _ in out):
            return None
        out.append((keyword, match.group(2)))
    return out


def _mail_agrees(params: list[tuple[str, str | None]], parsed: MailParams) -> None:
    for keyword, value in params:
        if keyword == "SIZE":
            expect(value is not None and re.fullmatch(r"[0-9]{1,20}", value) is not None
                   and parsed.size == int(value), f"SIZE={value!r} read as {parsed.size}")
        elif keyword == "BODY":
            expect(value is not None and value.upper() in ("7BIT", "8BITMIME"),
                   f"BODY={value!r} accepted")
        elif keyword == "SMTPUTF8":
            expect(value is None and parsed.smtputf8, f"SMTPUTF8={value!r} accepted")
        elif keyword == "RET":
            expect(value is not None and value.upper() in ("FULL", "HDRS"),
                   f"RET={value!r} accepted")
        elif keyword == "ENVID":
            expect(value is not None and _XTEXT.fullmatch(value) is not None
                   and parsed.envid is not None and len(parsed.envid) <= 100
                   and all(" " <= c <= "~" for c in parsed.envid),
                   f"ENVID={value!r} accepted as {parsed.envid!r}")
        elif keyword == "AUTH":  # deliberately lenient: any esmtp-value, never used
            expect(value is not None, "AUTH without a value accepted")
        else:
            raise AssertionError(f"MAIL parameter {keyword} accepted")


def _rcpt_agrees(params: list[tuple[str, str | None]], parsed: RcptParams,
                 delivery_ids: bool) -> None:
    for keyword, value in params:
        if keyword == XMSS_DELIVERY:  # the project's own (README "The queue"), MTA only
            expect(delivery_ids and value is not None and _XTEXT.fullmatch(value) is not None
                   and parsed.delivery_id is not None and 0 < len(parsed.delivery_id) <= 100
                   and all("!" <= c <= "~" for c in parsed.delivery_id),
                   f"{XMSS_DELIVERY}={value!r} accepted as {parsed.delivery_id!r}")
            continue
        if keyword == "NOTIFY":
            items = (value or "").upper().split(",")
            expect(value is not None and (
                items == ["NEVER"] or set(items) <= {"SUCCESS", "FAILURE", "DELAY"}),
                f"NOTIFY={value!r} accepted")
            expect(parsed.notify == frozenset(items), f"NOTIFY={value!r} read as {parsed.notify}")
        elif keyword == "ORCPT":
            addr_type, semicolon, addr = (value or "").partition(";")
            expect(semicolon == ";" and _ATOM.fullmatch(addr_type) is not None
                   and _XTEXT.fullmatch(addr) is not None, f"ORCPT={value!r} accepted")
            expect(parsed.orcpt is not None and not any(
                c < " " or c == "\x7f" for c in parsed.orcpt), f"ORCPT read as {parsed.orcpt!r}")
        else:
            raise AssertionError(f"RCPT parameter {keyword} accepted")


def _mail(text: str) -> None:
    try:
        parsed = parse_mail_params(text)
    except SMTPReply as exc:
        expect(exc.reply.code in (501, 555), f"{text!r}: reply {exc.reply}")
        return
    params = grammar(text)
    expect(params is not None, f"MAIL parameters {text!r} accepted against RFC 5321 §4.1.2")
    assert params is not None
    _mail_agrees(params, parsed)
    written = [f"BODY={parsed.body}"]
    if parsed.size is not None:
        written.append(f"SIZE={parsed.size}")
    if parsed.smtputf8:
        written.append("SMTPUTF8")
    if parsed.ret is not None:
        written.append(f"RET={parsed.ret}")
    if parsed.envid is not None:
        written.append(f"ENVID={xtext_encode(parsed.envid)}")
    if parsed.auth is not None:
        written.append(f"AUTH={parsed.auth}")
    again = parse_mail_params(" ".join(written))
    expect(again == parsed, f"{text!r} written as {written} reads {again}, not {parsed}")


def _rcpt(text: str, delivery_ids: bool) -> None:
    try:
        parsed = parse_rcpt_params(text, delivery_ids=delivery_ids)
    except SMTPReply as exc:
        expect(exc.reply.code in (501, 555), f"{text!r}: reply {exc.reply}")
        return
    params = grammar(text)
    expect(params is not None, f"RCPT parameters {text!r} accepted against RFC 5321 §4.1.2")
    assert params is not None
    _rcpt_agrees(params, parsed, delivery_ids)
    written = rcpt_params_wire(parsed)
    if parsed.delivery_id is not None:  # as the queue adds it (queue/worker.py)
        written.append(f"{XMSS_DELIVERY}={xtext_encode(parsed.delivery_id)}")
    again = parse_rcpt_params(" ".join(written), delivery_ids=delivery_ids)
    expect(again == parsed, f"{text!r} relayed as {written} reads {again}, not {parsed}")


def check(data: bytes) -> None:
    text = data[:MAX_LEN].decode("utf-8", "surrogateescape")
    _mail(text)
    _rcpt(text, delivery_ids=False)  # submission
    _rcpt(text, delivery_ids=True)  # the MTA, to another operator
