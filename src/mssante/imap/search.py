"""SEARCH: search keys parsed into a predicate, evaluated message by message.

``parse_search`` turns the arguments of SEARCH / UID SEARCH (RFC 9051 §6.4.4, with
ESEARCH return options, RFC 4731, SAVE, RFC 5182, and MODSEQ, RFC 7162 §3.1.5) into a
``SearchProgram``; ``esearch_response`` and ``search_response`` write the answers.

Using a program::

    program = parse_search(tokens)
    program.resolve(lambda text, uid_mode: uids_matching(text, uid_mode))
    hits = [m.seq for m in messages if program.matches(m)]

Implementation notes
--------------------
- Sequence sets are resolved by the caller, who owns the mailbox view and the saved
  result: ``resolve(resolver)`` calls ``resolver(set_text, uid_mode)`` once per set in
  the program (``uid_mode`` True for ``UID <set>``, text ``"$"`` for the saved result,
  RFC 5182 §2.1) and expects the UIDs the set designates. Evaluation then tests
  ``msg.uid`` against them, so both kinds of set cost one lookup per message.
- The predicate is compiled once into closures; in each AND the cheap keys (flags,
  size, dates) are tried before headers and bodies, which are only parsed for the
  messages that pass them. Each message is parsed at most once (one ``mime.Message``
  per evaluation).
- A large text part is searched a piece at a time (``contains``, across the cuts
  too): no single step on a 25 MB part holds the interpreter long (mime.py ``PIECE``).
- Text keys match case-insensitively (Unicode case folding) as substrings: header keys
  on the unfolded value with RFC 2047 encoded words decoded; BODY on the text/* parts,
  transfer encoding and charset decoded; TEXT on those plus every header section.
  Attachments that are not text (PDF, zip) are not searched.
- Dates are days: INTERNALDATE in UTC; SENT* on the date written in the Date header,
  its time and zone disregarded (RFC 9051 §6.4.4). A message without a readable Date
  falls back to its INTERNALDATE rather than matching nothing.
- Flags and keywords compare case-insensitively. NEW, OLD and RECENT read ``\\Recent``
  in ``msg.flags`` (the session puts it there for IMAP4rev1 sessions, or not at all).
- ``MODSEQ "/flags/\\\\Seen" all n``: the entry is accepted and ignored; the message's
  own mod-sequence is compared, as RFC 7162 §3.1.5 allows a server that keeps no
  per-flag mod-sequence.
- CHARSET: UTF-8 and US-ASCII; any other is ``NO [BADCHARSET (US-ASCII UTF-8)]``.
  Search strings are decoded as UTF-8 in both cases (US-ASCII is a subset).
- Result lists are compressed to sequence sets here (``1:3,9``), the same format as
  ``sequence.format_uid_set``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .errors import CommandError
from .mime import ADDRESS_FIELDS, Message, address_text, header_text
from .sequence import format_uid_set
from .tokens import Atom, String, Token

MAX_NUMBER64 = 2**63 - 1
CHARSETS = ("US-ASCII", "UTF-8")
# RFC 4731 §3.1, RFC 5182, RFC 5267 §4.2 and §4.3 (contexts.py)
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE", "CONTEXT"})
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SEQUENCE_SET = re.compile(r"[0-9*$][0-9*$:,]*")
_DATE = re.compile(r"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


class SearchError(CommandError):
    """A SEARCH that cannot run, with its tagged reply: BAD, or NO [BADCHARSET ...]."""


class SearchMessage(Protocol):
    """What a SEARCH reads of a message; ``raw`` is loaded only when ``needs`` says so."""

    @property
    def seq(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def flags(self) -> str: ...  # space separated
    @property
    def modseq(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def internaldate(self) -> float: ...  # epoch seconds
    @property
    def raw(self) -> bytes | None: ...


Resolver = Callable[[str, bool], Iterable[int]]


class _View:
    """One message during evaluation: its flags, parsed message and texts, computed once."""

    __slots__ = ("_bodies", "_flags", "_headers", "_message", "msg")

    def __init__(self, msg: SearchMessage) -> None:
        self.msg = msg
        self._flags: frozenset[str] | None = None
        self._message: Message | None = None
        self._bodies: list[list[str]] | None = None
        self._headers: list[str] | None = None

    @property
    def flags(self) -> frozenset[str]:
        if self._flags is None:
            self._flags = frozenset(self.msg.flags.lower().split())
        return self._flags

    @property
    def message(self) -> Message:
        if self._message is None:
            raw = self.msg.raw
            if raw is None:
                raise ValueError("this SEARCH needs the message octets, which were not loaded")
            self._message = Message(raw)
        return self._message

    def header(self, name: str) -> list[str]:
        """Decoded, case-folded values of header field ``name`` (lower case); from the
        message's ``fields`` when it offers them (values decoded beforehand, e.g. the
        summary the store keeps), else from its octets."""
        fields: dict[str, list[str]] | None = getattr(self.msg, "fields", None)
        if fields is not None:
            return [value.casefold() for value in fields.get(name, ())]
        values = self.message.root.values(name)
        if name in ADDRESS_FIELDS:  # read by the parser the rules and ENVELOPE use
            return [address_text(value).casefold() for value in values]
        return [header_text(value).casefold() for value in values]

    @property
    def bodies(self) -> list[list[str]]:
        """Each text part's case-folded text, in pieces (mime.Message.text_pieces)."""
        if self._bodies is None:
            self._bodies = [[piece.casefold() for piece in pieces]
                            for pieces in self.message.text_pieces()]
        return self._bodies

    @property
    def headers(self) -> list[str]:
        if self._headers is None:
            self._headers = [text.casefold() for text in self.message.header_texts()]
        return self._headers


