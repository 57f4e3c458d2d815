"""MIME entities of a stored message, read without copying: the structure IMAP's
FETCH and SEARCH answer from (imap/mime.py) and the web shows (web/render.py).

An ``Entity`` is a header and a body on the message's one ``bytes`` object; part
numbers (``part``, ``subparts``) are those of IMAP (RFC 9051 §6.4.5), so a part a web
page names is the part an IMAP client fetches.

Implementation notes
--------------------
- One light splitter on bytes, no ``email`` parser: a header section ends at the first
  empty line (CRLF or bare LF), multipart bodies are cut at their delimiter lines
  (RFC 2046 §5.1.1), and every entity is a window ``(start, body_start, end)`` on the
  message's one ``bytes`` object, so no part is copied until a reader asks for it.
- Lazy and parsed once: an entity reads its header fields the first time one is asked
  for and splits its children the first time they are asked for.
- Never raises on broken MIME:
  * a syntactically invalid Content-Type is text/plain; charset=us-ascii (RFC 2045 §5.2);
  * a multipart without a boundary, or whose boundary never appears as a delimiter line,
    is a single text/plain part holding the whole body (a multipart with no body part
    cannot be written: RFC 9051 §9 body-type-mpart needs 1*body);
  * a delimiter that is never closed ends its last part at the end of the body;
  * a header without an empty line after it ends at the first line that is neither a
    field nor a continuation (the rest is the body), or at the end of the entity;
  * a header section ends at the first line that starts past ``MAX_HEADER_SECTION``
    (1 MiB, the most the rules accept: content/headers.py) when no empty line comes
    before: 25 MB of header fields would otherwise be split into four million fields
    (a gigabyte of objects) for any reader;
  * bare LF line endings are accepted wherever CRLF is;
  * 8-bit header octets are kept as they are (decoded as UTF-8 with surrogateescape);
  * a multipart or message nested deeper than ``MAX_DEPTH`` is a text/plain leaf, and
    past ``MAX_PARTS`` body parts the remaining octets stay in the last part, which
    bounds the structure of a hostile message.
- Parameter names are lower-cased, values are kept as written (RFC 2231 continuations
  are not joined here). A text part without charset gets ``charset=us-ascii``, its
  default (RFC 2045 §5.2).
- message/rfc822 and message/global parts are encapsulated messages (RFC 9051 §6.4.5)
  whatever their transfer encoding: a base64 encapsulated message (invalid, RFC 2046
  §5.2.1) is a message without header rather than a failure.
- Large bodies are decoded in pieces of ``PIECE`` octets (transfer encoding, then
  charset, with incremental decoders), so that no single step on a 25 MB part holds
  the interpreter for long. Base64 larger than a piece is decoded as the lenient path
  does (every character outside the alphabet dropped).
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections.abc import Iterator

from mssante.content.headers import MAX_HEADER_SECTION
from mssante.domain.addresses import AddressSyntaxError, parse_address_list, readable

MAX_DEPTH = 64  # multipart / message nesting below which parts are split
MAX_PARTS = 10_000  # body parts per message; past it, the remaining octets stay in the last part
PIECE = 256 * 1024  # octets of a large body decoded at once (SEARCH, BINARY)

MULTIPART = 1
MESSAGE = 2
LEAF = 3

_DEFAULT_TYPE = ("text", "plain")
_DIGEST_DEFAULT_TYPE = ("message", "rfc822")

IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
TOKEN = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+")
# one field: its name (RFC 5322 §3.6.8 ftext) if the line has one, and its continuations
_FIELD = re.compile(rb"((?:([\x21-\x39\x3b-\x7e]+)[ \t]*:)?[^\n]*\n?(?:[ \t][^\n]*\n?)*)")
_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


class UnknownEncoding(ValueError):
    """BINARY asked for a part whose transfer encoding cannot be decoded (RFC 3516 §4.2)."""



# --- header fields ------------------------------------------------------------------


def _header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(body_start, length of the blank line: 0 when the header has none)."""
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2, 2
    if raw.startswith(b"\n", start) and start < end:
        return start + 1, 1
    limit = min(end, start + MAX_HEADER_SECTION)
    crlf = raw.find(b"\n\r\n", start, limit)
    lf = raw.find(b"\n\n", start, crlf + 2 if crlf >= 0 else limit)
    if lf >= 0:
        return lf + 2, 1
    if crlf >= 0:
        return crlf + 3, 2
    # No empty line: the header runs while lines look like fields or continuations,
    # and ends at the first line past MAX_HEADER_SECTION octets.
    position = start
    while position < end:
        if position >= limit:
            return position, 0
        if raw[position] not in b" \t" and not _FIELD_START.match(raw, position, end):
            return position, 0
        newline = raw.find(b"\n", position, end)
        if newline < 0:
            break
        position = newline + 1
    return end, 0


