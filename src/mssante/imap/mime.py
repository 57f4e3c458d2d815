"""IMAP views of a stored message: ENVELOPE, BODYSTRUCTURE, BODY[section] and BINARY.

A ``Message`` wraps the stored octets and answers every view a FETCH or a SEARCH asks
for; the module functions ``envelope``, ``bodystructure`` and ``section`` are one-shot
shortcuts around it.

Implementation notes
--------------------
- The message is split by ``content.mime`` (one light splitter on bytes, lazy, never
  raising on broken MIME, bounded by ``MAX_DEPTH`` and ``MAX_PARTS``; its notes say
  how each broken shape is read), the structure the web shows too. A FETCH builds one
  ``Message`` per message and every attribute shares it, so ENVELOPE plus
  BODYSTRUCTURE plus BODY[1] parse the octets once.
- A multipart the splitter reads as one text/plain part (no boundary, or no delimiter
  line) keeps BODYSTRUCTURE valid: a multipart with no body part cannot be written
  (RFC 9051 §9 body-type-mpart needs 1*body). 8-bit header octets are sent as literals
  since a quoted string is 7-bit.
- ENVELOPE strings are the raw unfolded header values: encoded words are left for the
  client to decode (RFC 9051 §7.5.2), quoted strings of display names are unquoted.
  Address fields are read by ``domain.addresses``, the parser the sending rules use, so
  the From the rules checked is the From shown; a field it refuses (only in a message
  stored by APPEND) shows as the one address ``INVALID_ADDRESS@MISSING_DOMAIN``.
- BODYSTRUCTURE extension data: body-fld-md5 is the Content-MD5 value when present (else
  NIL), body-fld-lang and body-fld-loc come from Content-Language and Content-Location.
  Parameter names are lower-cased, values are sent as written (RFC 2231 continuations
  are not joined: clients decode them). A text part without charset gets
  ``("charset" "us-ascii")``, its default (RFC 2045 §5.2).
- message/rfc822 and message/global parts are encapsulated messages (RFC 9051 §6.4.5,
  §7.5.2) whatever their transfer encoding: a base64 encapsulated message (invalid,
  RFC 2046 §5.2.1) shows as a message without header rather than failing.
- Large bodies are decoded in pieces of ``PIECE`` octets (transfer encoding, then
  charset, with incremental decoders), so that no single step on a 25 MB part holds
  the interpreter for long: the session parses large messages in a thread, and the
  event loop gets its turn between two pieces. Base64 larger than a piece is decoded
  as the lenient path does (every character outside the alphabet dropped).
- Header fetches include the blank line that ends the header, except for an entity
  without blank line (RFC 3501 §6.4.5); HEADER.FIELDS always ends with that line even
  when no field matched, so the answer is never an empty string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mssante.content.mime import (
    ADDRESS_FIELDS,
    DECODABLE,
    IDENTITY_ENCODINGS,
    LEAF,
    MAX_DEPTH,
    MAX_PARTS,
    MESSAGE,
    MULTIPART,
    PIECE,
    TOKEN,
    Entity,
    UnknownEncoding,
    address_text,
    charset_decode,
    decode_transfer,
    decode_words,
    decoded_pieces,
    header_text,
    incremental_decoder,
    parameters,
    part,
    unfold,
)
from mssante.domain.addresses import AddressSyntaxError, Group, Mailbox, parse_address_list

from . import wire


class BadSection(ValueError):
    """A section specification that does not follow RFC 9051 §9 ``section-spec``."""


# --- wire strings -------------------------------------------------------------------


string = wire.string  # quoted when it can be, else a literal (RFC 9051 §4.3)
nstring = wire.nstring


@functools.lru_cache(maxsize=512)
def _s(text: str) -> bytes:
    """A string as an IMAP string; the recurring ones ("text", "7bit"...) come from a cache."""
    return string(text.encode("utf-8", "surrogateescape"))


def _ns(text: str | None) -> bytes:
    return b"NIL" if text is None else _s(text)


# --- sections -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    """A parsed ``section-spec`` (RFC 9051 §6.4.5): part numbers then an optional text."""

    part: tuple[int, ...] = ()
    text: str | None = None  # None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"
    fields: tuple[str, ...] = ()  # upper-cased field names of HEADER.FIELDS(.NOT), as given

    def __str__(self) -> str:
        """The canonical spelling, used in the FETCH response item name."""
        out = ".".join(str(n) for n in self.part)
        if self.text is not None:
            out = f"{out}.{self.text}" if out else self.text
        if self.fields:
            out += " (" + " ".join(_field_name_wire(f) for f in self.fields) + ")"
        return out


def _field_name_wire(name: str) -> str:
    if TOKEN.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
_SECTION_TEXT = re.compile(
    r"(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)(.*)", re.S | re.I)
_FIELD_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')


def parse_section(spec: str) -> Section:
    """The spec inside ``BODY[...]``: ``""``, ``"1.2.MIME"``, ``"HEADER.FIELDS (FROM TO)"``..."""
    rest = spec.strip()
    part: list[int] = []
    while rest and rest[0] in "0123456789":
        number, dot, after = rest.partition(".")
        if not _NUMBER.fullmatch(number):
            raise BadSection(f"bad part number in section {spec!r}")
        part.append(int(number))
        if not dot:
            return Section(tuple(part))
        rest = after
    if not rest:
        if part:  # "1." : a dot without a following specifier
            raise BadSection(f"bad section {spec!r}")
        return Section()
    match = _SECTION_TEXT.fullmatch(rest)
    if match is None:
        raise BadSection(f"unknown section {spec!r}")
    text, tail = match.group(1).upper(), match.group(2).strip()
    if text == "MIME" and not part:
        raise BadSection("MIME needs a part number")  # RFC 9051 §9 section-text
    if not text.startswith("HEADER.FIELDS"):
        if tail:
            raise BadSection(f"bad section {spec!r}")
        return Section(tuple(part), text)
    if not (tail.startswith("(") and tail.endswith(")")):
        raise BadSection(f"{text} needs a parenthesised list of field names")
    inner = tail[1:-1]
    names: list[str] = []
    position = 0
    for found in _FIELD_NAME.finditer(inner):
        if inner[position:found.start()].strip():
            raise BadSection(f"bad field name list in {spec!r}")
        position = found.end()
        quoted, atom = found.group(1), found.group(2)
        name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else atom
        if name:  # a name given twice stays twice: the response echoes the section
            names.append(name.upper())  # RFC 9051 §7.5.2 (RFC 3501 §7.4.2) BODY[section]
    if inner[position:].strip() or not names:
        raise BadSection(f"bad field name list in {spec!r}")
    return Section(tuple(part), text, tuple(names))


def _lines(entity: Entity) -> int:
    """Text lines of a body: line ends, plus an unterminated last line (counted in place)."""
    raw, start, end = entity.raw, entity.body_start, entity.end
    count = raw.count(b"\n", start, end)
    if end > start and raw[end - 1] != 0x0A:
        count += 1
    return count


# An address field that does not parse (possible only in a message stored by APPEND, or
# before the rules refused them) shows as one placeholder address, never as a guess.
_UNPARSEABLE = b'((NIL NIL "INVALID_ADDRESS" "MISSING_DOMAIN"))'


def _mailbox_structure(mailbox: Mailbox) -> bytes:
    """(name adl mailbox host), RFC 9051 §7.5.2; the name's encoded words as written."""
    return b"(" + b" ".join((_ns(mailbox.display_name), _ns(mailbox.route),
                             _s(mailbox.local_text), _s(mailbox.domain))) + b")"