_Predicate = Callable[[_View], bool]

# Cost ranks: an AND tries its keys from the cheapest.
_CHEAP, _HEADER, _BODY = 0, 1, 2


_NO_FIELDS: frozenset[str] = frozenset()


class _Key:
    """A compiled search key: its predicate, cost rank, what it needs, and the header
    fields it reads (None: the whole message)."""

    __slots__ = ("cost", "fields", "needs", "prefilter", "test")

    def __init__(self, test: _Predicate, cost: int = _CHEAP,
                 needs: frozenset[str] = frozenset(),
                 fields: frozenset[str] | None = _NO_FIELDS,
                 prefilter: tuple[str, str] | None = None) -> None:
        self.test = test
        self.cost = cost
        self.needs = needs
        self.fields = fields
        # (field, case-folded needle) that every matching message's field contains: a
        # database index or scan may narrow the candidates before ``test`` runs
        self.prefilter = prefilter


def _fields_of(keys: Iterable[_Key]) -> frozenset[str] | None:
    out: set[str] = set()
    for key in keys:
        if key.fields is None:
            return None
        out |= key.fields
    return frozenset(out)


class SetKey:
    """A sequence set or ``UID`` set of the program, resolved to UIDs by the caller."""

    __slots__ = ("text", "uid_mode", "uids")

    def __init__(self, text: str, uid_mode: bool) -> None:
        self.text = text
        self.uid_mode = uid_mode
        self.uids: frozenset[int] | None = None


