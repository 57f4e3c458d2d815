"""FETCH items parsed from tokens, and FETCH responses rendered for one message."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mssante.content import mime as content_mime
from mssante.imap import fetch, mime
from mssante.imap.fetch import FetchError, FetchRequest, fetch_response, parse_fetch_items
from mssante.imap.tokens import Atom, String, Token
from tests.imap.test_mime import (
    MIXED_PDF,
    PDF,
    QP_FRENCH,
    XDM,
    XDM_MESSAGE,
    check_body,
    check_envelope,
    parse_sexp,
)

INTERNALDATE = 1772529300.0  # 2026-03-03 09:15:00 UTC


@dataclass(frozen=True, slots=True)
class Stored:
    uid: int
    flags: str = "\\Seen"
    modseq: int = 7
    internaldate: float = INTERNALDATE
    size: int = 0
    body: bytes | None = None


def stored(body: bytes, *, uid: int = 42, flags: str = "\\Seen") -> Stored:
    return Stored(uid=uid, flags=flags, size=len(body), body=body)


def request(*items: str) -> FetchRequest:
    tokens: list[Token] = [Atom(i) for i in items]
    return parse_fetch_items([tokens] if len(items) > 1 else tokens)


def items(req: FetchRequest) -> list[str]:
    return [item.response.decode() for item in req.items]


def split_response(line: bytes) -> tuple[int, list[object]]:
    """``* n FETCH (...)\\r\\n`` as (n, [name, value, name, value, ...])."""
    assert line.startswith(b"* ") and line.endswith(b")\r\n")
    seq, _, rest = line[2:-2].partition(b" FETCH ")
    # names like BODY[HEADER.FIELDS (FROM)]<0> are not s-expressions: read them by hand
    out: list[object] = []
    position = 1
    data = rest
    while data[position:position + 1] != b")":
        end = position
        depth = 0
        while depth or data[end:end + 1] not in (b" ",):
            if data[end:end + 1] == b"[":
                depth += 1
            elif data[end:end + 1] == b"]":
                depth -= 1
            end += 1
        out.append(data[position:end].decode())
        position = end + 1
        value, position = _value(data, position)
        out.append(value)
        if data[position:position + 1] == b" ":
            position += 1
    assert position == len(data) - 1
    return int(seq), out


def _value(data: bytes, position: int) -> tuple[object, int]:
    """One value at ``position`` and where it ends, through parse_sexp."""
    if data[position:position + 1] == b"~":
        position += 1
    if data[position:position + 1] == b"{":
        end = data.index(b"}\r\n", position)
        length = int(data[position + 1:end])
        stop = end + 3 + length
        return parse_sexp(data[position:stop]), stop
    depth = 0
    end = position
    quoted = False
    while end < len(data):
        char = data[end:end + 1]
        if quoted:
            if char == b"\\":
                end += 1
            elif char == b'"':
                quoted = False
        elif char == b'"':
            quoted = True
        elif char == b"{":  # a literal inside a list: skip its octets
            close = data.index(b"}\r\n", end)
            end = close + 3 + int(data[end + 1:close]) - 1
        elif char == b"(":
            depth += 1
        elif char == b")":
            if depth == 0:
                break
            depth -= 1
            if depth == 0:
                end += 1
                break
        elif char == b" " and depth == 0:
            break
        end += 1
    return parse_sexp(data[position:end]), end


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("macro", "expected"), [
    ("ALL", ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]),
    ("fast", ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]),
    ("FULL", ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]),
])
def test_macros(macro: str, expected: list[str]) -> None:
    assert items(parse_fetch_items([Atom(macro)])) == expected


def test_item_list_as_one_token_or_as_its_items() -> None:
    listed = parse_fetch_items([[Atom("UID"), Atom("flags"), Atom("BODY.PEEK[HEADER]")]])
    spread = parse_fetch_items([Atom("UID"), Atom("flags"), Atom("BODY.PEEK[HEADER]")])
    assert items(listed) == items(spread) == ["UID", "FLAGS", "BODY[HEADER]"]


@pytest.mark.parametrize(("atom", "response", "peek", "partial"), [
    ("BODY[]", "BODY[]", False, None),
    ("body.peek[]", "BODY[]", True, None),
    ("BODY.PEEK[HEADER.FIELDS (From Subject)]<0.2048>",
     "BODY[HEADER.FIELDS (FROM SUBJECT)]<0>", True, (0, 2048)),
    ("BODY[1.2.MIME]", "BODY[1.2.MIME]", False, None),
    ("BODY[TEXT]<100.50>", "BODY[TEXT]<100>", False, (100, 50)),
    ("BINARY[2]", "BINARY[2]", False, None),
    ("BINARY.PEEK[1.1]<0.10>", "BINARY[1.1]<0>", True, (0, 10)),
    ("BINARY.SIZE[2]", "BINARY.SIZE[2]", False, None),
    ("BINARY[]", "BINARY[]", False, None),
])
def test_sectioned_items(atom: str, response: str, peek: bool,
                         partial: tuple[int, int] | None) -> None:
    (item,) = parse_fetch_items([Atom(atom)]).items
    assert item.response.decode() == response
    assert item.peek is peek
    assert item.partial == partial


@pytest.mark.parametrize("tokens", [
    [Atom("BOGUS")],
    [Atom("BODY[")],
    [Atom("BODY[FOO]")],
    [Atom("BODY[1.MIME.TEXT]")],
    [Atom("BODY[]<0.0>")],  # RFC 9051 §9: the length is an nz-number
    [Atom("BODY[]<1>")],
    [Atom("BODY[]<a.b>")],
    [Atom("BODY<0.10>")],
    [Atom("BINARY[HEADER]")],
    [Atom("BINARY[1.MIME]")],
    [Atom("BINARY.SIZE[1]<0.10>")],
    [Atom("BODY[]<99999999999999999999.1>")],
    [[Atom("FLAGS"), Atom("ALL")]],
    [[Atom("ALL"), Atom("FLAGS")]],
    [[]],
    [],
    [String(b"FLAGS")],
    [[Atom("FLAGS"), [Atom("UID")]]],
    [Atom("EMAILID")],
])
def test_bad_items(tokens: list[Token]) -> None:
    with pytest.raises(FetchError) as caught:
        parse_fetch_items(tokens)
    assert caught.value.status == "BAD"
    assert caught.value.line("a1").startswith(b"a1 BAD ")


def test_what_a_request_needs() -> None:
    flags = request("UID", "FLAGS", "MODSEQ")
    assert flags.only_flags and not flags.needs_body and not flags.needs_meta
    assert flags.uid and flags.flags and flags.modseq and not flags.sets_seen
    fast = parse_fetch_items([Atom("FAST")])
    assert fast.needs_meta and not fast.needs_body and not fast.only_flags
    assert request("ENVELOPE").needs_body
    assert request("BODY.PEEK[]").needs_body and not request("BODY.PEEK[]").sets_seen


@pytest.mark.parametrize(("item", "sets_seen"), [
    ("BODY[]", True), ("BODY[HEADER]", True), ("BODY.PEEK[TEXT]", False),
    ("BINARY[1]", True), ("BINARY.PEEK[1]", False), ("BINARY.SIZE[1]", False),
    ("RFC822", True), ("RFC822.TEXT", True), ("RFC822.HEADER", False),  # RFC 3501 §6.4.5
    ("BODYSTRUCTURE", False), ("ENVELOPE", False), ("BODY", False),
])
def test_which_items_set_seen(item: str, sets_seen: bool) -> None:
    assert request(item).sets_seen is sets_seen


def test_duplicates_answered_once_and_peek_loses_to_non_peek() -> None:
    req = request("FLAGS", "BODY.PEEK[1]", "flags", "BODY[1]")
    assert items(req) == ["FLAGS", "BODY[1]"]
    assert req.sets_seen


# --- metadata: the fast path --------------------------------------------------------------------


def test_flags_fast_path() -> None:
    msg = Stored(uid=40, flags="\\Seen $Label1", modseq=12)
    assert fetch_response(12, request("FLAGS"), msg) == b"* 12 FETCH (FLAGS (\\Seen $Label1))\r\n"
    assert fetch_response(12, request("FLAGS"), msg, uid_command=True) == (
        b"* 12 FETCH (UID 40 FLAGS (\\Seen $Label1))\r\n")
    assert fetch_response(12, request("FLAGS").with_uid(), msg) == (
        b"* 12 FETCH (UID 40 FLAGS (\\Seen $Label1))\r\n")
    assert fetch_response(12, request("FLAGS"), msg, uid_command=True, include_modseq=True) == (
        b"* 12 FETCH (UID 40 FLAGS (\\Seen $Label1) MODSEQ (12))\r\n")
    assert fetch_response(1, request("FLAGS"), Stored(uid=1, flags="")) == (
        b"* 1 FETCH (FLAGS ())\r\n")
    assert fetch_response(3, request("UID"), msg, uid_command=True) == b"* 3 FETCH (UID 40)\r\n"


def test_uid_already_asked_is_not_repeated() -> None:
    msg = Stored(uid=40)
    assert fetch_response(1, request("FLAGS", "UID"), msg, uid_command=True) == (
        b"* 1 FETCH (FLAGS (\\Seen) UID 40)\r\n")


def test_metadata_items() -> None:
    msg = Stored(uid=5, size=1234, modseq=99)
    assert fetch_response(2, parse_fetch_items([Atom("FAST")]), msg) == (
        b'* 2 FETCH (FLAGS (\\Seen) INTERNALDATE " 3-Mar-2026 09:15:00 +0000" '
        b"RFC822.SIZE 1234)\r\n")
    assert fetch_response(2, request("MODSEQ"), msg) == b"* 2 FETCH (MODSEQ (99))\r\n"


@pytest.mark.parametrize(("timestamp", "text"), [
    (0, " 1-Jan-1970 00:00:00 +0000"),
    (1795748021, "27-Nov-2026 02:53:41 +0000"),
    (1772529300.9, " 3-Mar-2026 09:15:00 +0000"),
])
def test_internaldate_format(timestamp: float, text: str) -> None:
    assert fetch.internaldate(timestamp) == text


def test_include_flags_after_setting_seen() -> None:
    msg = stored(MIXED_PDF, flags="\\Seen")
    line = fetch_response(1, request("BODY[1]"), msg, include_flags=True)
    assert line.startswith(b"* 1 FETCH (BODY[1] {")
    assert line.endswith(b" FLAGS (\\Seen))\r\n")
    asked = request("FLAGS", "BODY[1]")
    assert asked.with_flags() is asked
    plain = request("BODY[1]")
    assert plain.with_flags() is plain.with_flags()  # variants are cached


def test_flag_fetch_of_100000_messages() -> None:
    """The fast path of a resynchronisation (its speed: bench/imap.py)."""
    messages = [Stored(uid=i, flags="\\Seen $Label1", modseq=i) for i in range(1, 100_001)]
    req = request("FLAGS").with_uid()
    out = b"".join([fetch_response(i, req, m) for i, m in enumerate(messages, 1)])
    assert out.count(b"\r\n") == 100_000
    assert out.endswith(b"* 100000 FETCH (UID 100000 FLAGS (\\Seen $Label1))\r\n")


# --- message contents -------------------------------------------------------------------------


def test_envelope_and_bodystructure() -> None:
    line = fetch_response(3, request("UID", "ENVELOPE", "BODYSTRUCTURE", "BODY"),
                          stored(MIXED_PDF))
    seq, values = split_response(line)
    assert seq == 3 and values[0::2] == ["UID", "ENVELOPE", "BODYSTRUCTURE", "BODY"]
    check_envelope(values[3])
    check_body(values[5], True)
    check_body(values[7], False)
    assert values[5] == parse_sexp(mime.bodystructure(MIXED_PDF, True))


def test_header_fields_as_thunderbird_asks() -> None:
    req = parse_fetch_items([[Atom("UID"), Atom("RFC822.SIZE"), Atom("FLAGS"),
                              Atom("BODY.PEEK[HEADER.FIELDS (From To Subject Date "
                                   "Message-ID Priority X-Priority References)]")]])
    line = fetch_response(1, req, stored(MIXED_PDF, uid=7), uid_command=True)
    expected_header = mime.section(
        MIXED_PDF, "HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID PRIORITY X-PRIORITY "
                   "REFERENCES)")
    assert line == (
        b"* 1 FETCH (UID 7 RFC822.SIZE %d FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM TO SUBJECT "
        b"DATE MESSAGE-ID PRIORITY X-PRIORITY REFERENCES)] {%d}\r\n%s)\r\n"
        % (len(MIXED_PDF), len(expected_header), expected_header))


def test_partial_fetches() -> None:
    msg = stored(MIXED_PDF)
    line = fetch_response(1, request("BODY.PEEK[]<0.10>"), msg)
    assert line == b"* 1 FETCH (BODY[]<0> {10}\r\n" + MIXED_PDF[:10] + b")\r\n"
    line = fetch_response(1, request("BODY.PEEK[]<10.20>"), msg)
    assert line == b"* 1 FETCH (BODY[]<10> {20}\r\n" + MIXED_PDF[10:30] + b")\r\n"
    line = fetch_response(1, request("BODY.PEEK[]<100000.20>"), msg)
    assert line == b'* 1 FETCH (BODY[]<100000> "")\r\n'  # past the end: empty
    tail = MIXED_PDF[-5:]
    line = fetch_response(1, request(f"BODY.PEEK[]<{len(MIXED_PDF) - 5}.100>"), msg)
    assert line.endswith(b"{5}\r\n" + tail + b")\r\n")


def test_missing_part_is_empty_string() -> None:
    line = fetch_response(1, request("BODY.PEEK[9]"), stored(MIXED_PDF))
    assert line == b'* 1 FETCH (BODY[9] "")\r\n'


def test_rfc822_items() -> None:
    msg = stored(QP_FRENCH)
    header, _, text = QP_FRENCH.partition(b"\r\n\r\n")
    line = fetch_response(1, request("RFC822.HEADER", "RFC822.TEXT", "RFC822"), msg)
    assert line == (b"* 1 FETCH (RFC822.HEADER {%d}\r\n%s\r\n\r\n RFC822.TEXT {%d}\r\n%s "
                    b"RFC822 {%d}\r\n%s)\r\n" % (len(header) + 4, header, len(text), text,
                                                 len(QP_FRENCH), QP_FRENCH))


def test_binary_decodes_the_pdf() -> None:
    msg = stored(MIXED_PDF)
    line = fetch_response(1, request("BINARY.PEEK[2]", "BINARY.SIZE[2]"), msg)
    assert line == b"* 1 FETCH (BINARY[2] {%d}\r\n%s BINARY.SIZE[2] %d)\r\n" % (
        len(PDF), PDF, len(PDF))
    text = "Chère consoeur,".encode()
    line = fetch_response(1, request(f"BINARY.PEEK[1]<0.{len(text)}>"), msg)
    assert line == b"* 1 FETCH (BINARY[1]<0> {%d}\r\n%s)\r\n" % (len(text), text)


def test_binary_with_nul_is_a_literal8() -> None:
    assert b"\x00" in XDM
    line = fetch_response(1, request("BINARY[2]"), stored(XDM_MESSAGE))
    assert line == b"* 1 FETCH (BINARY[2] ~{%d}\r\n%s)\r\n" % (len(XDM), XDM)


def test_binary_of_unknown_encoding_is_no_unknown_cte() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n"
           b"\r\nbegin 644 a\r\n--b--\r\n")
    with pytest.raises(FetchError) as caught:
        fetch_response(1, request("BINARY.PEEK[1]"), stored(raw))
    assert caught.value.status == "NO" and caught.value.code == "UNKNOWN-CTE"
    assert caught.value.line("a7").startswith(b"a7 NO [UNKNOWN-CTE] ")
    # BODY[1] of the same part is fine
    assert fetch_response(1, request("BODY.PEEK[1]"), stored(raw)).endswith(
        b"{11}\r\nbegin 644 a)\r\n")


def test_body_must_be_loaded() -> None:
    with pytest.raises(ValueError, match="body"):
        fetch_response(1, request("ENVELOPE"), Stored(uid=1, body=None))


def test_each_message_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[bytes] = []
    splits: list[bytes] = []

    class Counting(mime.Message):
        def __init__(self, raw: bytes) -> None:
            built.append(raw)
            super().__init__(raw)

    original = content_mime.split_fields

    def counting_split(header: bytes) -> list[tuple[str, bytes]]:
        splits.append(header)
        return original(header)

    monkeypatch.setattr(fetch, "Message", Counting)
    monkeypatch.setattr(content_mime, "split_fields", counting_split)
    req = request("ENVELOPE", "BODYSTRUCTURE", "BODY", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
                  "BODY.PEEK[1]", "BINARY.PEEK[2]", "BINARY.SIZE[2]", "BODY.PEEK[2.MIME]")
    fetch_response(1, req, stored(MIXED_PDF))
    assert built == [MIXED_PDF]
    assert len(splits) == len(set(splits)) == 3  # the message header and two part headers


def test_bodystructure_of_a_broken_message_in_a_fetch() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\nno delimiter at all\r\n"
    _, values = split_response(fetch_response(1, request("BODYSTRUCTURE", "ENVELOPE"),
                                              stored(raw)))
    check_body(values[1], True)
    check_envelope(values[3])


# --- streaming: a whole-message answer described without the body ---------------------------


@pytest.mark.parametrize(("items", "streamable"), [
    (("BODY[]",), True), (("BODY.PEEK[]<10.20>",), True), (("RFC822",), True),
    (("UID", "RFC822.SIZE", "BODY.PEEK[]", "FLAGS"), True),
    (("BODY.PEEK[]", "BODY.PEEK[]<0.5>"), True),
    (("BODY[TEXT]",), False), (("BODY.PEEK[1]",), False), (("BINARY[]",), False),
    (("BODY[]", "ENVELOPE"), False), (("RFC822.HEADER",), False), (("FLAGS",), False),
])
def test_segments_concatenate_to_the_response(items: tuple[str, ...], streamable: bool) -> None:
    """A streamable request's segments, ranges replaced by the body's octets, are the
    very response fetch_response writes; the others need the message parsed."""
    req = request(*items)
    assert req.streamable is streamable
    body = MIXED_PDF
    if not streamable:
        return
    for options in ({}, {"uid_command": True, "include_flags": True, "include_modseq": True}):
        segments = fetch.fetch_segments(7, req, Stored(uid=42, size=len(body)), **options)
        assert any(isinstance(s, tuple) for s in segments)
        joined = b"".join(s if isinstance(s, bytes) else body[s[0]:s[0] + s[1]]
                          for s in segments)
        assert joined == fetch_response(7, req, stored(body), **options)
        assert joined == b"".join(fetch.fetch_pieces(7, req, stored(body), **options))


def test_a_partial_past_the_end_is_an_empty_string_without_a_range() -> None:
    segments = fetch.fetch_segments(1, request("BODY.PEEK[]<5000000.10>"),
                                    Stored(uid=1, size=100))
    assert segments == [b'* 1 FETCH (BODY[]<5000000> "")\r\n']
