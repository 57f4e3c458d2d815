"""How the server writes IMAP values and responses (RFC 9051 §4, §7).

Every function returns the bytes to send. Strings take the lightest form the
grammar allows: an atom when every character is an ASTRING-CHAR, a quoted string
when no character forbids it, otherwise a literal ``{n}\\r\\n`` followed by the
octets (RFC 9051 §4.3).

Implementation notes:
- ``quoted`` refuses CR, LF and NUL (RFC 9051 §4.3: not allowed in a quoted
  string), any 8-bit octet unless the caller allows UTF-8 (an IMAP4rev2 or
  ``UTF8=ACCEPT`` session: RFC 9051 allows UTF8-2/3/4 in quoted strings, RFC 3501
  does not), and anything longer than ``QUOTED_MAX`` octets, which reads better
  as a literal.
- ``astring`` quotes ``NIL`` although it is a valid atom, so that no client
  reading an astring where it expects an nstring mistakes it for nil, and ``[``
  (an ATOM-CHAR), which a client parser may take for the start of a section.
- ``tagged`` writes human-readable text: it replaces CR, LF and NUL by spaces,
  so that a client-chosen value quoted in an error message can never end the
  response line and smuggle another one (a mailbox name may arrive as a literal
  and hold a CRLF). ``untagged`` does not, since its text may carry literals.
- ``mailbox_name`` sends ``INBOX`` (any case) as the atom ``INBOX``
  (RFC 9051 §5.1: INBOX is case-insensitive) and other names in modified UTF-7
  (RFC 3501 §5.1.3) unless the session uses UTF-8 names (RFC 9051 §5.1), then as
  an astring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mssante.content.ascii import to_ascii
from mssante.imap import mutf7
from mssante.imap.tokens import Atom, String, Token

QUOTED_MAX = 1000  # octets; longer strings are sent as literals

CRLF = b"\r\n"
NIL = b"NIL"

# RFC 9051 §9: ASTRING-CHAR = ATOM-CHAR / resp-specials, ATOM-CHAR = any CHAR
# except atom-specials ( ) { SP CTL % * " \ ]; and "[" (see the notes)
_ASTRING_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\[]+")
# what may not appear in a quoted string, in an IMAP4rev1 / a UTF-8 session
_NOT_QUOTABLE = re.compile(rb"[\x00\r\n\x80-\xff]")
_NOT_QUOTABLE_UTF8 = re.compile(rb"[\x00\r\n]")
_QUOTED_SPECIALS = re.compile(rb'(["\\])')
_LINE_BREAKS = bytes.maketrans(b"\r\n\x00", b"   ")


def quoted(b: bytes, *, utf8: bool = False) -> bytes | None:
    """``b`` as a quoted string, or None when it must be sent as a literal (CR, LF,
    NUL, 8-bit octets unless ``utf8`` and valid UTF-8, more than ``QUOTED_MAX``)."""
    if len(b) > QUOTED_MAX:
        return None
    if utf8:
        if _NOT_QUOTABLE_UTF8.search(b):
            return None
        if not b.isascii():
            try:
                b.decode("utf-8")
            except UnicodeDecodeError:
                return None
    elif _NOT_QUOTABLE.search(b):
        return None
    if b'"' in b or b"\\" in b:
        b = _QUOTED_SPECIALS.sub(rb"\\\1", b)
    return b'"' + b + b'"'


def literal(b: bytes, *, binary: bool = False) -> bytes:
    """``b`` as a synchronising literal, or a ``~{n}`` literal8 (RFC 3516 §4.2)."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(b) + b


def string(b: bytes, *, utf8: bool = False) -> bytes:
    """``b`` as a quoted string when it can be, else as a literal."""
    q = quoted(b, utf8=utf8)
    return literal(b) if q is None else q


def astring(s: str | bytes, *, utf8: bool = False) -> bytes:
    """``s`` as an atom when every character is an ASTRING-CHAR, else quoted, else
    a literal (RFC 9051 §4.3, §9 ``astring``). A ``str`` is sent in UTF-8."""
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
    if _ASTRING_ATOM.fullmatch(b) and b.upper() != NIL:
        return b
    return string(b, utf8=utf8)


def nstring(b: bytes | None, *, utf8: bool = False) -> bytes:
    """``NIL`` for None, else ``b`` quoted or as a literal (RFC 9051 §9 ``nstring``)."""
    if b is None:
        return NIL
    return string(b, utf8=utf8)


def paren(items: Iterable[bytes]) -> bytes:
    """A parenthesised list of already encoded items."""
    return b"(" + b" ".join(items) + b")"


def mailbox_name(name: str, utf8: bool) -> bytes:
    """A mailbox name as the ``mailbox`` of a response (RFC 9051 §9): ``INBOX``,
    else modified UTF-7 for an IMAP4rev1 session, else UTF-8."""
    if name.upper() == "INBOX":
        return b"INBOX"
    if utf8:
        return astring(name.encode("utf-8"), utf8=True)
    return astring(mutf7.encode(name))


def token(t: Token) -> bytes:
    """A generic token as the parser would read it back: an atom as is, a string
    as its form (a literal stays a literal), a list in parentheses."""
    if isinstance(t, Atom):
        return t.value.encode("ascii")
    if isinstance(t, String):
        if t.literal or t.binary:
            return literal(t.value, binary=t.binary)
        return string(t.value)
    return paren(token(item) for item in t)


def untagged(text: bytes | str) -> bytes:
    """``* <text>`` and CRLF. ``text`` is sent as is: it may hold literals."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    return b"* " + text + CRLF


def tagged(tag: str, status: str, text: str | bytes, code: str | bytes | None = None) -> bytes:
    """A status response: ``a1 NO [NONEXISTENT] No such mailbox`` and CRLF
    (RFC 9051 §7.1); text given as ``str`` is folded to ASCII (content/ascii.py).
    The tag ``*`` makes it an untagged status (``* OK [...]``)."""
    head = _clean(tag) + b" " + _clean(status) + b" "
    if code:
        head += b"[" + _clean(code) + b"] "
    return head + _clean(to_ascii(text) if isinstance(text, str) else text) + CRLF


def _clean(text: str | bytes) -> bytes:
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    return text.translate(_LINE_BREAKS)
