"""The command parser, driven with the octets clients send (RFC 9051 §2.2.1, §9)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.imap import parser, wire
from mssante.imap.parser import (
    MAX_DEPTH,
    MAX_LINE,
    Command,
    ParseError,
    parse_command,
    peek_tag,
    split_literal,
)
from mssante.imap.tokens import Atom, String, Token


def args(raw: bytes) -> list[Token]:
    return parse_command(raw).args


def error(raw: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_command(raw)
    return info.value


# ------------------------------------------------------------ tag and command name


def test_typical_uid_fetch() -> None:
    assert parse_command(b"a12 UID FETCH 1:* (FLAGS)") == Command(
        "a12", "UID FETCH", [Atom("1:*"), [Atom("FLAGS")]])


def test_uid_prefix_is_joined_to_the_next_word_in_upper_case() -> None:
    command = parse_command(b"a UID fetch 1:* FLAGS")
    assert (command.name, command.args) == ("UID FETCH", [Atom("1:*"), Atom("FLAGS")])
    assert parse_command(b"a uid  Store 4 +FLAGS (\\Seen)").name == "UID STORE"


def test_command_name_is_upper_case_and_args_may_be_absent() -> None:
    assert parse_command(b"A001 noop") == Command("A001", "NOOP", [])
    assert parse_command(b"x.1 capability ") == Command("x.1", "CAPABILITY", [])


def test_tag_may_hold_any_astring_char_but_plus() -> None:
    assert parse_command(b"a]b.c-1! NOOP").tag == "a]b.c-1!"
    exc = error(b"a+b NOOP")
    assert exc.tag is None  # "a" is not the client's tag
    assert exc.message == "unexpected '+' in the tag"


@pytest.mark.parametrize("raw", [b"", b"+ NOOP", b"* NOOP", b" a NOOP", b"(a) NOOP",
                                 b'"a" NOOP', b"\xc3\xa9 NOOP", b"\r\n", b"{3}\r\nabc NOOP"])
def test_missing_tag_gives_an_error_without_tag(raw: bytes) -> None:
    exc = error(raw)
    assert exc.tag is None
    assert exc.response().startswith(b"* BAD ")


@pytest.mark.parametrize("raw", [b"a1", b"a1 ", b"a1   "])
def test_missing_command_name_keeps_the_tag(raw: bytes) -> None:
    exc = error(raw)
    assert exc.tag == "a1"
    assert "missing command name" in exc.message
    assert exc.response() == b"a1 BAD missing command name\r\n"


@pytest.mark.parametrize("raw", [b"a1 UID", b"a1 UID ", b"a1 UID (FETCH)"])
def test_uid_without_command(raw: bytes) -> None:
    assert error(raw).tag == "a1"


@pytest.mark.parametrize("raw", [b"a1 FETCH\xc3\xa9 1", b"a1 F\x00 1", b"a1 (FETCH) 1",
                                 b'a1 "FETCH" 1', b"a1 FE]TCH 1", b"a1 FETCH(1)"])
def test_bad_command_names(raw: bytes) -> None:
    assert error(raw).tag == "a1"


def test_peek_tag() -> None:
    assert peek_tag(b"a1 APPEND INBOX {999999999}") == "a1"
    assert peek_tag(b"a1") == "a1"
    assert peek_tag(b"+ x") is None
    assert peek_tag(b"a(1 X") is None


# ------------------------------------------------------------ atoms


def test_atoms_flags_wildcards_and_nil() -> None:
    assert args(b'a STORE 1:3,5 +FLAGS.SILENT (\\Seen \\Answered $Label1 NIL)') == [
        Atom("1:3,5"), Atom("+FLAGS.SILENT"),
        [Atom("\\Seen"), Atom("\\Answered"), Atom("$Label1"), Atom("NIL")]]
    assert args(b'a LIST "" INBOX/%') == [String(b""), Atom("INBOX/%")]
    assert args(b"a LIST ~/ *") == [Atom("~/"), Atom("*")]
    assert args(b"a LOGIN user]x pass") == [Atom("user]x"), Atom("pass")]


def test_spaces_runs_and_trailing_are_accepted() -> None:
    assert args(b"a FETCH  1   ( FLAGS  UID )  ") == [Atom("1"), [Atom("FLAGS"), Atom("UID")]]


@pytest.mark.parametrize("raw,message", [
    (b"a LOGIN us\xc3\xa9r pass", "8-bit"),
    (b"a LOGIN \xc3\xa9 pass", "8-bit"),
    (b"a SELECT INBOX\x7f", "control"),
    (b"a SELECT IN\x00BOX", "control"),
    (b"a SELECT INBOX\rX", "CR or LF"),
    (b"a SELECT INBOX\nX", "CR or LF"),
    (b"a SELECT IN\\BOX", "'\\\\'"),
    (b"a STORE 1 FLAGS \\", "atom"),
    (b"a STORE 1 FLAGS (\\ )", "atom"),
])
def test_bad_atoms(raw: bytes, message: str) -> None:
    exc = error(raw)
    assert exc.tag == "a"
    assert message in exc.message


@pytest.mark.parametrize("raw", [b'a X abc"def"', b"a X abc(d)", b'a X "a"b', b'a X "a"(b)',
                                 b"a X (a)(b)", b"a X (a)b", b"a X {1}\r\nab",
                                 b'a X "a""b"', b"a X abc{1}\r\nx"])
def test_tokens_must_be_separated(raw: bytes) -> None:
    assert error(raw).tag == "a"


# ------------------------------------------------------------ quoted strings


def test_quoted_strings_and_their_escapes() -> None:
    assert args(b'a LOGIN "alice" "p\\"a\\\\ss w"') == [String(b"alice"),
                                                       String(b'p"a\\ss w')]
    assert args(b'a X "" "()" "{5}" "*%]["') == [String(b""), String(b"()"), String(b"{5}"),
                                                String(b"*%][")]


def test_quoted_strings_may_hold_utf8() -> None:
    assert args('a SELECT "Entwürfe"'.encode()) == [String("Entwürfe".encode())]


@pytest.mark.parametrize("raw,message", [
    (b'a LOGIN "alice', "missing closing quote"),
    (b'a LOGIN "al\\ice"', "backslash"),
    (b'a LOGIN "alice\\', "backslash"),
    (b'a LOGIN "al\r\nice"', "CR or LF"),
    (b'a LOGIN "al\nice"', "CR or LF"),
    (b'a LOGIN "al\x00ice"', "NUL"),
])
def test_bad_quoting(raw: bytes, message: str) -> None:
    exc = error(raw)
    assert exc.tag == "a"
    assert message in exc.message


# ------------------------------------------------------------ literals


def test_synchronising_non_synchronising_and_binary_literals() -> None:
    assert args(b"a1 LOGIN {5}\r\nalice {6+}\r\nsecret") == [
        String(b"alice", literal=True), String(b"secret", literal=True)]
    assert args(b"a APPEND INBOX (\\Seen) ~{3}\r\n\x00\r\n") == [
        Atom("INBOX"), [Atom("\\Seen")], String(b"\x00\r\n", literal=True, binary=True)]
    assert args(b"a APPEND INBOX ~{2+}\r\n\xff\x00") == [
        Atom("INBOX"), String(b"\xff\x00", literal=True, binary=True)]


def test_literals_inside_lists_and_followed_by_more() -> None:
    raw = b"a X ({3}\r\n(a) ({0}\r\n {2+}\r\n\r\n) ~{1}\r\n)) tail"
    assert args(raw) == [[String(b"(a)", literal=True),
                          [String(b"", literal=True), String(b"\r\n", literal=True)],
                          String(b")", literal=True, binary=True)],
                         Atom("tail")]


def test_a_literal_may_hold_what_looks_like_a_command() -> None:
    body = b"\r\na2 LOGOUT\r\n{5}\r\n"
    assert args(b"a SEARCH TEXT {%d}\r\n" % len(body) + body) == [
        Atom("TEXT"), String(body, literal=True)]


@pytest.mark.parametrize("raw,message", [
    (b"a X {5}\r\nabc", "shorter"),
    (b"a X {5}", "bad literal"),
    (b"a X {5} abc", "bad literal"),
    (b"a X {5}\rabcde", "bad literal"),
    (b"a X {}\r\n", "bad literal"),
    (b"a X {-1}\r\n", "bad literal"),
    (b"a X {5-}\r\nabcde", "bad literal"),
    (b"a X {12345678901}\r\n", "bad literal"),
    (b"a X ~{5\r\nabcde", "bad literal"),
])
def test_bad_literals(raw: bytes, message: str) -> None:
    exc = error(raw)
    assert exc.tag == "a"
    assert message in exc.message


@pytest.mark.parametrize("line,found", [
    (b"a1 LOGIN {5}", (5, False, False)),
    (b"a1 LOGIN {5+}", (5, True, False)),
    (b"a1 APPEND INBOX ~{12}", (12, False, True)),
    (b"a1 APPEND INBOX ~{12+}", (12, True, True)),
    (b"a1 APPEND INBOX (\\Seen) {0}", (0, False, False)),
    (b"a1 APPEND INBOX {99999999999999999999}", (99999999999999999999, False, False)),
    (b"{5}", (5, False, False)),
    (b"a1 LOGIN {5} x", None),
    (b"a1 LOGIN {}", None),
    (b"a1 LOGIN {5-}", None),
    (b"a1 LOGIN {a}", None),
    (b"a1 LOGIN 5}", None),
    (b"a1 LOGIN {+}", None),
    (b"a1 LOGIN {999999999999999999999}", None),
    (b"a1 LOGIN", None),
    (b"", None),
])
def test_split_literal(line: bytes, found: tuple[int, bool, bool] | None) -> None:
    assert split_literal(line) == found


# ------------------------------------------------------------ lists


def test_nested_and_empty_lists() -> None:
    assert args(b"a X (a (b (c ())) d) ()") == [
        [Atom("a"), [Atom("b"), [Atom("c"), []]], Atom("d")], []]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    raw = b"a X " + b"(" * MAX_DEPTH + b"x" + b")" * MAX_DEPTH
    value: Token = args(raw)[0]
    for _ in range(MAX_DEPTH - 1):
        assert isinstance(value, list)
        value = value[0]
    assert value == [Atom("x")]


def test_too_deep_nesting_is_refused() -> None:
    exc = error(b"a X " + b"(" * (MAX_DEPTH + 1) + b")" * (MAX_DEPTH + 1))
    assert exc.tag == "a"
    assert "nested" in exc.message


@pytest.mark.parametrize("raw", [b"a X (", b"a X (a (b)", b"a X )", b"a X (a))", b"a X a)",
                                 b"a X ((a) (b)", b'a X ("a)'])
def test_unbalanced_parentheses(raw: bytes) -> None:
    exc = error(raw)
    assert exc.tag == "a"


# ------------------------------------------------------------ sections in atoms


def test_bracketed_fetch_atoms_are_one_atom() -> None:
    raw = (b"a FETCH 1:5 (UID BODY.PEEK[HEADER.FIELDS (From Subject)]<0.2048> "
           b"BODY[] BINARY.PEEK[1.2]<0.100> BODY[1.MIME] BINARY.SIZE[3])")
    assert args(raw)[1] == [
        Atom("UID"), Atom("BODY.PEEK[HEADER.FIELDS (From Subject)]<0.2048>"), Atom("BODY[]"),
        Atom("BINARY.PEEK[1.2]<0.100>"), Atom("BODY[1.MIME]"), Atom("BINARY.SIZE[3]")]


def test_spacing_inside_brackets_is_normalised() -> None:
    raw = b"a FETCH 1 BODY[HEADER.FIELDS.NOT   (  From   To  (x) )]<0.5>"
    assert args(raw)[1] == Atom("BODY[HEADER.FIELDS.NOT (From To (x))]<0.5>")
    assert args(b"a FETCH 1 BODY[ HEADER ]")[1] == Atom("BODY[HEADER]")
    assert args(b"a FETCH 1 BODY[HEADER.FIELDS(From)]")[1] == Atom("BODY[HEADER.FIELDS(From)]")


def test_quoted_header_names_inside_brackets() -> None:
    raw = b'a FETCH 1 BODY.PEEK[HEADER.FIELDS ("From"  "X-A b" "q\\"" Date)]'
    assert args(raw)[1] == Atom('BODY.PEEK[HEADER.FIELDS (From "X-A b" "q\\"" Date)]')
    raw = b'a FETCH 1 BODY.PEEK[HEADER.FIELDS ( "From"("To") )]'
    assert args(raw)[1] == Atom("BODY.PEEK[HEADER.FIELDS (From(To))]")


def test_a_bracket_without_its_end_is_an_ordinary_character() -> None:
    assert args(b"a LOGIN pa[ss word") == [Atom("pa[ss"), Atom("word")]
    assert args(b"a SELECT Foo[1]") == [Atom("Foo[1]")]
    assert args(b"a SELECT [a[b]") == [Atom("[a[b]")]


@pytest.mark.parametrize("raw", [
    b"a FETCH 1 BODY[HEADER.FIELDS (From]",
    b"a FETCH 1 BODY[HEADER.FIELDS From)]",
    b'a FETCH 1 BODY[HEADER.FIELDS ("From)]',
    b'a FETCH 1 BODY[HEADER.FIELDS ("Fr\\om")]',
    b"a FETCH 1 BODY[HEADER.FIELDS ({4}\r\nFrom)]",
    b"a FETCH 1 BODY[HEADER.FIELDS (" + b"(" * (MAX_DEPTH + 1) + b")" * (MAX_DEPTH + 1) + b"]",
    b"a FETCH 1 BODY[HEADER]x(",
])
def test_bad_sections(raw: bytes) -> None:
    assert error(raw).tag == "a"


# ------------------------------------------------------------ limits


def test_a_line_at_the_limit_is_accepted_and_one_more_octet_refused() -> None:
    head = b"a X "
    assert args(head + b"x" * (MAX_LINE - len(head))) == [Atom("x" * (MAX_LINE - len(head)))]
    exc = error(head + b"x" * (MAX_LINE - len(head) + 1))
    assert exc.tag == "a"
    assert "line longer" in exc.message


def test_every_line_of_a_command_is_limited_but_not_its_literals() -> None:
    big = b"y" * (MAX_LINE * 2)
    assert args(b"a X {%d}\r\n" % len(big) + big + b" z") == [String(big, literal=True),
                                                           Atom("z")]
    exc = error(b"a X {1}\r\nq " + b"x" * MAX_LINE)
    assert "line longer" in exc.message
    exc = error(b"a X {1}\r\nq " + b"x" * MAX_LINE + b" {1}\r\nq")
    assert "line longer" in exc.message
    exc = error(b"a X " + b"x" * MAX_LINE + b" {1}\r\nq")
    assert "line longer" in exc.message


def test_too_many_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "MAX_ARGS", 5)
    assert len(args(b"a X 1 2 3 4 5")) == 5
    assert "more than 5 arguments" in error(b"a X 1 2 3 4 5 6").message
    assert "more than 5" in error(b"a X (1 2 (3)) 4").message
    assert "more than 5" in error(b"a X ((((((").message


def test_the_real_argument_limit_is_reachable_only_through_literals() -> None:
    raw = b"a X" + b" {0}\r\n" * (parser.MAX_ARGS + 1)
    assert "arguments" in error(raw).message


# ------------------------------------------------------------ speed


def test_a_mail_client_fetch_line() -> None:
    fetch = (b"a3 UID FETCH 1:500 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc "
             b"Bcc Subject Date Message-ID Priority X-Priority References Newsgroups "
             b"In-Reply-To Content-Type Reply-To)])")
    command = parse_command(fetch)
    assert command.name == "UID FETCH" and command.args[0] == Atom("1:500")
    items = command.args[1]
    assert isinstance(items, list) and items[:3] == [Atom("UID"), Atom("RFC822.SIZE"),
                                                     Atom("FLAGS")]
    assert items[3] == Atom("BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID "
                            "Priority X-Priority References Newsgroups In-Reply-To "
                            "Content-Type Reply-To)]")


# ------------------------------------------------------------ properties

TAG_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '(){%*"\\+')
ATOM_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '(){"\\[')
NAME_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '(){%*"\\[]')

tags = st.text(TAG_CHARS, min_size=1, max_size=8)
names = st.text(NAME_CHARS, min_size=1, max_size=8).filter(lambda n: n.upper() != "UID")
atoms = st.builds(lambda flag, text: Atom(flag + text), st.sampled_from(["", "\\"]),
                  st.text(ATOM_CHARS, min_size=1, max_size=12))
section_names = st.lists(st.text(NAME_CHARS, min_size=1, max_size=6), min_size=1, max_size=4)
sections = st.builds(
    lambda peek, fields, partial: Atom(f"BODY{peek}[HEADER.FIELDS ({' '.join(fields)})]{partial}"),
    st.sampled_from(["", ".PEEK"]), section_names, st.sampled_from(["", "<0.2048>", "<5>"]))
quoted_strings = st.builds(String, st.binary(max_size=30).filter(
    lambda b: not any(c in b for c in b"\r\n\x00")))
literal_forms = st.sampled_from([(b"{%d}", False), (b"{%d+}", False), (b"~{%d}", True),
                                 (b"~{%d+}", True)])


@st.composite
def literals(draw: st.DrawFn) -> tuple[String, bytes]:
    value = draw(st.binary(max_size=30))
    form, binary = draw(literal_forms)
    return String(value, literal=True, binary=binary), form % len(value) + b"\r\n" + value


def render(token: Token | tuple[String, bytes]) -> bytes:
    if isinstance(token, tuple):
        return token[1]
    if isinstance(token, Atom):
        return token.value.encode()
    if isinstance(token, String):
        return b'"' + token.value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"(" + b" ".join(render(t) for t in token) + b")"


def expected(token: object) -> Token:
    if isinstance(token, tuple):
        string: String = token[0]
        return string
    if isinstance(token, list):
        return [expected(t) for t in token]
    assert isinstance(token, Atom | String)
    return token


wire_tokens = st.recursive(atoms | sections | quoted_strings | literals(),
                           lambda children: st.lists(children, max_size=4), max_leaves=16)


@settings(max_examples=300)
@given(tags, st.booleans(), names, st.lists(wire_tokens, max_size=6))
def test_round_trip_of_generated_commands(tag: str, uid: bool, name: str,
                                          tokens: list[object]) -> None:
    raw = (tag.encode() + (b" UID " if uid else b" ") + name.encode() +
           b"".join(b" " + render(t) for t in tokens))  # type: ignore[arg-type]
    command = parse_command(raw)
    assert command.tag == tag
    assert command.name == ("UID " if uid else "") + name.upper()
    assert command.args == [expected(t) for t in tokens]


plain_tokens = st.recursive(atoms | sections | st.builds(String, st.binary(max_size=30)),
                            lambda children: st.lists(children, max_size=4), max_leaves=16)


def values(token: Token) -> object:
    if isinstance(token, list):
        return [values(t) for t in token]
    return token.value


@given(st.lists(plain_tokens, max_size=6))
def test_round_trip_through_wire_token(tokens: list[Token]) -> None:
    """wire.token picks quoted or literal; the values come back either way."""
    raw = b"t X" + b"".join(b" " + wire.token(t) for t in tokens)
    assert [values(t) for t in parse_command(raw).args] == [values(t) for t in tokens]


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_octets_only_ever_raise_parse_error(raw: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_command(raw)
    split_literal(raw)
    peek_tag(raw)


pieces = st.sampled_from([b"a", b"1:*", b" ", b"  ", b"(", b")", b"[", b"]", b'"', b"\\",
                          b"{", b"}", b"{2}\r\n", b"{1+}\r\n", b"~{0}\r\n", b"{99}\r\n", b"~",
                          b"\r\n", b"\r", b"\x00", b"\xff", b"UID", b"BODY[", b"<0.5>", b"NIL"])


@settings(max_examples=500)
@given(st.lists(pieces, max_size=30))
def test_grammar_shaped_garbage_only_ever_raises_parse_error(parts: list[bytes]) -> None:
    try:
        parse_command(b"a FETCH " + b"".join(parts))
    except ParseError as exc:
        assert exc.tag == "a"