class SearchProgram:
    """A parsed SEARCH: the predicate, the ESEARCH return options, and what it needs.

    ``returns`` is None for a plain SEARCH response, else the RETURN options
    (``RETURN ()`` means ALL, RFC 4731 §3.1). ``needs`` holds "flags", "size",
    "internaldate", "modseq", "headers" (header keys, SENT*) and "body" (BODY, TEXT).
    ``header_fields``: the lower-case names of the header fields the keys read, so that
    ``raw`` may be just those fields followed by an empty line; None when the keys
    read whole messages (BODY, TEXT).
    """

    __slots__ = ("_test", "charset", "has_modseq", "header_fields", "needs", "prefilter",
                 "returns",
                 "sets")

    def __init__(self, key: _Key, returns: frozenset[str] | None, charset: str,
                 sets: tuple[SetKey, ...], has_modseq: bool) -> None:
        self._test = key.test
        self.needs = key.needs
        self.header_fields = key.fields
        self.prefilter = key.prefilter  # (field, needle) every match contains, or None
        self.returns = returns
        self.charset = charset
        self.sets = sets
        self.has_modseq = has_modseq  # answers carry (MODSEQ n), RFC 7162 §3.1.6

    def resolve(self, resolver: Resolver) -> None:
        """Give every sequence set of the program the UIDs it designates."""
        for key in self.sets:
            key.uids = frozenset(resolver(key.text, key.uid_mode))

    def matches(self, msg: SearchMessage) -> bool:
        for key in self.sets:
            if key.uids is None:
                raise RuntimeError("SearchProgram.resolve must be called before matches")
        return self._test(_View(msg))


# --- parsing -----------------------------------------------------------------------


def parse_search(tokens: list[Token], *, charset_allowed: bool = True) -> SearchProgram:
    """The arguments of SEARCH: ``[RETURN (...)] [CHARSET x] key *(SP key)``."""
    parser = _Parser(tokens)
    returns = parser.return_options()
    charset = parser.charset(charset_allowed)
    if parser.done():
        raise SearchError("SEARCH needs at least one search key")
    keys = []
    while not parser.done():
        keys.append(parser.key())
    return SearchProgram(_all_of(keys), returns, charset, tuple(parser.sets),
                         parser.has_modseq)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.sets: list[SetKey] = []
        self.has_modseq = False

    def done(self) -> bool:
        return self.index >= len(self.tokens)

    def peek_atom(self) -> str | None:
        if self.done():
            return None
        token = self.tokens[self.index]
        return token.upper if isinstance(token, Atom) else None

    def next(self, what: str) -> Token:
        if self.done():
            raise SearchError(f"missing {what}")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def return_options(self) -> frozenset[str] | None:
        if self.peek_atom() != "RETURN":
            return None
        self.index += 1
        options = self.next("RETURN options")
        if not isinstance(options, list):
            raise SearchError("RETURN needs a parenthesised list")
        names = set()
        for option in options:
            if not isinstance(option, Atom) or option.upper not in RETURN_OPTIONS:
                raise SearchError(f"unknown RETURN option {_show(option)}")
            names.add(option.upper)
        names.discard("CONTEXT")  # RFC 5267 §4.2: a hint, ignored
        return frozenset(names or {"ALL"})  # RFC 4731 §3.1: RETURN () is RETURN (ALL)

    def charset(self, allowed: bool) -> str:
        if self.peek_atom() != "CHARSET":
            return "UTF-8"
        if not allowed:
            raise SearchError("CHARSET is not allowed here")
        self.index += 1
        charset = self.astring("charset").upper()
        if charset not in CHARSETS:
            raise SearchError(f"unsupported charset {charset[:40]}", status="NO",
                              code="BADCHARSET (" + " ".join(CHARSETS) + ")")  # RFC 9051 §6.4.4
        return charset

    def astring(self, what: str) -> str:
        token = self.next(what)
        if isinstance(token, Atom):
            return token.value
        if isinstance(token, String):
            return token.value.decode("utf-8", "replace")
        raise SearchError(f"expected {what}, got a list")

    def needle(self, what: str) -> str:
        return self.astring(what).casefold()

    def number(self, what: str) -> int:
        token = self.next(what)
        if not isinstance(token, Atom) or not token.value.isascii() or not token.value.isdigit():
            raise SearchError(f"expected a number for {what}")
        value = int(token.value)
        if value > MAX_NUMBER64:
            raise SearchError(f"{what} too large")
        return value

    def day(self, what: str) -> int:
        """A search date (RFC 9051 §9 date) as days since 1970-01-01."""
        text = self.astring(what)
        match = _DATE.fullmatch(text)
        month = _MONTHS.get(match.group(2).lower(), 0) if match else 0
        if match is None or not month:
            raise SearchError(f"bad date {text[:40]!r}, expected d-Mon-yyyy")
        try:
            return dt.date(int(match.group(3)), month, int(match.group(1))).toordinal() \
                - _EPOCH_ORDINAL
        except ValueError:
            raise SearchError(f"bad date {text[:40]!r}") from None

    def key(self) -> _Key:
        token = self.next("search key")
        if isinstance(token, list):
            if not token:
                raise SearchError("empty parenthesised search key")
            inner = _Parser(token)
            inner.sets = self.sets
            keys = []
            while not inner.done():
                keys.append(inner.key())
            self.has_modseq |= inner.has_modseq
            return _all_of(keys)
        if not isinstance(token, Atom):
            raise SearchError("search keys are atoms")
        name = token.upper
        flag = _FLAG_KEYS.get(name)
        if flag is not None:
            wanted, present = flag
            return _flag_key(wanted, present)
        builder = _KEYS.get(name)
        if builder is not None:
            return builder(self, name)
        if _SEQUENCE_SET.fullmatch(token.value):
            return self._set(token.value, uid_mode=False)
        raise SearchError(f"unknown search key {name[:40]}")

    def _set(self, text: str, uid_mode: bool) -> _Key:
        key = SetKey(text, uid_mode)
        self.sets.append(key)

        def test(view: _View) -> bool:
            uids = key.uids  # set by resolve(), which matches() checks
            return uids is not None and view.msg.uid in uids

        return _Key(test)


