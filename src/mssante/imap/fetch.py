"""FETCH: the data items a client asks for, and the FETCH response for one message.

``parse_fetch_items`` turns the fetch-att argument into a ``FetchRequest`` once per
command; ``fetch_response`` renders ``* n FETCH (...)`` for each message.

Implementation notes
--------------------
- Fast path for metadata: a request made only of UID, FLAGS, MODSEQ, INTERNALDATE and
  RFC822.SIZE gets a renderer chosen when the request is built (one f-string for the
  usual ``UID FLAGS`` and ``UID FLAGS MODSEQ``), so ``UID FETCH 1:* (FLAGS)`` on 100,000
  messages costs well under a microsecond per message and never touches a body.
- A message's octets are parsed at most once per FETCH: the first item that needs them
  builds one ``mime.Message`` that the following items of the same message share (and
  it is itself lazy: BODY[HEADER] never splits MIME parts).
- Order: items are answered in the order asked, duplicates (by response name) once.
  Items the server adds come from ``FetchRequest.variant`` (or the same keywords of
  ``fetch_response``), cached on the request: UID first, as RFC 9051 §6.4.9 requires
  it in UID FETCH answers; FLAGS after a non-PEEK fetch set \\Seen (RFC 9051 §6.4.5)
  and MODSEQ for CHANGEDSINCE (RFC 7162 §3.1.4.1) appended.
- The caller handles the fetch modifiers ``(CHANGEDSINCE n VANISHED)`` and the
  setting of \\Seen: ``FetchRequest.sets_seen`` says whether this request sets it.
- Section contents are sent as literals (``""`` when empty or for a missing part, the
  design's choice); BINARY content containing NUL is sent as ``~{n}`` (RFC 3516 §4.3).
- RFC822, RFC822.HEADER and RFC822.TEXT (RFC 3501, gone from IMAP4rev2) are accepted
  in both revisions: RFC822.HEADER is a PEEK, the other two set \\Seen (RFC 3501 §6.4.5).
- Memory: the session never needs a whole answer at once. ``fetch_pieces`` gives a
  response as pieces (a literal's octets apart, never joined with the rest), and for a
  ``streamable`` request (every body item is the whole message, BODY[], BODY.PEEK[] or
  RFC822, partial or not) ``fetch_segments`` describes it without the body: octets to
  send and ``(origin, length)`` ranges of the stored body, which the session reads
  from the store piece by piece (session.py ``FETCH_CHUNK``).
- The section text of a response name is the canonical one (``BODY[HEADER.FIELDS
  (FROM TO)]``, field names upper-cased), the partial shows only its origin
  (``BODY[]<0>``, RFC 9051 §7.5.2).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .errors import CommandError
from .mime import BadSection, Message, Section, UnknownEncoding, parse_section
from .tokens import Atom, Token

MAX_NUMBER64 = 2**63 - 1  # RFC 9051 §9 number64


class FetchError(CommandError):
    """A FETCH that cannot be answered, with its tagged reply.

    BAD for a malformed request (RFC 9051 §7.1.3); NO [UNKNOWN-CTE] for BINARY on a part
    whose transfer encoding cannot be decoded (RFC 3516 §4.2).
    """


class FetchMessage(Protocol):
    """What a FETCH reads of a message; ``body`` is loaded only when ``needs_body``."""

    @property
    def uid(self) -> int: ...
    @property
    def flags(self) -> str: ...  # space separated: "\\Seen $Label1"
    @property
    def modseq(self) -> int: ...
    @property
    def internaldate(self) -> float: ...  # epoch seconds
    @property
    def size(self) -> int: ...
    @property
    def body(self) -> bytes | None: ...


# Item names; every BODY[...] item is named "BODY[]", BINARY[...] "BINARY[]", and so on.
UID = "UID"
FLAGS = "FLAGS"
MODSEQ = "MODSEQ"  # RFC 7162 §3.1.4
INTERNALDATE = "INTERNALDATE"
RFC822_SIZE = "RFC822.SIZE"
ENVELOPE = "ENVELOPE"
BODY = "BODY"
BODYSTRUCTURE = "BODYSTRUCTURE"
RFC822 = "RFC822"
RFC822_HEADER = "RFC822.HEADER"
RFC822_TEXT = "RFC822.TEXT"
BODY_SECTION = "BODY[]"
BINARY = "BINARY[]"  # RFC 3516 §4.2
BINARY_SIZE = "BINARY.SIZE[]"

_FLAG_ITEMS = frozenset({UID, FLAGS, MODSEQ})
_SIMPLE = frozenset({UID, FLAGS, MODSEQ, INTERNALDATE, RFC822_SIZE, ENVELOPE, BODY,
                     BODYSTRUCTURE, RFC822, RFC822_HEADER, RFC822_TEXT})
_MACROS = {  # RFC 9051 §6.4.5
    "ALL": (FLAGS, INTERNALDATE, RFC822_SIZE, ENVELOPE),
    "FAST": (FLAGS, INTERNALDATE, RFC822_SIZE),
    "FULL": (FLAGS, INTERNALDATE, RFC822_SIZE, ENVELOPE, BODY),
}
_HEADER_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME"})
_SECTIONED = re.compile(
    r"(BODY\.PEEK|BODY|BINARY\.PEEK|BINARY\.SIZE|BINARY)\[(.*)\](?:<([0-9]+)\.([0-9]+)>)?",
    re.I | re.S)


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One fetch-att: its name, its section and partial, and its name in the response."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None  # (origin, length) of <origin.length>
    peek: bool = False
    response: bytes = b""  # e.g. b"BODY[HEADER]<0>"

    @property
    def needs_body(self) -> bool:
        return self.name not in _META

    @property
    def sets_seen(self) -> bool:
        return not self.peek and self.name in (BODY_SECTION, BINARY, RFC822, RFC822_TEXT)

    @property
    def reads_content(self) -> bool:
        """Whether it serves a message's content, not only its header: what the audit
        trail records as a read (PEEK or not)."""
        if self.name in (RFC822, RFC822_TEXT, BINARY):
            return True
        return self.name == BODY_SECTION and (
            self.section is None or self.section.text not in _HEADER_TEXTS)


def _simple(name: str) -> FetchItem:
    return FetchItem(name, peek=name == RFC822_HEADER, response=name.encode())


def _sectioned(atom: str) -> FetchItem:
    match = _SECTIONED.fullmatch(atom)
    if match is None:
        raise FetchError(f"unknown fetch attribute {atom[:60]!r}")
    kind, spec, origin, length = match.groups()
    kind = kind.upper()
    try:
        section = parse_section(spec)
    except BadSection as exc:
        raise FetchError(str(exc)) from None
    partial = None
    if origin is not None:
        if kind == "BINARY.SIZE":
            raise FetchError("BINARY.SIZE takes no partial")  # RFC 3516 §7
        partial = (int(origin), int(length))
        if partial[0] > MAX_NUMBER64 or not 0 < partial[1] <= MAX_NUMBER64:
            raise FetchError("bad partial")  # RFC 9051 §9 partial: number64 "." nz-number64
    if kind.startswith("BINARY"):
        if section.text is not None:
            raise FetchError(f"{kind} takes part numbers only")  # RFC 3516 §7 section-binary
        name = BINARY_SIZE if kind == "BINARY.SIZE" else BINARY
        label = "BINARY.SIZE" if name == BINARY_SIZE else "BINARY"
    else:
        name, label = BODY_SECTION, "BODY"
    response = f"{label}[{section}]"
    if partial is not None:
        response += f"<{partial[0]}>"
    return FetchItem(name, section, partial, kind.endswith(".PEEK"), response.encode())


def _item(token: Token) -> FetchItem:
    if not isinstance(token, Atom):
        raise FetchError("fetch attributes are atoms")
    upper = token.upper
    if upper in _SIMPLE:
        return _simple(upper)
    return _sectioned(token.value)


def parse_fetch_items(tokens: list[Token]) -> FetchRequest:
    """The fetch-att argument of FETCH (RFC 9051 §6.4.5), modifiers removed by the caller.

    ``tokens`` is either ``[argument]`` (a macro, an item, or the parenthesised list as
    one list token) or the items of the list themselves.
    """
    if len(tokens) == 1 and isinstance(tokens[0], list):
        tokens = tokens[0]
    if not tokens:
        raise FetchError("empty fetch attribute list")
    first = tokens[0]
    if isinstance(first, Atom) and first.upper in _MACROS:
        if len(tokens) > 1:
            raise FetchError(f"{first.upper} cannot be combined with other items")
        return FetchRequest(tuple(_simple(name) for name in _MACROS[first.upper]))
    return FetchRequest(tuple(_item(token) for token in tokens))


# --- rendering ------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def internaldate(timestamp: float) -> str:
    """RFC 9051 §9 date-time in UTC, without quotes: `` 7-Nov-2026 02:53:41 +0000``."""
    t = time.gmtime(timestamp)
    return (f"{t.tm_mday:2d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")


_Meta = Callable[[FetchMessage], str]
_META: dict[str, _Meta] = {
    UID: lambda m: f"UID {m.uid}",
    FLAGS: lambda m: f"FLAGS ({m.flags})",
    MODSEQ: lambda m: f"MODSEQ ({m.modseq})",  # RFC 7162 §3.1.4
    INTERNALDATE: lambda m: f'INTERNALDATE "{internaldate(m.internaldate)}"',
    RFC822_SIZE: lambda m: f"RFC822.SIZE {m.size}",
}

_Renderer = Callable[[int, FetchMessage], bytes]
_HOT: dict[tuple[str, ...], _Renderer] = {
    (UID, FLAGS): lambda seq, m: f"* {seq} FETCH (UID {m.uid} FLAGS ({m.flags}))\r\n".encode(),
    (FLAGS,): lambda seq, m: f"* {seq} FETCH (FLAGS ({m.flags}))\r\n".encode(),
    (UID, FLAGS, MODSEQ): lambda seq, m: (
        f"* {seq} FETCH (UID {m.uid} FLAGS ({m.flags}) MODSEQ ({m.modseq}))\r\n".encode()),
    (UID,): lambda seq, m: f"* {seq} FETCH (UID {m.uid})\r\n".encode(),
}


def _meta_renderer(names: tuple[str, ...]) -> _Renderer:
    hot = _HOT.get(names)
    if hot is not None:
        return hot
    getters = tuple(_META[name] for name in names)

    def render(seq: int, msg: FetchMessage) -> bytes:
        return f"* {seq} FETCH ({' '.join([get(msg) for get in getters])})\r\n".encode()

    return render


class FetchRequest:
    """The parsed items of one FETCH, with what answering them needs.

    ``needs_body``: the message octets must be loaded (ENVELOPE, BODY*, RFC822*, BINARY*).
    ``streamable``: the body items are whole-message ones only (BODY[], BODY.PEEK[],
    RFC822, with or without a partial), which ``fetch_segments`` answers unparsed.
    ``needs_meta``: INTERNALDATE or RFC822.SIZE is asked. ``only_flags``: nothing but
    UID, FLAGS and MODSEQ is asked. ``uid``, ``flags``, ``modseq``: those items are asked
    (asking MODSEQ enables CONDSTORE, RFC 7162 §3.1). ``sets_seen``: a non-PEEK item
    sets \\Seen (RFC 9051 §6.4.5).
    """

    __slots__ = ("_fast", "_variants", "flags", "items", "modseq", "needs_body", "needs_meta",
                 "only_flags", "reads_content", "sets_seen", "streamable", "uid")

    def __init__(self, items: tuple[FetchItem, ...]) -> None:
        unique: dict[bytes, FetchItem] = {}
        for item in items:
            kept = unique.get(item.response)
            if kept is None or (kept.peek and not item.peek):
                unique[item.response] = item
        self.items = tuple(unique.values())
        names = tuple(item.name for item in self.items)
        self.needs_body = any(item.needs_body for item in self.items)
        self.sets_seen = any(item.sets_seen for item in self.items)
        self.reads_content = any(item.reads_content for item in self.items)
        self.uid = UID in names
        self.flags = FLAGS in names
        self.modseq = MODSEQ in names
        self.needs_meta = INTERNALDATE in names or RFC822_SIZE in names
        self.only_flags = all(name in _FLAG_ITEMS for name in names)
        # every body item is the whole message: answered from the store without parsing
        self.streamable = self.needs_body and all(
            not item.needs_body or item.name == RFC822 or (
                item.name == BODY_SECTION and item.section == _WHOLE)
            for item in self.items)
        self._fast = None if self.needs_body else _meta_renderer(names)
        self._variants: dict[tuple[bool, bool, bool], FetchRequest] = {}

    def variant(self, *, uid: bool = False, flags: bool = False,
                modseq: bool = False) -> FetchRequest:
        """This request with UID (first), FLAGS and MODSEQ added where asked and missing."""
        uid = uid and not self.uid
        flags = flags and not self.flags
        modseq = modseq and not self.modseq
        if not (uid or flags or modseq):
            return self
        key = (uid, flags, modseq)
        found = self._variants.get(key)
        if found is None:
            items = ((_simple(UID),) if uid else ()) + self.items
            items += ((_simple(FLAGS),) if flags else ()) + ((_simple(MODSEQ),) if modseq else ())
            found = self._variants[key] = FetchRequest(items)
        return found

    def with_uid(self) -> FetchRequest:
        """This request with UID first, for UID FETCH (RFC 9051 §6.4.9)."""
        return self.variant(uid=True)

    def with_flags(self) -> FetchRequest:
        """This request with FLAGS, for a message whose \\Seen it just set (RFC 9051 §6.4.5)."""
        return self.variant(flags=True)

    def with_modseq(self) -> FetchRequest:
        """This request with MODSEQ, for CHANGEDSINCE or CONDSTORE (RFC 7162 §3.1.4.1)."""
        return self.variant(modseq=True)


def _literal(data: bytes) -> list[bytes]:
    """A literal as two pieces: its announcement and its octets (not copied)."""
    if not data:
        return [b'""']
    return [b"{%d}\r\n" % len(data), data]


def _slice(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    origin, length = partial
    return data[origin:origin + length]  # past the end: "" (RFC 9051 §6.4.5)


def _binary(item: FetchItem, message: Message) -> bytes:
    assert item.section is not None
    try:
        return message.binary(item.section.part)
    except UnknownEncoding as exc:
        raise FetchError(f"cannot decode the {exc} transfer encoding", status="NO",
                         code="UNKNOWN-CTE") from None


def _render_body_item(item: FetchItem, message: Message) -> list[bytes]:
    name = item.name
    if name == BODY_SECTION:
        assert item.section is not None
        data = _slice(message.section(item.section), item.partial)
        return [item.response + b" ", *_literal(data)]
    if name == BINARY:
        data = _slice(_binary(item, message), item.partial)
        if b"\x00" in data:  # RFC 3516 §4.3 literal8
            return [item.response + b" ~{%d}\r\n" % len(data), data]
        return [item.response + b" ", *_literal(data)]
    if name == BINARY_SIZE:
        return [item.response + b" %d" % len(_binary(item, message))]
    if name == ENVELOPE:
        return [b"ENVELOPE " + message.envelope()]
    if name == BODYSTRUCTURE:
        return [b"BODYSTRUCTURE " + message.bodystructure(True)]
    if name == BODY:
        return [b"BODY " + message.bodystructure(False)]
    if name == RFC822:
        return [b"RFC822 ", *_literal(message.raw)]
    if name == RFC822_HEADER:
        return [b"RFC822.HEADER ", *_literal(message.root.header)]
    assert name == RFC822_TEXT, name
    return [b"RFC822.TEXT ", *_literal(message.root.body)]


_WHOLE = Section()  # BODY[]: the whole message

Segment = bytes | tuple[int, int]  # octets to send, or (origin, length) of the stored body


def fetch_segments(seq: int, req: FetchRequest, msg: FetchMessage, *,
                   uid_command: bool = False, include_modseq: bool = False,
                   include_flags: bool = False) -> list[Segment]:
    """The response of a ``streamable`` request as octets and ranges of the body, read
    from ``msg.size`` only (``msg.body`` is not needed): ``[b'* 3 FETCH (UID 7 BODY[]
    {5000000}\r\n', (0, 5000000), b')\r\n']``. The keywords are ``fetch_response``'s."""
    if uid_command or include_modseq or include_flags:
        req = req.variant(uid=uid_command, flags=include_flags, modseq=include_modseq)
    if not req.streamable:
        raise ValueError("this FETCH needs the message parsed")
    out: list[Segment] = []
    head = b"* %d FETCH (" % seq
    for n, item in enumerate(req.items):
        text = head if n == 0 else b" "
        meta = _META.get(item.name)
        if meta is not None:
            out.append(text + meta(msg).encode())
            continue
        origin, length = 0, msg.size
        if item.partial is not None:  # past the end: "" (RFC 9051 §6.4.5)
            origin = min(item.partial[0], msg.size)
            length = min(item.partial[1], msg.size - origin)
        if not length:
            out.append(text + item.response + b' ""')
            continue
        out.append(text + item.response + b" {%d}\r\n" % length)
        out.append((origin, length))
    out.append(b")\r\n")
    merged: list[Segment] = []  # adjacent octets in one piece
    for segment in out:
        if merged and isinstance(segment, bytes) and isinstance(merged[-1], bytes):
            merged[-1] += segment
        else:
            merged.append(segment)
    return merged


def fetch_response(seq: int, req: FetchRequest, msg: FetchMessage, *,
                   uid_command: bool = False, include_modseq: bool = False,
                   include_flags: bool = False) -> bytes:
    """``* seq FETCH (...)\\r\\n`` for one message.

    ``uid_command`` adds UID (UID FETCH, RFC 9051 §6.4.9), ``include_modseq`` MODSEQ
    (CHANGEDSINCE, RFC 7162 §3.1.4.1), ``include_flags`` FLAGS (\\Seen just set, RFC 9051
    §6.4.5) when the request lacks them; the variants are cached on the request.
    Raises FetchError (NO [UNKNOWN-CTE]) for an undecodable BINARY, and ValueError
    when the request needs the body and ``msg.body`` is None.
    """
    if uid_command or include_modseq or include_flags:
        req = req.variant(uid=uid_command, flags=include_flags, modseq=include_modseq)
    fast = req._fast
    if fast is not None:
        return fast(seq, msg)
    return b"".join(fetch_pieces(seq, req, msg))


def fetch_pieces(seq: int, req: FetchRequest, msg: FetchMessage, *,
                 uid_command: bool = False, include_modseq: bool = False,
                 include_flags: bool = False) -> list[bytes]:
    """``fetch_response`` in pieces that concatenate to it: a literal's octets are a
    piece of their own, not copied into a joined response (a 20 MB BODY[1] stays one
    20 MB object). Parses the message: the caller runs it off the event loop for a
    large one."""
    if uid_command or include_modseq or include_flags:
        req = req.variant(uid=uid_command, flags=include_flags, modseq=include_modseq)
    fast = req._fast
    if fast is not None:
        return [fast(seq, msg)]
    raw = msg.body
    if raw is None:
        raise ValueError("this FETCH needs the message body, which was not loaded")
    message = Message(raw)
    pieces: list[bytes] = [b"* %d FETCH (" % seq]
    for n, item in enumerate(req.items):
        if n:
            pieces.append(b" ")
        meta = _META.get(item.name)
        if meta is not None:
            pieces.append(meta(msg).encode())
        else:
            pieces += _render_body_item(item, message)
    pieces.append(b")\r\n")
    return pieces