def _address_list(value: str | None) -> bytes:
    """An ENVELOPE address list; a group is a start marker (NIL NIL name NIL), its
    members and an end marker (NIL NIL NIL NIL), RFC 9051 §7.5.2."""
    if value is None:
        return b"NIL"
    try:
        items = parse_address_list(value)
    except AddressSyntaxError:
        return _UNPARSEABLE
    if not items:
        return b"NIL"
    out: list[bytes] = []
    for item in items:
        if isinstance(item, Group):
            out.append(b"(NIL NIL " + _s(item.display_name) + b" NIL)")
            out.extend(_mailbox_structure(m) for m in item.mailboxes)
            out.append(b"(NIL NIL NIL NIL)")
        else:
            out.append(_mailbox_structure(item))
    return b"(" + b"".join(out) + b")"


# --- the message -----------------------------------------------------------------------


class Message:
    """One stored message, parsed lazily and at most once, for every view of it."""

    __slots__ = ("_structures", "raw", "root")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.root = Entity(raw, 0, len(raw))
        self._structures: dict[bool, bytes] = {}

    def envelope(self) -> bytes:
        return _envelope(self.root)

    def bodystructure(self, extensible: bool = True) -> bytes:
        """BODYSTRUCTURE (extensible) or BODY (not extensible), RFC 9051 §7.5.2."""
        cached = self._structures.get(extensible)
        if cached is None:
            out: list[bytes] = []
            _structure(self.root, extensible, out)
            cached = self._structures[extensible] = b"".join(out)
        return cached

    def part(self, path: tuple[int, ...]) -> Entity | None:
        """The entity that part number ``path`` names (RFC 9051 §6.4.5), None if none."""
        return part(self.root, path)

    def section(self, section: Section) -> bytes:
        """The octets of ``BODY[section]``; b"" for a part that does not exist."""
        if not section.part:
            target = self.root
            if section.text is None:
                return self.raw
        else:
            node = self.part(section.part)
            if node is None:
                return b""
            if section.text is None:
                return node.body
            if section.text == "MIME":
                return node.header
            if node.kind != MESSAGE:
                return b""
            target = node.message
        if section.text == "TEXT":
            return target.body
        if section.text == "HEADER":
            return target.header
        return target.header_fields(section.fields, section.text == "HEADER.FIELDS.NOT")

    def binary(self, path: tuple[int, ...]) -> bytes:
        """``BINARY[path]``: the part's body without its transfer encoding (RFC 3516 §4.2)."""
        if not path:
            return self.raw
        node = self.part(path)
        if node is None:
            return b""
        if node.kind == MULTIPART:  # RFC 2045 §6.4: only 7bit, 8bit or binary anyway
            return node.body
        return decode_transfer(node.body, node.encoding)

    def text_parts(self) -> Iterator[str]:
        """Decoded text of every text/* leaf, for SEARCH BODY/TEXT (RFC 9051 §6.4.4)."""
        for pieces in self.text_pieces():
            yield "".join(pieces)

    def text_pieces(self) -> Iterator[list[str]]:
        """``text_parts`` with each part's text in pieces decoded from at most about
        ``PIECE`` octets each (one piece for a small part): SEARCH looks at a 25 MB text
        part a piece at a time (search.py ``contains``)."""
        for entity in self.root.leaves():
            mtype, _, params = entity.content_type
            if mtype != "text" or entity.kind != LEAF:
                continue
            charset = next((v for k, v in params if k == "charset"), "utf-8").strip() or "utf-8"
            encoding = entity.encoding
            if encoding not in IDENTITY_ENCODINGS and encoding not in DECODABLE:
                encoding = "binary"  # searched as it is
            body = entity.body
            if len(body) <= PIECE:
                yield [charset_decode(decode_transfer(body, encoding), charset)]
                continue
            decoder = incremental_decoder(charset)
            pieces = [decoder.decode(data) for data in decoded_pieces(body, encoding)]
            pieces.append(decoder.decode(b"", final=True))
            yield pieces

    def header_texts(self) -> Iterator[str]:
        """Decoded header sections of the message and of its parts, for SEARCH TEXT."""
        seen: set[int] = set()
        for entity in (self.root, *self.root.leaves()):
            if entity.start in seen:
                continue
            seen.add(entity.start)
            yield header_text(unfold(entity.raw[entity.start:entity.body_start]))
            if entity.kind == MESSAGE:
                inner = entity.message
                seen.add(inner.start)
                yield header_text(unfold(inner.raw[inner.start:inner.body_start]))


