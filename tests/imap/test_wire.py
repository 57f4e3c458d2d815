"""How values and responses are written (RFC 9051 §4.3, §7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.imap import mutf7, wire
from mssante.imap.parser import parse_command
from mssante.imap.tokens import Atom, String, Token


def test_quoted_escapes_quote_and_backslash() -> None:
    assert wire.quoted(b"") == b'""'
    assert wire.quoted(b"Sent Items") == b'"Sent Items"'
    assert wire.quoted(b'a"b\\c') == b'"a\\"b\\\\c"'


@pytest.mark.parametrize("value", [b"a\rb", b"a\nb", b"a\x00b", "é".encode(), b"\xff",
                                   b"x" * (wire.QUOTED_MAX + 1)])
def test_what_cannot_be_quoted(value: bytes) -> None:
    assert wire.quoted(value) is None


def test_quoted_utf8_only_when_allowed_and_valid() -> None:
    assert wire.quoted("Entwürfe".encode(), utf8=True) == '"Entwürfe"'.encode()
    assert wire.quoted(b"\xff", utf8=True) is None
    assert wire.quoted(b"a\r\n", utf8=True) is None
    assert wire.quoted(b"x" * wire.QUOTED_MAX) == b'"' + b"x" * wire.QUOTED_MAX + b'"'


def test_literals() -> None:
    assert wire.literal(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert wire.literal(b"") == b"{0}\r\n"
    assert wire.literal(b"\x00\x01", binary=True) == b"~{2}\r\n\x00\x01"


@pytest.mark.parametrize("value,encoded", [
    ("alice", b"alice"),
    ("a]b", b"a]b"),
    ("a[b", b'"a[b"'),
    ("", b'""'),
    ("NIL", b'"NIL"'),
    ("nil", b'"nil"'),
    ("two words", b'"two words"'),
    ("a*", b'"a*"'),
    ("50%", b'"50%"'),
    ("(x)", b'"(x)"'),
    ("{5}", b'"{5}"'),
    ('q"', b'"q\\""'),
    ("\\Seen", b'"\\\\Seen"'),
    ("line\r\nbreak", b"{11}\r\nline\r\nbreak"),
    ("é", b"{2}\r\n\xc3\xa9"),
    (b"bytes", b"bytes"),
    (b"\xff", b"{1}\r\n\xff"),
])
def test_astring_picks_atom_then_quoted_then_literal(value: str | bytes, encoded: bytes) -> None:
    assert wire.astring(value) == encoded


def test_astring_in_a_utf8_session_quotes_utf8() -> None:
    assert wire.astring("é", utf8=True) == '"é"'.encode()
    assert wire.astring(b"\xff", utf8=True) == b"{1}\r\n\xff"


def test_nstring() -> None:
    assert wire.nstring(None) == b"NIL"
    assert wire.nstring(b"") == b'""'
    assert wire.nstring(b"NIL") == b'"NIL"'
    assert wire.nstring(b"Subject: hi") == b'"Subject: hi"'
    assert wire.nstring(b"a\r\nb") == b"{4}\r\na\r\nb"


def test_paren() -> None:
    assert wire.paren([]) == b"()"
    assert wire.paren([b"\\Seen", b"$Label1"]) == b"(\\Seen $Label1)"
    assert wire.paren(x for x in (b"a", wire.paren([b"b"]))) == b"(a (b))"


@pytest.mark.parametrize("name,utf8,encoded", [
    ("INBOX", False, b"INBOX"),
    ("inbox", False, b"INBOX"),
    ("Inbox", True, b"INBOX"),
    ("INBOX/Archives", False, b"INBOX/Archives"),
    ("Sent", False, b"Sent"),
    ("Sent Items", False, b'"Sent Items"'),
    ("Entwürfe", False, b"Entw&APw-rfe"),
    ("Entwürfe", True, '"Entwürfe"'.encode()),
    ("R&D", False, b"R&-D"),
    ("R&D", True, b"R&D"),
    ("Projets/Été 2026", False, b'"Projets/&AMk-t&AOk- 2026"'),
    ("Projets/Été 2026", True, '"Projets/Été 2026"'.encode()),
    ("*", False, b'"*"'),
])
def test_mailbox_names(name: str, utf8: bool, encoded: bytes) -> None:
    assert wire.mailbox_name(name, utf8) == encoded


def test_token_renders_what_the_parser_reads() -> None:
    tokens: list[Token] = [Atom("BODY[]"), String(b"a b"), String(b"x", literal=True),
                           String(b"\x00", literal=True, binary=True), [Atom("\\Seen"), []],
                           String(b"\r\n")]
    raw = b"a X " + b" ".join(wire.token(t) for t in tokens)
    assert raw == b'a X BODY[] "a b" {1}\r\nx ~{1}\r\n\x00 (\\Seen ()) {2}\r\n\r\n'
    assert parse_command(raw).args == [*tokens[:-1], String(b"\r\n", literal=True)]


def test_untagged() -> None:
    assert wire.untagged(b"3 EXISTS") == b"* 3 EXISTS\r\n"
    assert wire.untagged("SEARCH 1 2") == b"* SEARCH 1 2\r\n"
    # a FETCH response carries a literal: untagged leaves it alone
    assert wire.untagged(b"1 FETCH (BODY[] {2}\r\nhi)") == b"* 1 FETCH (BODY[] {2}\r\nhi)\r\n"


def test_tagged() -> None:
    assert wire.tagged("a1", "OK", "LOGIN completed") == b"a1 OK LOGIN completed\r\n"
    assert (wire.tagged("a1", "NO", "No such mailbox", "NONEXISTENT") ==
            b"a1 NO [NONEXISTENT] No such mailbox\r\n")
    assert wire.tagged("*", "OK", b"Predicted next UID", "UIDNEXT 4") == \
        b"* OK [UIDNEXT 4] Predicted next UID\r\n"
    # status text is 7-bit for every client (RFC 9051 §9 "text": UTF-8 only after ENABLE):
    # accents are dropped, other characters become "?"
    assert wire.tagged("a", "BAD", "Entwürfe?") == b"a BAD Entwurfe?\r\n"
    assert wire.tagged("a", "NO", "Pro Santé Connect ✓") == b"a NO Pro Sante Connect ?\r\n"


def test_response_injection_through_a_crlf_in_tagged_text() -> None:
    """A mailbox name sent as a literal may hold CRLF; quoted in an error message it
    must not end the line and forge another response."""
    name = "x\r\na2 OK [ALERT] forged\r\n* BYE"
    reply = wire.tagged("a1", "NO", f"no mailbox {name}", "NONEXISTENT\r\n")
    assert reply.count(b"\r\n") == 1 and reply.endswith(b"\r\n")
    assert b"\x00" not in wire.tagged("a1", "NO", "nul\x00here")


safe = st.binary(max_size=40)


@given(safe)
def test_any_astring_parses_back_to_its_value(value: bytes) -> None:
    parsed = parse_command(b"t X " + wire.astring(value)).args[0]
    assert isinstance(parsed, Atom | String)
    got = parsed.value.encode() if isinstance(parsed, Atom) else parsed.value
    assert got == value


@given(st.one_of(st.none(), safe), st.booleans())
def test_any_nstring_parses_back(value: bytes | None, utf8: bool) -> None:
    parsed = parse_command(b"t X " + wire.nstring(value, utf8=utf8)).args[0]
    if value is None:
        assert parsed == Atom("NIL")
    else:
        assert isinstance(parsed, String) and parsed.value == value


@given(st.text(max_size=20).filter(lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s)),
       st.booleans())
def test_any_mailbox_name_parses_back(name: str, utf8: bool) -> None:
    parsed = parse_command(b"t SELECT " + wire.mailbox_name(name, utf8)).args[0]
    assert isinstance(parsed, Atom | String)
    got = parsed.value.encode() if isinstance(parsed, Atom) else parsed.value
    if name.upper() == "INBOX":
        assert got == b"INBOX"
    elif utf8:
        assert got == name.encode()
    else:
        assert mutf7.decode(got) == name
