"""The fuzz targets' oracles under hypothesis: inputs built from each grammar, valid and
broken, where random octets rarely reach (a whole SMTP session, a MIME tree, an IMAP
command with literals and sections). Each example goes through the same ``check`` as the
fuzzer's inputs; a few properties are stated here too (what valid input must give)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import address, imap_command, mime, smtp_command, smtp_params
from mssante.content.mime import LEAF, MULTIPART, Entity
from mssante.imap.sequence import parse_sequence_set
from mssante.smtp.params import parse_mail_params, xtext_encode

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _close_smtp_loop() -> Iterator[None]:
    yield
    smtp_command.close()


# ------------------------------------------------------------ SMTP parameters

_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@st.composite
def valid_mail_params(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """Parameters RFC 1870, 6152, 6531, 3461 and 4954 allow, in any order and case."""
    chosen: dict[str, object] = {}
    pieces: list[str] = []
    if draw(st.booleans()):
        chosen["size"] = draw(st.integers(0, 10**20 - 1))
        pieces.append(f"SIZE={chosen['size']}")
    if draw(st.booleans()):
        body = draw(st.sampled_from(["7BIT", "8BITMIME", "8bitmime"]))
        chosen["body"] = body.upper()
        pieces.append(f"BODY={body}")
    if draw(st.booleans()):
        chosen["smtputf8"] = True
        pieces.append("SMTPUTF8")
    if draw(st.booleans()):
        ret = draw(st.sampled_from(["FULL", "HDRS", "hdrs"]))
        chosen["ret"] = ret.upper()
        pieces.append(f"RET={ret}")
    if draw(st.booleans()):
        envid = draw(_printable.filter(bool))
        chosen["envid"] = envid
        pieces.append(f"ENVID={xtext_encode(envid)}")
    pieces = draw(st.permutations(pieces))
    keyword_case = draw(st.sampled_from([str.upper, str.lower, str.title]))
    text = " ".join(keyword_case(p.partition("=")[0]) + p[len(p.partition("=")[0]):]
                    for p in pieces)
    return text, chosen


@FAST
@given(valid_mail_params())
def test_valid_mail_parameters_are_read_as_written(case: tuple[str, dict[str, object]]) -> None:
    text, chosen = case
    params = parse_mail_params(text)
    for name, value in chosen.items():
        assert getattr(params, name) == value
    smtp_params.check(text.encode())


_esmtp_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                       max_size=12)
_keyword = st.sampled_from(["SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH", "NOTIFY",
                            "ORCPT", "X-FOO", "size"]) | st.from_regex(r"\A[A-Za-z0-9-]{1,8}\Z")


@FAST
@given(st.lists(st.tuples(_keyword, st.none() | _esmtp_value), max_size=5),
       st.sampled_from([" ", "  ", "\t", "\x0b", "\u2028"]))
def test_any_parameter_list_meets_the_grammar_oracle(
        params: list[tuple[str, str | None]], separator: str) -> None:
    text = separator.join(k if v is None else f"{k}={v}" for k, v in params)
    smtp_params.check(text.encode())


# ------------------------------------------------------------ SMTP sessions

_lines = st.sampled_from([
    b"EHLO client.example", b"HELO [192.0.2.1]", b"EHLO bad name", b"MAIL FROM:<a@b.example>",
    b"MAIL FROM:<> RET=HDRS ENVID=x+2B", b"MAIL FROM:<a@b.example> SIZE=20000",
    b"RCPT TO:<c@d.example> NOTIFY=SUCCESS ORCPT=rfc822;c+40d.example", b"RCPT TO:<>",
    b"RCPT TO:<@x.example:c@d.example>", b'RCPT TO:<"a b"@d.example>', b"DATA", b"RSET",
    b"NOOP", b"VRFY x", b"AUTH PLAIN", b"AUTH LOGIN", b"AUTH XOAUTH2", b"*", b"=", b"AGEAYg==",
    b"STARTTLS", b"QUIT", b"Subject: x", b"", b".", b"..", b"body\r.\rMAIL FROM:<x@y>",
    "MAIL FROM:<é@exemple.fr> SMTPUTF8".encode(), b"\xff\xfe", b"x" * 1100])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines, max_size=25), st.sampled_from([b"\r\n", b"\n"]))
def test_any_session_meets_the_protocol_oracles(lines: list[bytes], end: bytes) -> None:
    smtp_command.check(end.join(lines) + end)


# ------------------------------------------------------------ IMAP commands

_atom = st.from_regex(r"\A[A-Za-z0-9.$\\*:,-]{1,12}\Z")
_string = st.binary(max_size=20)


def _quoted(b: bytes) -> bytes:
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


_token = st.recursive(
    _atom.map(str.encode) | _string.map(_quoted)
    | _string.map(lambda b: b"{%d}\r\n" % len(b) + b)
    | _string.map(lambda b: b"~{%d+}\r\n" % len(b) + b)
    | st.sampled_from([b"BODY[]", b"BODY.PEEK[HEADER.FIELDS (FROM \"To\")]<0.10>",
                       b"BINARY[1]", b"BINARY.SIZE[2]", b"BODY[1.MIME]", b"BODY[2.TEXT]<5.1>",
                       b"BODY[3.HEADER]", b"NIL", b"\\Seen", b"$", b"1:*", b"4,7:9"]),
    lambda inner: st.lists(inner, max_size=4).map(lambda items: b"(" + b" ".join(items) + b")"),
    max_leaves=12)
_name = st.sampled_from([b"FETCH", b"UID FETCH", b"SEARCH", b"UID SEARCH", b"STORE",
                         b"UID STORE", b"COPY", b"UID MOVE", b"UID EXPUNGE", b"SELECT",
                         b"LOGIN", b"APPEND", b"LIST", b"STATUS", b"ID"])


@FAST
@given(_name, st.lists(_token, max_size=6))
def test_any_command_meets_the_parser_oracles(name: bytes, tokens: list[bytes]) -> None:
    imap_command.check(b"a1 " + name + b" " + b" ".join(tokens))


_search_key = st.sampled_from([
    b"ALL", b"SEEN", b"UNSEEN", b"FLAGGED", b"KEYWORD $Label1", b"FROM marie", b"TO martin",
    b'SUBJECT "compte rendu"', b"BODY tension", b"TEXT pdf", b"HEADER Message-ID cr.4182",
    b"LARGER 100", b"SMALLER 5", b"SINCE 1-Jan-2026", b"BEFORE 31-Dec-2026",
    b"SENTON 7-Dec-2026", b"UID 1:5", b"2:*", b"MODSEQ 10", b"NEW", b"OLD", b"ANSWERED"])


@FAST
@given(st.lists(st.tuples(st.sampled_from([b"", b"NOT ", b"OR "]), _search_key),
                min_size=1, max_size=6))
def test_any_search_program_runs_on_the_sample(keys: list[tuple[bytes, bytes]]) -> None:
    text = b" ".join(prefix + key + (b" ALL" if prefix == b"OR " else b"")
                     for prefix, key in keys)
    imap_command.check(b"s UID SEARCH " + text)


@FAST
@given(st.from_regex(r"\A(?:[1-9][0-9]{0,9}|\*)(?::(?:[1-9][0-9]{0,9}|\*))?"
                     r"(?:,(?:[1-9][0-9]{0,9}|\*)(?::(?:[1-9][0-9]{0,9}|\*))?){0,4}\Z"))
def test_sequence_sets_read_back(text: str) -> None:
    try:
        parsed = parse_sequence_set(text)
    except ValueError:
        assert any(int(n) > 2**32 - 1 for n in text.replace(":", ",").split(",") if n != "*")
        return
    assert parse_sequence_set(str(parsed)) == parsed
    imap_command.check(b"f FETCH " + text.encode() + b" (FLAGS)")


# ------------------------------------------------------------ MIME

_boundary = st.from_regex(r"\A[A-Za-z0-9'()+_,./:=?-]{1,20}\Z")


@st.composite
def entity(draw: st.DrawFn, depth: int = 0) -> tuple[bytes, int]:
    """(a MIME entity, its number of leaves), well formed."""
    if depth >= 4 or draw(st.booleans()):
        kind = draw(st.sampled_from([
            b"text/plain; charset=utf-8", b"text/html", b"application/pdf",
            b"message/rfc822"]))
        body = draw(st.sampled_from([b"hello", b"caf=C3=A9", b"aGVsbG8=", b"", b"line\r\n"]))
        if kind == b"message/rfc822":
            inner, leaves = draw(entity(depth + 1))
            return b"Content-Type: message/rfc822\r\n\r\n" + inner, 1 + leaves
        return b"Content-Type: " + kind + b"\r\n\r\n" + body, 1
    boundary = draw(_boundary).encode() + b"=_%d" % depth  # none inside another (RFC 2046)
    parts = draw(st.lists(entity(depth + 1), min_size=1, max_size=4))
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part, _ in parts)
    return (b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\npreamble\r\n'
            + body + b"--" + boundary + b"--\r\n", sum(n for _, n in parts))


def _leaves(node: Entity) -> int:
    if node.kind == MULTIPART:
        return sum(_leaves(child) for child in node.children)
    if node.kind == LEAF:
        return 1
    return 1 + _leaves(node.message)


@FAST
@given(entity())
def test_well_formed_trees_are_read_as_written(case: tuple[bytes, int]) -> None:
    raw, leaves = case
    raw = b"From: a@b.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n" + raw
    mime.check(raw)
    assert _leaves(Entity(raw, 0, len(raw))) == leaves


@FAST
@given(entity(), st.data())
def test_broken_trees_meet_the_walker_oracles(case: tuple[bytes, int], data: st.DataObject
                                              ) -> None:
    raw = case[0]
    cut = data.draw(st.integers(0, len(raw)))
    mutation = data.draw(st.sampled_from([
        lambda r: r[:cut], lambda r: r[:cut] + r[cut + 1:], lambda r: r.replace(b"\r\n", b"\n"),
        lambda r: r.replace(b"--\r\n", b"\r\n"), lambda r: r[:cut] + b"\r\n--" + r[cut:],
        lambda r: r.replace(b"boundary=", b"boundary*0="), lambda r: r[:cut] + b"\xff" + r[cut:]]))
    mime.check(mutation(raw))


# ------------------------------------------------------------ addresses

_address_text = st.lists(st.sampled_from(
    [*list('<>@,;:."()[]\\ \tab.-_é=?'), "=?utf-8?q?", "mssante.fr", "\x00", "\r\n"]),
    max_size=40).map("".join)


@FAST
@given(_address_text)
def test_any_address_text_meets_the_parser_oracles(text: str) -> None:
    address.check(text.encode("utf-8", "surrogatepass"))
