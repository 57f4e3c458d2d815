"""Target ``mime``: the MIME walker (content/mime.py) and IMAP's views of it (imap/mime.py).

The octets are a stored message. The target builds ``imap.mime.Message`` on them and
asks what a FETCH, a SEARCH and the webmail ask: ENVELOPE, BODYSTRUCTURE and BODY
(both forms), every part by its number with its MIME header, its body and BINARY, the
header fields, the decoded text of every text part and header section, and the
address fields as SEARCH and the message list read them.

Oracles:
- nothing raises but ``UnknownEncoding`` from BINARY (RFC 3516 §4.2 UNKNOWN-CTE): the
  walker promises never to raise on broken MIME;
- every entity is a window inside its parent's body, children in order and not
  overlapping, no deeper than ``MAX_DEPTH`` + 1, no more than ``MAX_PARTS`` body parts;
  every part number the walk finds names that part (``Message.part``);
- ENVELOPE is a list of ten values whose address fields are NIL or lists of
  four-value addresses; BODYSTRUCTURE and BODY read as IMAP data (imapsyntax.py: quoted
  strings 7-bit, literal lengths right) with the shape of RFC 9051 §9 ``body``.
"""

from __future__ import annotations

import contextlib

from fuzz.imapsyntax import Text, Value, read_whole
from fuzz.oracles import OracleFailure, expect
from mssante.content.mime import (
    ADDRESS_FIELDS,
    LEAF,
    MAX_DEPTH,
    MAX_PARTS,
    MESSAGE,
    MULTIPART,
    Entity,
    UnknownEncoding,
    address_text,
    decode_words,
    subparts,
)
from mssante.imap.mime import Message, Section

MAX_LEN = 256 * 1024
MAX_VISITS = 100  # parts whose every view is fetched (all are walked)


def _walk(node: Entity, low: int, high: int, depth: int, found: list[Entity]) -> None:
    expect(low <= node.start <= node.body_start <= node.end <= high, lambda: (
        f"entity ({node.start}, {node.body_start}, {node.end}) outside ({low}, {high})"))
    expect(node.depth <= MAX_DEPTH + 1 and depth <= 2 * MAX_DEPTH + 2,
           lambda: f"an entity at depth {node.depth}")
    found.append(node)
    kind = node.kind
    if kind == MULTIPART:
        expect(bool(node.children), "a multipart without parts")
        previous = node.body_start
        for child in node.children:
            if child.start < previous:
                raise OracleFailure(f"parts overlap at {child.start}")
            _walk(child, node.body_start, node.end, depth + 1, found)
            previous = child.end
    elif kind == MESSAGE:
        _walk(node.message, node.body_start, node.end, depth + 1, found)
    else:
        expect(kind == LEAF, lambda: f"an entity of kind {kind}")


def _paths(message: Message) -> list[tuple[int, ...]]:
    root = message.root
    out: list[tuple[int, ...]] = []
    todo: list[tuple[tuple[int, ...], list[Entity]]] = [
        ((), root.children if root.kind == MULTIPART else [root])]
    while todo and len(out) < MAX_VISITS:
        prefix, kids = todo.pop()
        for number, kid in enumerate(kids[:MAX_VISITS - len(out)], 1):
            path = (*prefix, number)
            out.append(path)
            if message.part(path) is not kid:
                raise OracleFailure(f"part {path} is not the part walked")
            below = subparts(kid)
            if below and below != [kid]:
                todo.append((path, below))
    return out


def _address_list(value: Value) -> None:
    if value == b"NIL":
        return
    expect(isinstance(value, list) and all(
        isinstance(a, list) and len(a) == 4 for a in value), lambda: f"addresses {value!r}")


def _envelope(data: bytes) -> None:
    value = read_whole(data)
    expect(isinstance(value, list) and len(value) == 10, lambda: f"ENVELOPE {value!r}")
    assert isinstance(value, list)
    for field in value[2:8]:
        _address_list(field)


def _body(value: Value, depth: int = 0) -> None:
    """RFC 9051 §9 body: body-type-mpart or body-type-1part, in outline."""
    expect(isinstance(value, list) and len(value) >= 2, lambda: f"a body of {value!r}")
    assert isinstance(value, list)
    if isinstance(value[0], list):
        parts = 0
        while parts < len(value) and isinstance(value[parts], list):
            _body(value[parts], depth + 1)
            parts += 1
        expect(parts < len(value) and isinstance(value[parts], Text),
               "a multipart without its subtype")
        return
    expect(len(value) >= 7 and isinstance(value[0], Text) and isinstance(value[1], Text)
           and isinstance(value[6], bytes) and value[6].isdigit(),
           lambda: f"a part of {value[:7]!r}")
    assert isinstance(value[0], Text) and isinstance(value[1], Text)
    kind = (value[0].value.lower(), value[1].value.lower())
    if kind in ((b"message", b"rfc822"), (b"message", b"global")):
        expect(len(value) >= 10, "message/rfc822 without envelope, body and lines")
        _body(value[8], depth + 1)


def _views(message: Message, path: tuple[int, ...]) -> None:
    for text in (None, "MIME", "HEADER", "TEXT") if path else (None, "HEADER", "TEXT"):
        message.section(Section(path, text))
    message.section(Section(path, "HEADER.FIELDS", ("FROM", "CONTENT-TYPE")))
    message.section(Section(path, "HEADER.FIELDS.NOT", ("SUBJECT",)))
    with contextlib.suppress(UnknownEncoding):
        message.binary(path)


def check(data: bytes) -> None:
    raw = data[:MAX_LEN]
    message = Message(raw)
    found: list[Entity] = []
    _walk(message.root, 0, len(raw), 0, found)
    leaves = sum(1 for e in found if e.kind != MULTIPART)
    expect(leaves <= MAX_PARTS + MAX_DEPTH + 2, f"{leaves} parts")
    _envelope(message.envelope())
    for extensible in (True, False):
        _body(read_whole(message.bodystructure(extensible)))
    _views(message, ())
    for path in _paths(message):
        _views(message, path)
    for _ in message.text_parts():
        pass
    for _ in message.header_texts():
        pass
    for name in sorted(ADDRESS_FIELDS):
        for value in message.root.values(name):
            address_text(value)
    decode_words(message.root.get("subject") or "")