def _show(token: Token) -> str:
    if isinstance(token, Atom):
        return token.value[:40]
    return "a string" if isinstance(token, String) else "a list"


# --- keys --------------------------------------------------------------------------

_FLAGS_NEEDED = frozenset({"flags"})

# name → (flag, whether it must be present)
_FLAG_KEYS = {
    "ANSWERED": ("\\answered", True), "UNANSWERED": ("\\answered", False),
    "DELETED": ("\\deleted", True), "UNDELETED": ("\\deleted", False),
    "DRAFT": ("\\draft", True), "UNDRAFT": ("\\draft", False),
    "FLAGGED": ("\\flagged", True), "UNFLAGGED": ("\\flagged", False),
    "SEEN": ("\\seen", True), "UNSEEN": ("\\seen", False),
    "RECENT": ("\\recent", True), "OLD": ("\\recent", False),
}


def _flag_key(flag: str, present: bool) -> _Key:
    if present:
        return _Key(lambda view: flag in view.flags, needs=_FLAGS_NEEDED)
    return _Key(lambda view: flag not in view.flags, needs=_FLAGS_NEEDED)


def _all(parser: _Parser, name: str) -> _Key:
    return _Key(lambda view: True)


def _new(parser: _Parser, name: str) -> _Key:
    return _Key(lambda view: "\\recent" in view.flags and "\\seen" not in view.flags,
                needs=_FLAGS_NEEDED)


def _keyword(parser: _Parser, name: str) -> _Key:
    return _flag_key(parser.astring("keyword").lower(), name == "KEYWORD")


_ADDRESS_HEADERS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "TO": "to", "SUBJECT": "subject"}
_HEADERS_NEEDED = frozenset({"headers"})


def _header_key(field: str, needle: str) -> _Key:
    def test(view: _View) -> bool:
        return any(needle in value for value in view.header(field))

    return _Key(test, _HEADER, _HEADERS_NEEDED, frozenset({field}), (field, needle))


def _address(parser: _Parser, name: str) -> _Key:
    return _header_key(_ADDRESS_HEADERS[name], parser.needle("search string"))


