"""A strict reader of what the server writes (RFC 9051 §4, §9), independent of its code.

Used as an oracle: a FETCH response, an ENVELOPE or a BODYSTRUCTURE built from hostile
octets must still read as IMAP data, or a client would be desynchronised (a CR LF
inside a quoted string ends the response line early; a wrong literal length makes the
client read the next response as data).

Values: ``NIL``, atoms and numbers (bytes), quoted strings and literals (``Text``),
parenthesised lists (lists). A fetch item name keeps its section and partial:
``BODY[HEADER.FIELDS (FROM)]<0>``. Quoted strings are 7-bit (the server sends 8-bit
text as literals, imap/wire.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from fuzz.oracles import OracleFailure


@dataclass(frozen=True, slots=True)
class Text:
    value: bytes


Value: TypeAlias = "bytes | Text | list[Value]"

# one token at a time: "(", ")", a quoted string (7-bit TEXT-CHAR and quoted-pairs), a
# literal's announcement, or an atom (a flag's backslash, a fetch item's section and
# partial included)
_TOKEN = re.compile(
    rb'(\()|(\))|"((?:[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]|\\["\\])*)"'
    rb"|~?\{([0-9]+)\}\r\n"
    rb"|(\\?[^\x00-\x20\x7f-\xff(){%\"\\\[\]]+(?:\[[^\r\n\x00\[\]]*\](?:<[0-9]+>)?)?)")
_UNESCAPE = re.compile(rb'\\(["\\])')
MAX_DEPTH = 200


def _fail(data: bytes, pos: int, what: str) -> OracleFailure:
    return OracleFailure(f"{what} at {pos}: {data[max(0, pos - 30):pos + 30]!r}")


def read_value(data: bytes, pos: int) -> tuple[Value, int]:
    """The value at ``pos`` and the offset after it."""
    stack: list[list[Value]] = []
    while True:
        m = _TOKEN.match(data, pos)
        if m is None:
            raise _fail(data, pos, "not a value")
        pos = m.end()
        kind = m.lastindex
        value: Value
        if kind == 1:
            if len(stack) >= MAX_DEPTH:
                raise _fail(data, pos, "lists nested too deep")
            stack.append([])
            continue
        if kind == 2:
            if not stack:
                raise _fail(data, pos, "a ')' without '('")
            value = stack.pop()
        elif kind == 3:
            text = m.group(3)
            value = Text(_UNESCAPE.sub(rb"\1", text) if b"\\" in text else text)
        elif kind == 4:
            end = pos + int(m.group(4))
            if end > len(data):
                raise _fail(data, pos, "a literal longer than the data")
            value, pos = Text(data[pos:end]), end
        else:
            value = m.group(5)
        if not stack:
            return value, pos
        stack[-1].append(value)
        following = data[pos:pos + 1]
        if following == b" " and data[pos + 1:pos + 2] != b")":
            pos += 1
        elif following != b")" and not (following == b"(" and isinstance(value, list)):
            # one space between items; none between the addresses of an envelope field
            # and the bodies of a multipart (RFC 9051 §9 "1*address", "1*body")
            raise _fail(data, pos, "expected one space between list items")


def read_whole(data: bytes) -> Value:
    """The one value that ``data`` is, all of it."""
    value, end = read_value(data, 0)
    if end != len(data):
        raise _fail(data, end, "data after the value")
    return value


def read_fetch(data: bytes) -> list[Value]:
    """The item list of one ``* n FETCH (...)`` CRLF response."""
    m = re.match(rb"\* [1-9][0-9]* FETCH ", data)
    if m is None or not data.endswith(b")\r\n"):
        raise _fail(data, 0, "not a FETCH response")
    value, end = read_value(data, m.end())
    if end != len(data) - 2 or not isinstance(value, list):
        raise _fail(data, end, "a FETCH response that does not end with its list")
    if len(value) % 2:
        raise _fail(data, end, "a FETCH list of names and values has an odd length")
    return value