def unfold(value: bytes) -> bytes:
    """A field value without its folding line breaks (RFC 5322 §2.2.3), stripped."""
    if b"\n" in value:
        value = _FOLD.sub(b"", value)
    return value.strip()


def split_fields(header: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, raw field with its line end) for each field of a header section.

    A line that is neither a field nor a continuation is kept with the name "" so that
    HEADER.FIELDS.NOT returns it (it is part of the header as stored).
    """
    return [(name.decode("ascii").lower(), field)
            for field, name in _FIELD.findall(header) if field]


# one parameter: characters other than ; and quoted strings (maybe unterminated)
_PARAM_PIECE = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*(?:"|$))+', re.S)


def parameters(text: str) -> list[tuple[str, str]]:
    """``; name=value`` parameters (RFC 2045 §5.1), quoted values unquoted, leniently."""
    if "(" in text:
        pieces = _split_outside_quotes(text)
    elif '"' in text:
        pieces = _PARAM_PIECE.findall(text)
    else:
        pieces = text.split(";")
    out: list[tuple[str, str]] = []
    for piece in pieces:
        name, equals, value = piece.partition("=")
        name = name.strip().lower()
        if not equals or not name or not TOKEN.fullmatch(name):
            continue
        value = value.strip()
        if value.startswith('"'):
            value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
            value = re.sub(r"\\(.)", r"\1", value)
        out.append((name, value))
    return out


def _split_outside_quotes(text: str) -> list[str]:
    """Split at ``;`` outside quoted strings, dropping comments (RFC 5322 §3.2.2)."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                current.append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                current.append(char)
        elif quoted:
            current.append(char)
            if char == '"':
                quoted = False
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth:
            continue
        elif char == '"':
            quoted = True
            current.append(char)
        elif char == ";":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def _decode(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


# --- entities -----------------------------------------------------------------------


class _Budget:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts = MAX_PARTS


class Entity:
    """A header and a body: the message itself, one body part, or an encapsulated message.

    ``raw[start:body_start]`` is the header with its blank line (``blank`` octets long, 0
    when there is none) and ``raw[body_start:end]`` the body.
    """

    __slots__ = ("_budget", "_children", "_ctype", "_fields", "_first", "_kind", "_message",
                 "blank", "body_start", "default_type", "depth", "end", "raw", "start")

    def __init__(self, raw: bytes, start: int, end: int, depth: int = 0,
                 budget: _Budget | None = None,
                 default_type: tuple[str, str] = _DEFAULT_TYPE) -> None:
        self.raw = raw
        self.start = start
        self.end = end
        self.depth = depth
        self.default_type = default_type
        self._budget = budget or _Budget()
        self.body_start, self.blank = _header_end(raw, start, end)
        self._fields: list[tuple[str, bytes]] | None = None
        self._first: dict[str, bytes] = {}  # name → its first field, filled with _fields
        self._kind = 0
        self._ctype: tuple[str, str, list[tuple[str, str]]] = ("text", "plain", [])
        self._children: list[Entity] = []
        self._message: Entity | None = None

    # header

    @property
    def header(self) -> bytes:
        return self.raw[self.start:self.body_start]

    @property
    def body(self) -> bytes:
        return self.raw[self.body_start:self.end]

    @property
    def body_size(self) -> int:
        return self.end - self.body_start

    @property
    def fields(self) -> list[tuple[str, bytes]]:
        if self._fields is None:
            self._fields = split_fields(self.raw[self.start:self.body_start - self.blank])
            first = self._first
            for name, field in self._fields:
                if name not in first:
                    first[name] = field
        return self._fields

    def values(self, name: str) -> list[bytes]:
        """Every value of field ``name`` (lower case), unfolded, as raw octets."""
        out = []
        for field_name, field in self.fields:
            if field_name == name:
                out.append(unfold(field[field.find(b":") + 1:]))
        return out

    def get(self, name: str) -> str | None:
        """The first value of field ``name`` (lower case), unfolded, surrogate-escaped."""
        if self._fields is None:
            self.fields  # noqa: B018 - fills self._first
        field = self._first.get(name)
        if field is None:
            return None
        return _decode(unfold(field[field.find(b":") + 1:]))

    def header_fields(self, names: tuple[str, ...], exclude: bool) -> bytes:
        """HEADER.FIELDS / HEADER.FIELDS.NOT of this entity's header."""
        wanted = {name.lower() for name in names}
        kept = [field for name, field in self.fields if (name in wanted) != exclude]
        if self.blank:
            kept.append(self.raw[self.body_start - self.blank:self.body_start])
        return b"".join(kept)

    # structure

    @property
    def kind(self) -> int:
        if not self._kind:
            self._resolve()
        return self._kind

    @property
    def content_type(self) -> tuple[str, str, list[tuple[str, str]]]:
        """(type, subtype, parameters) as reported, after the fallbacks for broken MIME."""
        if not self._kind:
            self._resolve()
        return self._ctype

    @property
    def children(self) -> list[Entity]:
        if not self._kind:
            self._resolve()
        return self._children

    @property
    def message(self) -> Entity:
        """The encapsulated message of a message/rfc822 part (kind MESSAGE only)."""
        if not self._kind:
            self._resolve()
        assert self._message is not None, "not a message/rfc822 part"
        return self._message

    @property
    def encoding(self) -> str:
        value = self.get("content-transfer-encoding")
        return value.strip().lower() if value else "7bit"

    def _resolve(self) -> None:
        mtype, subtype, params = _content_type(self.get("content-type"), self.default_type)
        kind = LEAF
        if self.depth < MAX_DEPTH and mtype == "multipart":
            boundary = next((v for k, v in params if k == "boundary"), "")
            default = _DIGEST_DEFAULT_TYPE if subtype == "digest" else _DEFAULT_TYPE
            self._children = self._split(boundary.encode("utf-8", "surrogateescape"), default)
            if self._children:
                kind = MULTIPART
        elif self.depth < MAX_DEPTH and mtype == "message" and subtype in ("rfc822", "global"):
            self._message = Entity(self.raw, self.body_start, self.end, self.depth + 1,
                                   self._budget)
            kind = MESSAGE
        if kind == LEAF and (mtype == "multipart" or (
                mtype == "message" and subtype in ("rfc822", "global"))):
            # reported as text/plain: these types promise a structure the octets lack
            mtype, subtype, params = "text", "plain", []
        if mtype == "text" and not any(k == "charset" for k, _ in params):
            params = [("charset", "us-ascii"), *params]
        self._ctype = (mtype, subtype, params)
        self._kind = kind

    def _split(self, boundary: bytes, default: tuple[str, str]) -> list[Entity]:
        """The body parts between the delimiter lines of ``boundary`` (RFC 2046 §5.1.1)."""
        if not boundary:
            return []
        raw, end = self.raw, self.end
        delimiter = b"--" + boundary
        # (start of the delimiter line, start of the line after it)
        lines: list[tuple[int, int]] = []
        closed = False
        position = self.body_start
        while True:
            found = raw.find(delimiter, position, end)
            if found < 0:
                break
            after = found + len(delimiter)
            if found > self.body_start and raw[found - 1] != 0x0A:
                position = after
                continue
            close = raw.startswith(b"--", after) and after + 2 <= end
            newline = raw.find(b"\n", after, end)
            line_end = end if newline < 0 else newline + 1
            if raw[after + 2 if close else after:line_end].strip():
                position = after  # a longer boundary that starts with this one
                continue
            lines.append((found, line_end))
            if close:
                closed = True
                break
            position = line_end
        if not lines or (closed and len(lines) == 1):
            return []
        starts = [line_end for _, line_end in lines]
        ends = [found for found, _ in lines[1:]]
        if not closed:
            ends.append(end)
        else:
            starts.pop()
        children: list[Entity] = []
        budget = self._budget
        for index, (part_start, part_end) in enumerate(zip(starts, ends, strict=True)):
            if part_end < end or closed:  # the CRLF before a delimiter belongs to it
                if raw.startswith(b"\r\n", part_end - 2) and part_end - 2 >= part_start:
                    part_end -= 2
                elif raw.startswith(b"\n", part_end - 1) and part_end - 1 >= part_start:
                    part_end -= 1
            if budget.parts <= 1 and index < len(starts) - 1:
                part_end = ends[-1]  # out of budget: this part runs to the last delimiter
                children.append(Entity(raw, part_start, part_end, self.depth + 1, budget, default))
                break
            budget.parts -= 1
            children.append(Entity(raw, part_start, part_end, self.depth + 1, budget, default))
        return children

    def leaves(self) -> Iterator[Entity]:
        """Every non-multipart entity below (or being) this one, encapsulated ones included."""
        kind = self.kind
        if kind == MULTIPART:
            for child in self._children:
                yield from child.leaves()
        elif kind == MESSAGE:
            yield self
            yield from self.message.leaves()
        else:
            yield self


def _content_type(value: str | None,
                  default: tuple[str, str]) -> tuple[str, str, list[tuple[str, str]]]:
    """Type, subtype and parameters; the default for a missing or invalid value (RFC 2045 §5.2)."""
    if value is None:
        return default[0], default[1], []
    head, _, rest = value.partition(";")
    if "(" in head:
        head = re.sub(r"\([^)]*\)", "", head)
    mtype, slash, subtype = head.strip().lower().partition("/")
    mtype, subtype = mtype.strip(), subtype.strip()
    if not slash or not TOKEN.fullmatch(mtype) or not TOKEN.fullmatch(subtype):
        return "text", "plain", [("charset", "us-ascii")]
    return mtype, subtype, parameters(rest) if rest else []


# --- transfer encodings ---------------------------------------------------------------


DECODABLE = frozenset({"base64", "quoted-printable"})
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(_BASE64_ALPHABET)))