def _header(parser: _Parser, name: str) -> _Key:
    field = parser.astring("header field name").strip().lower()
    # RFC 9051 §6.4.4: an empty string matches every message that has the field
    return _header_key(field, parser.needle("search string"))


def contains(pieces: list[str], needle: str) -> bool:
    """Whether the text cut into ``pieces`` contains ``needle``, across cuts too."""
    if len(pieces) == 1:
        return needle in pieces[0]
    keep = len(needle) - 1  # what of the text before a cut may start a match
    tail = ""
    for piece in pieces:
        if needle in piece or (keep and tail and needle in tail + piece[:keep]):
            return True
        if keep:
            tail = piece[-keep:] if len(piece) >= keep else (tail + piece)[-keep:]
    return False


def _body(parser: _Parser, name: str) -> _Key:
    needle = parser.needle("search string")
    if name == "BODY":
        def test(view: _View) -> bool:
            return any(contains(pieces, needle) for pieces in view.bodies)
    else:
        def test(view: _View) -> bool:
            return any(needle in text for text in view.headers) or any(
                contains(pieces, needle) for pieces in view.bodies)
    return _Key(test, _BODY, frozenset({"body", "headers"}), None)


def _compare(day: int, name: str) -> Callable[[int], bool]:
    if name.endswith("BEFORE"):
        return lambda value: value < day
    if name.endswith("ON"):
        return lambda value: value == day
    return lambda value: value >= day  # SINCE: on or after


