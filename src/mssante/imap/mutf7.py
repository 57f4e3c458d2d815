"""Modified UTF-7, the IMAP4rev1 encoding of mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII other than ``&`` stands for itself, ``&`` is ``&-``, and every
other run of characters is UTF-16BE in base64 (``,`` for ``/``, no padding)
between ``&`` and ``-``: ``Entwürfe`` is ``Entw&APw-rfe``. IMAP4rev2 clients
(RFC 9051 §5.1) and IMAP4rev1 clients after ``ENABLE UTF8=ACCEPT`` send UTF-8
instead; this module only concerns the others.

Implementation notes:
- ``encode`` always writes the canonical form: one base64 run per run of
  non-printable characters, no needless shift. ``decode`` is strict where the RFC
  says MUST: it rejects 8-bit octets and control characters, unterminated shifts,
  base64 outside the modified alphabet, leftover bits that are not zero, an odd
  number of UTF-16 octets or unpaired surrogates, and printable US-ASCII encoded in
  base64 (RFC 3501 §5.1.3: "MUST be represented by themselves"). Two adjacent
  base64 runs are accepted (only a non-canonical split of one run).
- Both directions are pure functions of their argument; names without ``&`` nor
  anything outside printable US-ASCII take a fast path that only checks them.
"""

from __future__ import annotations

import base64
import binascii
import re

# RFC 3501 §5.1.3: 0x20-0x25 and 0x27-0x7e represent themselves
_PLAIN_TEXT = re.compile(r"[\x20-\x25\x27-\x7e]*")
_SHIFT_RUN = re.compile(r"[^\x20-\x7e]+")
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")
_MODIFIED_BASE64 = re.compile(rb"[A-Za-z0-9+,]+")
_DIRECT = re.compile(r"[\x20-\x7e]")


def encode(name: str) -> bytes:
    """The modified UTF-7 form of ``name``. Raises ``UnicodeEncodeError`` (a
    ``ValueError``) for a lone surrogate, which no mailbox name contains."""
    if _PLAIN_TEXT.fullmatch(name):
        return name.encode("ascii")
    return _SHIFT_RUN.sub(_encode_run, name.replace("&", "&-")).encode("ascii")


def _encode_run(match: re.Match[str]) -> str:
    octets = match.group().encode("utf-16-be")
    return "&" + base64.b64encode(octets).rstrip(b"=").replace(b"/", b",").decode("ascii") + "-"


def decode(data: bytes | str) -> str:
    """The mailbox name that modified UTF-7 ``data`` stands for; ``ValueError``
    with a message fit for a BAD response when ``data`` is not modified UTF-7."""
    if isinstance(data, str):
        if not data.isascii():
            raise ValueError("8-bit character in a modified UTF-7 name")
        data = data.encode("ascii")
    if not _PRINTABLE.fullmatch(data):
        if not data.isascii():
            raise ValueError("8-bit octet in a modified UTF-7 name")
        raise ValueError("control character in a mailbox name")
    if b"&" not in data:
        return data.decode("ascii")
    out: list[str] = []
    pos = 0
    while True:
        amp = data.find(b"&", pos)
        if amp < 0:
            out.append(data[pos:].decode("ascii"))
            return "".join(out)
        out.append(data[pos:amp].decode("ascii"))
        end = data.find(b"-", amp + 1)
        if end < 0:
            raise ValueError("'&' without its closing '-' in a modified UTF-7 name")
        run = data[amp + 1:end]
        out.append(_decode_run(run) if run else "&")
        pos = end + 1


def _decode_run(run: bytes) -> str:
    if not _MODIFIED_BASE64.fullmatch(run):
        raise ValueError("bad character in the base64 of a modified UTF-7 name")
    padded = run.replace(b",", b"/") + b"=" * (-len(run) % 4)
    try:
        octets = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError("bad base64 length in a modified UTF-7 name") from exc
    # canonical: no leftover sextet, zero leftover bits (RFC 2152 §"Rule 2")
    if base64.b64encode(octets).rstrip(b"=").replace(b"/", b",") != run:
        raise ValueError("bad padding bits in a modified UTF-7 name")
    if len(octets) % 2:
        raise ValueError("odd number of UTF-16 octets in a modified UTF-7 name")
    try:
        text = octets.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ValueError("bad UTF-16 in a modified UTF-7 name") from exc
    if _DIRECT.search(text):
        # RFC 3501 §5.1.3: printable US-ASCII MUST be represented by itself
        raise ValueError("printable US-ASCII encoded in base64 in a modified UTF-7 name")
    return text