def decoded_pieces(data: bytes, encoding: str) -> Iterator[bytes]:
    """``decode_transfer`` in pieces, each decoded from at most about ``PIECE`` octets."""
    if len(data) <= PIECE:
        yield decode_transfer(data, encoding)
        return
    if encoding in IDENTITY_ENCODINGS:
        for start in range(0, len(data), PIECE):
            yield data[start:start + PIECE]
        return
    if encoding == "base64":
        carry = b""
        for start in range(0, len(data), PIECE):
            cleaned = carry + data[start:start + PIECE].translate(None, _NOT_BASE64)
            whole = len(cleaned) - len(cleaned) % 4
            carry = cleaned[whole:]
            if whole:
                yield binascii.a2b_base64(cleaned[:whole])
        if len(carry) > 1:  # a lone trailing sextet carries no full octet
            yield binascii.a2b_base64(carry + b"=" * (-len(carry) % 4))
        return
    if encoding == "quoted-printable":
        start = 0
        while start < len(data):  # cut after a line end: no escape spans one
            end = min(start + PIECE, len(data))
            if end < len(data):
                newline = data.rfind(b"\n", start, end)
                end = newline + 1 if newline >= 0 else end
            yield binascii.a2b_qp(data[start:end])
            start = end
        return
    raise UnknownEncoding(encoding)


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """``data`` without its Content-Transfer-Encoding; UnknownEncoding if it has no decoder."""
    if encoding in IDENTITY_ENCODINGS:
        return data
    if len(data) > PIECE:
        return b"".join(decoded_pieces(data, encoding))
    if encoding == "base64":
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
            if len(cleaned) % 4 == 1:  # a lone trailing sextet carries no full octet
                cleaned = cleaned[:-1]
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    raise UnknownEncoding(encoding)