def _envelope(entity: Entity) -> bytes:
    """ENVELOPE of a message or encapsulated message (RFC 9051 §7.5.2)."""
    from_ = _address_list(entity.get("from"))
    sender = _address_list(entity.get("sender"))
    reply_to = _address_list(entity.get("reply-to"))
    return b"(" + b" ".join((
        _ns(entity.get("date")),
        _ns(entity.get("subject")),
        from_,
        from_ if sender == b"NIL" else sender,  # RFC 9051 §7.5.2: absent or empty → from
        from_ if reply_to == b"NIL" else reply_to,
        _address_list(entity.get("to")),
        _address_list(entity.get("cc")),
        _address_list(entity.get("bcc")),
        _ns(entity.get("in-reply-to")),
        _ns(entity.get("message-id")),
    )) + b")"


def _param_list(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(_s(k) + b" " + _s(v) for k, v in params) + b")"


def _disposition(entity: Entity) -> bytes:
    value = entity.get("content-disposition")
    if value is None:
        return b"NIL"
    head, _, rest = value.partition(";")
    head = head.strip().lower()
    if not TOKEN.fullmatch(head):
        return b"NIL"
    return b"(" + _s(head) + b" " + _param_list(parameters(rest) if rest else []) + b")"


def _language(entity: Entity) -> bytes:
    value = entity.get("content-language")
    if value is None:
        return b"NIL"
    tags = [tag.strip() for tag in value.split(",") if tag.strip()]
    if not tags:
        return b"NIL"
    if len(tags) == 1:
        return _s(tags[0])
    return b"(" + b" ".join(_s(tag) for tag in tags) + b")"


def _extension_tail(entity: Entity) -> bytes:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc (RFC 9051 §9)."""
    return b" ".join((_disposition(entity), _language(entity),
                      _ns(entity.get("content-location"))))


def _structure(entity: Entity, extensible: bool, out: list[bytes]) -> None:
    mtype, subtype, params = entity.content_type
    if entity.kind == MULTIPART:
        out.append(b"(")
        for child in entity.children:
            _structure(child, extensible, out)
        out.append(b" " + _s(subtype))
        if extensible:
            out.append(b" " + _param_list(params) + b" " + _extension_tail(entity))
        out.append(b")")
        return
    size = entity.body_size
    out.append(b"(" + b" ".join((
        _s(mtype), _s(subtype), _param_list(params),
        _ns(entity.get("content-id")), _ns(entity.get("content-description")),
        _s(entity.encoding), b"%d" % size)))
    if entity.kind == MESSAGE:
        inner = entity.message
        out.append(b" " + _envelope(inner) + b" ")
        _structure(inner, extensible, out)
        out.append(b" %d" % _lines(entity))
    elif mtype == "text":
        out.append(b" %d" % _lines(entity))
    if extensible:
        out.append(b" " + _ns(entity.get("content-md5")) + b" " + _extension_tail(entity))
    out.append(b")")


# --- one-shot shortcuts --------------------------------------------------------------------


def envelope(raw: bytes) -> bytes:
    """The parenthesised ENVELOPE of a message (RFC 9051 §7.5.2)."""
    return Message(raw).envelope()


def bodystructure(raw: bytes, extensible: bool) -> bytes:
    """BODYSTRUCTURE (``extensible``) or BODY of a message (RFC 9051 §7.5.2)."""
    return Message(raw).bodystructure(extensible)


def section(raw: bytes, spec: str) -> bytes:
    """The content of ``BODY[spec]``; b"" for a missing part. BadSection for a bad spec."""
    return Message(raw).section(parse_section(spec))


__all__ = [  # what IMAP's modules and tests read here, whichever module defines it
    "ADDRESS_FIELDS", "DECODABLE", "IDENTITY_ENCODINGS", "LEAF", "MAX_DEPTH", "MAX_PARTS",
    "MESSAGE", "MULTIPART", "PIECE", "BadSection", "Entity", "Message", "Section",
    "UnknownEncoding", "address_text", "bodystructure", "charset_decode", "decode_transfer",
    "decode_words", "decoded_pieces", "envelope", "header_text", "incremental_decoder",
    "parse_section", "section", "unfold",
]