def _internal_day(view: _View) -> int:
    return int(view.msg.internaldate // 86400)  # UTC day


def _internal(parser: _Parser, name: str) -> _Key:
    compare = _compare(parser.day("date"), name)
    return _Key(lambda view: compare(_internal_day(view)), needs=frozenset({"internaldate"}))


def _sent_day(view: _View) -> int:
    dates = view.header("date")
    value = dates[0] if dates else None
    if value is not None:
        try:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return dt.date(parsed[0], parsed[1], parsed[2]).toordinal() - _EPOCH_ORDINAL
        except (ValueError, TypeError, IndexError, OverflowError):
            pass
    return _internal_day(view)


def _sent(parser: _Parser, name: str) -> _Key:
    compare = _compare(parser.day("date"), name)
    return _Key(lambda view: compare(_sent_day(view)), _HEADER,
                frozenset({"headers", "internaldate"}), frozenset({"date"}))


def _size(parser: _Parser, name: str) -> _Key:
    limit = parser.number("size")
    if name == "LARGER":
        return _Key(lambda view: view.msg.size > limit, needs=frozenset({"size"}))
    return _Key(lambda view: view.msg.size < limit, needs=frozenset({"size"}))


def _not(parser: _Parser, name: str) -> _Key:
    inner = parser.key()
    test = inner.test
    return _Key(lambda view: not test(view), inner.cost, inner.needs, inner.fields)


def _or(parser: _Parser, name: str) -> _Key:
    first, second = parser.key(), parser.key()
    if first.cost > second.cost:
        first, second = second, first
    a, b = first.test, second.test
    return _Key(lambda view: a(view) or b(view), second.cost, first.needs | second.needs,
                _fields_of((first, second)))


def _uid(parser: _Parser, name: str) -> _Key:
    token = parser.next("UID set")
    if not isinstance(token, Atom) or not _SEQUENCE_SET.fullmatch(token.value):
        raise SearchError("UID needs a sequence set")
    return parser._set(token.value, uid_mode=True)


def _modseq(parser: _Parser, name: str) -> _Key:
    # RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
    if not parser.done() and isinstance(parser.tokens[parser.index], String):
        parser.index += 1
        entry_type = parser.peek_atom()
        if entry_type not in ("PRIV", "SHARED", "ALL"):
            raise SearchError("MODSEQ entry needs priv, shared or all")
        parser.index += 1
    floor = parser.number("mod-sequence")
    parser.has_modseq = True
    return _Key(lambda view: view.msg.modseq >= floor, needs=frozenset({"modseq"}))


_KEYS: dict[str, Callable[[_Parser, str], _Key]] = {
    "ALL": _all, "NEW": _new, "KEYWORD": _keyword, "UNKEYWORD": _keyword,
    "BCC": _address, "CC": _address, "FROM": _address, "TO": _address, "SUBJECT": _address,
    "HEADER": _header, "BODY": _body, "TEXT": _body,
    "BEFORE": _internal, "ON": _internal, "SINCE": _internal,
    "SENTBEFORE": _sent, "SENTON": _sent, "SENTSINCE": _sent,
    "LARGER": _size, "SMALLER": _size, "NOT": _not, "OR": _or, "UID": _uid,
    "MODSEQ": _modseq,
}


def _all_of(keys: list[_Key]) -> _Key:
    if len(keys) == 1:
        return keys[0]
    keys = sorted(keys, key=lambda k: k.cost)
    tests = tuple(k.test for k in keys)
    needs = frozenset().union(*(k.needs for k in keys))

    def test(view: _View) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop is faster than all() on a generator
            if not t(view):
                return False
        return True

    prefilter = next((k.prefilter for k in keys if k.prefilter is not None), None)
    return _Key(test, keys[-1].cost, needs, _fields_of(keys), prefilter)


# --- responses -----------------------------------------------------------------------


def compress(numbers: Iterable[int]) -> str:
    """Ascending numbers as a sequence set with ranges: ``1:3,9`` (RFC 9051 §9)."""
    return format_uid_set(sorted(set(numbers)))


def search_response(results: Sequence[int], modseq: int | None = None) -> bytes:
    """``* SEARCH 2 5 (MODSEQ 917)``: MODSEQ only when asked and something matched.

    ``modseq`` is the highest mod-sequence of the matching messages (RFC 7162 §3.1.6).
    """
    text = "* SEARCH"
    if results:
        text += " " + " ".join(map(str, results))
        if modseq is not None:
            text += f" (MODSEQ {modseq})"
    return text.encode() + b"\r\n"


def esearch_response(tag: str, uid: bool, results: Sequence[int],
                     returns: frozenset[str], modseq: int | None = None) -> bytes:
    """``* ESEARCH (TAG "a1") UID MIN 1 MAX 9 COUNT 3 ALL 1:3,9`` (RFC 4731 §3.1).

    Empty when SAVE is the only option (RFC 5182 §2.1). ``modseq``: the highest
    mod-sequence of the messages the answer reports (RFC 7162 §3.1.6; with MIN or MAX
    alone, of those messages), sent only when something matched.
    """
    if not returns - {"SAVE"}:
        return b""
    escaped = tag.replace("\\", "\\\\").replace('"', '\\"')
    parts = [f'* ESEARCH (TAG "{escaped}")']
    if uid:
        parts.append("UID")
    if results and "MIN" in returns:
        parts.append(f"MIN {min(results)}")
    if results and "MAX" in returns:
        parts.append(f"MAX {max(results)}")
    if "COUNT" in returns:
        parts.append(f"COUNT {len(results)}")
    if results and "ALL" in returns:
        parts.append(f"ALL {compress(results)}")
    if results and modseq is not None:
        parts.append(f"MODSEQ {modseq}")
    return " ".join(parts).encode() + b"\r\n"


def saved_result(results: Sequence[int], returns: frozenset[str] | None) -> list[int]:
    """What SAVE keeps as ``$`` (RFC 5182 §2.1): only MIN/MAX when they come without
    ALL or COUNT, else every result."""
    if not results or returns is None or returns & {"ALL", "COUNT"}:
        return list(results)
    kept = set()
    if "MIN" in returns:
        kept.add(min(results))
    if "MAX" in returns:
        kept.add(max(results))
    return sorted(kept) if kept else list(results)