def decoded_size(data: bytes, encoding: str) -> int:
    """The length of ``decode_transfer(data, encoding)``; for base64 counted from the
    octets of its alphabet, without decoding (RFC 2045 §6.8: 4 characters, 3 octets)."""
    if encoding == "base64":
        count = len(data) - len(data.translate(None, _BASE64_ALPHABET))
        return count // 4 * 3 + max(0, count % 4 - 1)
    if encoding in IDENTITY_ENCODINGS:
        return len(data)
    return sum(len(piece) for piece in decoded_pieces(data, encoding))


# Python text codecs that are no mail charset (RFC 2978 registers none of them): the
# punycode decoder takes time quadratic in its input (a 160 KB body: seconds), and the
# others read escapes, not characters. A part that names one is read as UTF-8.
_NOT_CHARSETS = frozenset({"punycode", "idna", "unicode-escape", "raw-unicode-escape"})


def _text_codec(charset: str) -> str:
    """The codec ``charset`` names if it is a mail charset Python can decode, else UTF-8."""
    try:
        info = codecs.lookup(charset)
    except (LookupError, UnicodeError, ValueError, TypeError):
        return "utf-8"
    if not info._is_text_encoding or info.name in _NOT_CHARSETS:
        return "utf-8"
    return info.name


def charset_decode(data: bytes, charset: str) -> str:
    """Text in ``charset``, or UTF-8 when the charset is unknown or not a text encoding."""
    try:
        return data.decode(_text_codec(charset), "replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


def incremental_decoder(charset: str) -> codecs.IncrementalDecoder:
    """``charset_decode`` one piece at a time."""
    return codecs.getincrementaldecoder(_text_codec(charset))("replace")


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")


def decode_words(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded (lenient, never raises)."""
    if "=?" not in value:
        return value
    value = _BETWEEN_WORDS.sub(r"\1\2", value)  # RFC 2047 §6.2: space between words goes

    def word(match: re.Match[str]) -> str:
        charset = match.group(1).partition("*")[0]  # RFC 2231 §5 language suffix
        text = match.group(3).encode("ascii", "replace")
        try:
            if match.group(2) in "Bb":
                data = decode_transfer(text, "base64")
            else:
                data = binascii.a2b_qp(text, header=True)
        except binascii.Error:
            return match.group(0)
        return charset_decode(data, charset)

    return _ENCODED_WORD.sub(word, value)


def header_text(value: bytes) -> str:
    """A raw header value as text for searching: UTF-8, else Latin-1, encoded words decoded."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return decode_words(text)


# --- addresses (RFC 5322 §3.4, domain.addresses: the parser the sending rules use) -------

ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})


def address_text(value: bytes) -> str:
    """An address field as SEARCH FROM/TO/CC/BCC match it (RFC 9051 §6.4.4: the
    envelope's field): its mailboxes as a person reads them, the text the store keeps as
    a message's From summary (content.headers.address_text); the decoded field when it
    does not parse."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    try:
        return readable(parse_address_list(text), decode_words)
    except AddressSyntaxError:
        return decode_words(text)


def subparts(node: Entity) -> list[Entity]:
    kind = node.kind
    if kind == MULTIPART:
        return node.children
    if kind == MESSAGE:
        inner = node.message
        return inner.children if inner.kind == MULTIPART else [inner]
    return []


def part(root: Entity, path: tuple[int, ...]) -> Entity | None:
    """The entity that part number ``path`` names in the message ``root`` (RFC 9051
    §6.4.5: a message that is not multipart has the one part 1), None if none."""
    node: Entity | None = None
    kids = root.children if root.kind == MULTIPART else [root]
    for number in path:
        if node is not None:
            kids = subparts(node)
        if number < 1 or number > len(kids):
            return None
        node = kids[number - 1]
    return node
