"""Target ``imap_command``: an IMAP command as the server hands it to its parsers.

The octets are one command, literals included, without the final CRLF, as the server
passes it to ``parse_command`` (imap/parser.py). A command that parses goes on to the
argument parsers the session calls: sequence sets (imap/sequence.py) for FETCH, STORE,
COPY, MOVE, EXPUNGE and SELECT's QRESYNC, the fetch attributes and sections
(imap/fetch.py, imap/mime.py ``parse_section``) and SEARCH programs (imap/search.py);
the fetch request is then rendered on a sample message and the search program run on it.

Oracles:
- ``parse_command`` raises ``ParseError`` only, whose reply is one line;
  ``peek_tag`` and ``split_literal`` never fail, and ``peek_tag`` finds the tag that
  ``parse_command`` reads;
- a parsed command written back (strings as literals) parses to the same tokens: the
  normalisation of sections is idempotent;
- the argument parsers raise their documented errors only (``BadSequence``,
  ``FetchError``, ``SearchError``; all ``ValueError`` or ``CommandError``);
- a sequence set written back parses to the same set, and resolves to ascending, unique
  positions inside the mailbox; a section written back parses to the same section;
- a FETCH response on the sample message reads as IMAP data (imapsyntax.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from fuzz.imapsyntax import read_fetch
from fuzz.oracles import expect
from mssante.imap.errors import CommandError
from mssante.imap.fetch import FetchError, FetchRequest, fetch_response, parse_fetch_items
from mssante.imap.mime import parse_section
from mssante.imap.parser import ParseError, parse_command, peek_tag, split_literal
from mssante.imap.search import SearchError, parse_search
from mssante.imap.sequence import BadSequence, SequenceSet, parse_sequence_set
from mssante.imap.tokens import Atom, String, Token

MAX_LEN = 16 * 1024

SAMPLE = (
    b"Return-Path: <marie.bernard@ch-xyz.mssante.fr>\r\n"
    b"From: =?utf-8?q?Marie_Bernard?= <marie.bernard@ch-xyz.mssante.fr>\r\n"
    b"To: \"Dr. Martin, Paul\" <paul.martin@medecin.mssante.fr>, undisclosed:;\r\n"
    b"Cc: secretariat@medecin.mssante.fr\r\n"
    b"Subject: =?iso-8859-1?q?Compte_rendu_de_consultation?=\r\n"
    b"Date: Mon, 07 Dec 2026 10:12:00 +0100\r\n"
    b"Message-ID: <cr.4182@ch-xyz.mssante.fr>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Bonjour, voici le compte rendu. Tension =C3=A9lev=C3=A9e.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf; name=\"cr.pdf\"\r\n"
    b"Content-Disposition: attachment; filename=\"cr.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQKJcfsj6IK\r\n"
    b"--b1\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: secretariat@ch-xyz.mssante.fr\r\n"
    b"Subject: transfert\r\n"
    b"Content-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: x-unknown\r\n"
    b"\r\n"
    b"<p>Vu le patient.</p>\r\n"
    b"--b1--\r\n")
UIDS = [3, 4, 7, 8, 9, 120]  # the sample mailbox: six messages, UIDs with gaps


@dataclass(frozen=True, slots=True)
class SampleMessage:
    """The sample as both FETCH and SEARCH read a message."""

    seq: int = 2
    uid: int = 4
    flags: str = "\\Seen $Label1"
    modseq: int = 17
    internaldate: float = 1_796_634_720.0
    size: int = len(SAMPLE)
    body: bytes | None = SAMPLE
    raw: bytes | None = SAMPLE


def _literal(value: bytes, binary: bool) -> bytes:
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(value) + value


def written(tokens: list[Token]) -> bytes:
    """Tokens as a client could send them again: atoms as they are, strings as literals."""
    out: list[bytes] = []
    for token in tokens:
        if isinstance(token, Atom):
            out.append(token.value.encode("ascii"))
        elif isinstance(token, String):
            out.append(_literal(token.value, token.binary))
        else:
            out.append(b"(" + written(token) + b")")
    return b" ".join(out)


def _plain(tokens: list[Token]) -> list[object]:
    """Tokens without how strings were sent."""
    return [t.value if isinstance(t, String) else _plain(t) if isinstance(t, list) else t
            for t in tokens]


def _sequence(token: Token, uid_mode: bool) -> SequenceSet | None:
    if not isinstance(token, Atom):
        return None
    try:
        parsed = parse_sequence_set(token.value)
    except BadSequence:
        return None
    expect(parse_sequence_set(str(parsed)) == parsed, f"{parsed} does not read back")
    for strict in (True, False):
        try:
            positions = parsed.uids_in(UIDS, uid_mode, saved=[4, 9, 500], strict=strict)
        except BadSequence:
            expect(strict and not uid_mode, f"{parsed}: BadSequence in a lenient resolution")
            continue
        expect(positions == sorted(set(positions)) and all(0 <= p < len(UIDS) for p in positions),
               f"{parsed} resolves to {positions}")
    try:
        known = parsed.resolve_uids(UIDS, known=True, uidnext=121)
    except BadSequence:
        return parsed
    expect(known == sorted(set(known)) and all(0 < u < 121 for u in known),
           f"{parsed} names the known UIDs {known[:20]}")
    return parsed


def _fetch(args: list[Token], uid_mode: bool) -> None:
    if len(args) not in (2, 3):
        return
    _sequence(args[0], uid_mode)
    try:
        request = parse_fetch_items(args[1] if isinstance(args[1], list) else [args[1]])
    except FetchError:
        return
    for item in request.items:
        if item.section is not None:
            again = parse_section(str(item.section))
            expect(again == item.section, f"section {item.section} reads back as {again}")
    _render(request, uid_mode)


def _render(request: FetchRequest, uid_mode: bool) -> None:
    try:
        response = fetch_response(2, request, SampleMessage(), uid_command=uid_mode)
    except FetchError as exc:
        expect(exc.status == "NO", f"FETCH rendering: {exc.status} {exc.text}")
        return
    items = read_fetch(response)
    expect(len(items) >= 2, f"an empty FETCH response: {response[:200]!r}")


def _search(args: list[Token], uid_mode: bool) -> None:
    try:
        program = parse_search(args)
    except SearchError:
        return
    try:
        program.resolve(lambda text, uids: [
            UIDS[i] for i in parse_sequence_set(text).uids_in(UIDS, uids, strict=False)])
    except BadSequence:
        return
    program.matches(SampleMessage())


def _command(raw: bytes) -> None:
    try:
        command = parse_command(raw)
    except ParseError as exc:
        reply = exc.response()
        expect(reply.endswith(b"\r\n") and b"\r" not in reply[:-2] and b"\n" not in reply[:-2]
               and reply.isascii(), f"the BAD reply is not one line: {reply!r}")
        return
    expect(peek_tag(raw) == command.tag, f"peek_tag {peek_tag(raw)!r} for {command.tag!r}")
    again = parse_command(b"%s %s %s" % (command.tag.encode(), command.name.encode(),
                                         written(command.args)))
    expect(_plain(again.args) == _plain(command.args),
           f"{command.args!r} written back reads {again.args!r}")
    uid_mode = command.name.startswith("UID ")
    name = command.name.removeprefix("UID ")
    try:
        if name == "FETCH":
            _fetch(command.args, uid_mode)
        elif name == "SEARCH":
            _search(command.args, uid_mode)
        elif name in ("STORE", "COPY", "MOVE", "EXPUNGE") and command.args:
            _sequence(command.args[0], uid_mode)
        elif name in ("SELECT", "EXAMINE") and len(command.args) == 2 and isinstance(
                command.args[1], list):
            for item in command.args[1]:  # (QRESYNC (uidvalidity modseq known-uids))
                if isinstance(item, list) and len(item) > 2:
                    _sequence(item[2], True)
    except CommandError as exc:
        raise AssertionError(f"{command.name}: an undocumented {exc.status} {exc.text}") from exc


def check(data: bytes) -> None:
    raw = data[:MAX_LEN]
    first_line = raw.split(b"\r\n", 1)[0]
    split_literal(first_line)
    peek_tag(raw)
    _command(raw)
