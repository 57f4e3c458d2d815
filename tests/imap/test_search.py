"""SEARCH keys parsed from tokens, evaluated on sample messages, and the answers."""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.imap import search
from mssante.imap.search import (
    SearchError,
    SearchProgram,
    esearch_response,
    parse_search,
    saved_result,
    search_response,
)
from mssante.imap.tokens import Atom, String, Token
from tests.imap.test_mime import (
    ALTERNATIVE,
    FORWARDED,
    MIXED_PDF,
    QP_FRENCH,
    XDM_MESSAGE,
    crlf,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)))


@dataclass(frozen=True, slots=True)
class Stored:
    seq: int
    uid: int
    flags: str
    modseq: int
    internaldate: float
    raw: bytes | None

    @property
    def size(self) -> int:
        return len(self.raw or b"")


MIDNIGHT_DATE = crlf("""\
Date: Tue, 3 Mar 2026 00:30:00 +0100
From: a@b
Subject: sent just after midnight, Paris time

x
""")
NO_DATE = crlf("From: a@b\nSubject: no date\n\nx\n")

MAILBOX = [
    Stored(1, 10, "\\Seen \\Answered", 100, utc(2026, 3, 3, 9, 15), MIXED_PDF),
    Stored(2, 11, "\\Seen $Label1", 101, utc(2026, 3, 4, 8, 0), ALTERNATIVE),
    Stored(3, 15, "", 150, utc(2026, 3, 5, 13, 0), FORWARDED),
    Stored(4, 20, "\\Flagged \\Recent", 200, utc(2026, 3, 6, 23, 59), XDM_MESSAGE),
    Stored(5, 21, "\\Deleted \\Seen \\Draft", 90, utc(2026, 3, 7, 6, 5), QP_FRENCH),
    Stored(6, 30, "\\Recent \\Seen", 300, utc(2026, 3, 2, 23, 30), MIDNIGHT_DATE),
    Stored(7, 31, "$label1", 301, utc(2026, 2, 1), NO_DATE),
]


def resolver(text: str, uid_mode: bool) -> Iterable[int]:
    """A tiny stand-in for sequence.py: numbers, ranges, * and $ (saved: UIDs 11 and 20)."""
    if text == "$":
        return [11, 20]
    uids = [m.uid for m in MAILBOX]
    out = set()
    for piece in text.split(","):
        low, _, high = piece.partition(":")
        top = uids[-1] if uid_mode else len(uids)
        a = top if low == "*" else int(low)
        b = a if not high else (top if high == "*" else int(high))
        a, b = min(a, b), max(a, b)
        if uid_mode:
            out |= {u for u in uids if a <= u <= b}
        else:
            out |= {uids[i - 1] for i in range(a, b + 1) if 1 <= i <= len(uids)}
    return out


def tokens_of(text: str) -> list[Token]:
    """A test-only tokenizer: atoms, "quoted" strings and (lists)."""
    out: list[Token] = []
    stack: list[list[Token]] = [out]
    position = 0
    while position < len(text):
        char = text[position]
        if char == " ":
            position += 1
        elif char == "(":
            inner: list[Token] = []
            stack[-1].append(inner)
            stack.append(inner)
            position += 1
        elif char == ")":
            stack.pop()
            position += 1
        elif char == '"':
            end = text.index('"', position + 1)
            stack[-1].append(String(text[position + 1:end].encode()))
            position = end + 1
        else:
            end = position
            while end < len(text) and text[end] not in ' ()"':
                end += 1
            stack[-1].append(Atom(text[position:end]))
            position = end
    return out


def program(text: str) -> SearchProgram:
    prog = parse_search(tokens_of(text))
    prog.resolve(resolver)
    return prog


def run(text: str) -> list[int]:
    prog = program(text)
    return [m.seq for m in MAILBOX if prog.matches(m)]


# --- keys on the sample mailbox ---------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ("ALL", [1, 2, 3, 4, 5, 6, 7]),
    ("SEEN", [1, 2, 5, 6]),
    ("UNSEEN", [3, 4, 7]),
    ("ANSWERED", [1]),
    ("UNANSWERED", [2, 3, 4, 5, 6, 7]),
    ("DELETED", [5]),
    ("UNDELETED", [1, 2, 3, 4, 6, 7]),
    ("DRAFT", [5]),
    ("UNDRAFT", [1, 2, 3, 4, 6, 7]),
    ("FLAGGED", [4]),
    ("UNFLAGGED", [1, 2, 3, 5, 6, 7]),
    ("RECENT", [4, 6]),
    ("NEW", [4]),
    ("OLD", [1, 2, 3, 5, 7]),
    ("KEYWORD $Label1", [2, 7]),  # keywords compare case-insensitively
    ("UNKEYWORD $label1", [1, 3, 4, 5, 6]),
    ("seen unanswered", [2, 5, 6]),
    ("NOT SEEN", [3, 4, 7]),
    ("OR FLAGGED ANSWERED", [1, 4]),
    ("OR (SEEN DELETED) FLAGGED", [4, 5]),
    ("NOT (SEEN OR DRAFT ANSWERED)", [2, 3, 4, 6, 7]),
])
def test_flag_keys(query: str, expected: list[int]) -> None:
    assert run(query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ('SUBJECT "lévy"', [1]),  # RFC 2047 encoded subject, decoded and case-folded
    ('SUBJECT "RÉSULTATS"', [4, 5]),  # ISO-8859-1 B word; two adjacent utf-8 words
    ('SUBJECT "résultats disponibles"', [5]),  # the space between encoded words goes
    ("SUBJECT rendez-vous", [2, 3]),
    ('FROM "andré martin"', [1]),
    ("FROM hopital-nord", [1, 5]),
    ('TO "claire.dupont"', [1, 2, 4, 5]),
    ('CC "undisclosed"', [1]),
    ("BCC anything", []),
    ('HEADER Message-ID "20260303101500"', [1]),
    ('HEADER In-Reply-To ""', [1]),  # an empty string: messages that have the field
    ('HEADER X-Absent ""', []),
    ('HEADER "Content-Description" transfere', []),  # a part header is not the message's
])
def test_header_keys(query: str, expected: list[int]) -> None:
    assert run(query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ('BODY "chère consoeur"', [1]),  # quoted-printable UTF-8 decoded
    ('BODY "M. Lévy, sorti"', [1]),  # across a soft line break
    ('BODY "pièce jointe"', [4]),  # quoted-printable ISO-8859-1
    ('BODY "l\'équipe"', [5]),
    ("BODY JVBERi0", []),  # the base64 of the PDF is not text
    ("BODY METADATA", []),  # nor is the XDM zip
    ('BODY "<b>12 mars</b>"', [2, 3]),  # HTML part; the forwarded copy too
    ("BODY hospitalisation", [1]),
    ('BODY "compte rendu d\'hospitalisation"', [1]),
    ('TEXT "compte rendu d\'hospitalisation – m. lévy"', [1]),  # found in the Subject
    ("TEXT transfere", [3]),  # a part header
    ("TEXT ci-dessous", [3]),
    ("BODY Subject", []),
])
def test_text_keys(query: str, expected: list[int]) -> None:
    assert run(query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("ON 3-Mar-2026", [1]),
    ('ON "4-Mar-2026"', [2]),
    ("ON 6-mar-2026", [4]),  # 23:59 UTC is still the 6th
    ("BEFORE 4-Mar-2026", [1, 6, 7]),
    ("SINCE 5-Mar-2026", [3, 4, 5]),
    ("SINCE 2-Mar-2026 BEFORE 3-Mar-2026", [6]),
    ("SENTON 3-Mar-2026", [1, 6]),  # 00:30 +0100 is the 3rd in the Date header's own zone
    ("SENTBEFORE 3-Mar-2026", [7]),  # no Date: INTERNALDATE (1 Feb)
    ("SENTSINCE 6-Mar-2026", [4, 5]),
    ("SENTON 1-Feb-2026", [7]),
])
def test_date_keys(query: str, expected: list[int]) -> None:
    assert run(query) == expected


def test_size_keys() -> None:
    sizes = {m.seq: m.size for m in MAILBOX}
    limit = sizes[2]
    assert run(f"LARGER {limit}") == [s for s, v in sizes.items() if v > limit]
    assert run(f"SMALLER {limit}") == [s for s, v in sizes.items() if v < limit]
    assert run(f"NOT LARGER {limit} NOT SMALLER {limit}") == [2]


@pytest.mark.parametrize(("query", "expected"), [
    ("1:3", [1, 2, 3]),
    ("2,4:*", [2, 4, 5, 6, 7]),
    ("UID 11:20", [2, 3, 4]),
    ("UID 30:*", [6, 7]),
    ("$", [2, 4]),  # RFC 5182: the saved result
    ("UID $", [2, 4]),
    ("1:* SEEN", [1, 2, 5, 6]),
    ("OR 1 UID 31", [1, 7]),
    ("NOT 2:6", [1, 7]),
])
def test_sequence_sets(query: str, expected: list[int]) -> None:
    assert run(query) == expected


def test_resolver_receives_each_set_once_with_its_mode() -> None:
    asked: list[tuple[str, bool]] = []

    def recording(text: str, uid_mode: bool) -> Iterable[int]:
        asked.append((text, uid_mode))
        return resolver(text, uid_mode)

    prog = parse_search(tokens_of("1:2 (UID 10:11 OR 3 $)"))
    assert [(k.text, k.uid_mode) for k in prog.sets] == [
        ("1:2", False), ("10:11", True), ("3", False), ("$", False)]
    prog.resolve(recording)
    assert asked == [("1:2", False), ("10:11", True), ("3", False), ("$", False)]


def test_matches_needs_resolved_sets() -> None:
    prog = parse_search(tokens_of("1:3"))
    with pytest.raises(RuntimeError, match="resolve"):
        prog.matches(MAILBOX[0])
    assert parse_search(tokens_of("SEEN")).matches(MAILBOX[0])  # no set: nothing to resolve


def test_modseq_key() -> None:
    assert run("MODSEQ 150") == [3, 4, 6, 7]
    assert run('MODSEQ "/flags/\\\\draft" all 200') == [4, 6, 7]
    assert program("MODSEQ 1").has_modseq and program("NOT (MODSEQ 1)").has_modseq
    assert not program("SEEN").has_modseq


def test_raw_is_needed_only_for_headers_and_bodies() -> None:
    prog = program("SUBJECT x")
    with pytest.raises(ValueError, match="octets"):
        prog.matches(Stored(1, 1, "", 1, 0.0, None))
    assert program("SEEN").matches(Stored(1, 1, "\\Seen", 1, 0.0, None))


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "needs"), [
    ("ALL", set()),
    ("SEEN", {"flags"}),
    ("1:3 UID 4", set()),
    ("LARGER 10", {"size"}),
    ("SINCE 1-Jan-2026", {"internaldate"}),
    ("SENTSINCE 1-Jan-2026", {"headers", "internaldate"}),
    ("OR FROM a SEEN", {"headers", "flags"}),
    ("NOT BODY x", {"body", "headers"}),
    ("TEXT x", {"body", "headers"}),
    ("MODSEQ 5", {"modseq"}),
    ("HEADER X-Foo bar", {"headers"}),
])
def test_needs(query: str, needs: set[str]) -> None:
    assert parse_search(tokens_of(query)).needs == needs


@pytest.mark.parametrize(("query", "fields"), [
    ("SEEN", set()),
    ("SUBJECT x FROM y", {"subject", "from"}),
    ("OR SENTON 1-Jan-2026 (NOT HEADER Message-ID a)", {"date", "message-id"}),
    ("SUBJECT x BODY y", None),
    ("NOT TEXT y", None),
])
def test_header_fields_read(query: str, fields: set[str] | None) -> None:
    expected = None if fields is None else frozenset(fields)
    assert parse_search(tokens_of(query)).header_fields == expected


def test_header_subset_is_enough_for_header_keys() -> None:
    prog = program('SUBJECT "lévy" FROM andré')
    assert prog.header_fields == frozenset({"subject", "from"})
    subset = (b"Subject: =?utf-8?q?Compte_rendu_d=27hospitalisation_=E2=80=93_M=2E_L=C3=A9vy?="
              b"\r\nFrom: =?utf-8?q?Dr_Andr=C3=A9_Martin?= <dr.martin@h.fr>\r\n\r\n")
    assert prog.matches(Stored(1, 10, "", 1, 0.0, subset))


@pytest.mark.parametrize(("query", "returns", "charset"), [
    ("ALL", None, "UTF-8"),
    ("RETURN (MIN MAX) ALL", {"MIN", "MAX"}, "UTF-8"),
    ("RETURN () ALL", {"ALL"}, "UTF-8"),  # RFC 4731 §3.1
    ("RETURN (count save) SEEN", {"COUNT", "SAVE"}, "UTF-8"),
    ("CHARSET UTF-8 SUBJECT x", None, "UTF-8"),
    ('CHARSET "us-ascii" SUBJECT x', None, "US-ASCII"),
    ("RETURN (ALL) CHARSET UTF-8 SUBJECT x", {"ALL"}, "UTF-8"),
])
def test_return_options_and_charset(query: str, returns: set[str] | None, charset: str) -> None:
    prog = parse_search(tokens_of(query))
    assert prog.returns == (None if returns is None else frozenset(returns))
    assert prog.charset == charset


def test_unknown_charset_is_no_badcharset() -> None:
    with pytest.raises(SearchError) as caught:
        parse_search(tokens_of("CHARSET ISO-8859-1 SUBJECT x"))
    assert caught.value.status == "NO"
    assert caught.value.line("a1") == (
        b"a1 NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset ISO-8859-1\r\n")


def test_charset_can_be_refused() -> None:
    with pytest.raises(SearchError) as caught:
        parse_search(tokens_of("CHARSET UTF-8 ALL"), charset_allowed=False)
    assert caught.value.status == "BAD"


def test_literal_search_string_in_utf8() -> None:
    prog = parse_search([Atom("SUBJECT"), String("LÉVY".encode(), literal=True)])
    assert [m.seq for m in MAILBOX if prog.matches(m)] == [1]


@pytest.mark.parametrize("query", [
    "", "BOGUS", "SUBJECT", "HEADER Subject", "BEFORE", "BEFORE 2026-03-03", "ON 31-Feb-2026",
    "ON 1-Foo-2026", "LARGER x", "LARGER -1", "LARGER 99999999999999999999", "NOT", "OR SEEN",
    "()", "UID", "UID abc", "UID (1)", "RETURN ALL", "RETURN (BOGUS) ALL", "RETURN (MIN)",
    "CHARSET", 'MODSEQ "/flags/\\\\seen" bogus 5', "MODSEQ", '"SEEN"', "KEYWORD",
    "SUBJECT (x)",
])
def test_bad_searches(query: str) -> None:
    with pytest.raises(SearchError) as caught:
        parse_search(tokens_of(query))
    assert caught.value.status == "BAD"
    assert caught.value.line("t").startswith(b"t BAD ")


# --- answers -----------------------------------------------------------------------------------


def test_plain_search_response() -> None:
    assert search_response([2, 5, 7]) == b"* SEARCH 2 5 7\r\n"
    assert search_response([]) == b"* SEARCH\r\n"
    assert search_response([2, 5], modseq=917162500) == b"* SEARCH 2 5 (MODSEQ 917162500)\r\n"
    assert search_response([], modseq=5) == b"* SEARCH\r\n"  # RFC 7162 §3.1.5


def test_esearch_responses() -> None:
    every = frozenset({"MIN", "MAX", "COUNT", "ALL"})
    assert esearch_response("a1", True, [1, 2, 3, 9], every) == (
        b'* ESEARCH (TAG "a1") UID MIN 1 MAX 9 COUNT 4 ALL 1:3,9\r\n')
    assert esearch_response("A282", False, [2, 10, 11], frozenset({"MIN", "COUNT"})) == (
        b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n')
    assert esearch_response("a2", False, [], every) == b'* ESEARCH (TAG "a2") COUNT 0\r\n'
    assert esearch_response("a3", False, [], frozenset({"ALL"})) == b'* ESEARCH (TAG "a3")\r\n'
    assert esearch_response("a4", True, [4, 5], frozenset({"ALL"}), modseq=12) == (
        b'* ESEARCH (TAG "a4") UID ALL 4:5 MODSEQ 12\r\n')
    assert esearch_response("a5", False, [4], frozenset({"SAVE"})) == b""  # RFC 5182
    assert esearch_response("a6", False, [4], frozenset({"SAVE", "COUNT"})) == (
        b'* ESEARCH (TAG "a6") COUNT 1\r\n')


@pytest.mark.parametrize(("returns", "kept"), [
    (None, [3, 5, 9]),
    (frozenset({"SAVE"}), [3, 5, 9]),
    (frozenset({"SAVE", "MIN"}), [3]),
    (frozenset({"SAVE", "MAX"}), [9]),
    (frozenset({"SAVE", "MIN", "MAX"}), [3, 9]),
    (frozenset({"SAVE", "MIN", "COUNT"}), [3, 5, 9]),
    (frozenset({"SAVE", "ALL", "MAX"}), [3, 5, 9]),
])
def test_saved_result(returns: frozenset[str] | None, kept: list[int]) -> None:
    assert saved_result([3, 5, 9], returns) == kept
    assert saved_result([], returns) == []


@pytest.mark.parametrize(("numbers", "text"), [
    ([], ""), ([1], "1"), ([1, 2, 3], "1:3"), ([9, 1, 2, 3, 3], "1:3,9"),
    ([1, 3, 5, 6, 7, 10], "1,3,5:7,10"),
])
def test_compress(numbers: list[int], text: str) -> None:
    assert search.compress(numbers) == text


# --- cost ----------------------------------------------------------------------------------------


def test_flag_search_of_100000_messages() -> None:
    """Flags only: no message is read (its speed: bench/imap.py)."""
    messages = [Stored(i, i, "\\Seen" if i % 3 else "", i, 0.0, None)
                for i in range(1, 100_001)]
    prog = parse_search(tokens_of("UNSEEN UNDELETED"))
    hits = [m.seq for m in messages if prog.matches(m)]
    assert len(hits) == 33_333 and hits[:2] == [3, 6]


def test_cheap_keys_run_first() -> None:
    # The header key would need the octets; SEEN fails first so they are never read.
    prog = parse_search(tokens_of("SUBJECT x SEEN"))
    assert not prog.matches(Stored(1, 1, "", 1, 0.0, None))


# --- a large text searched piece by piece ---------------------------------------------------


@given(st.text(alphabet="abcß", max_size=60), st.text(alphabet="abcß", min_size=0, max_size=6),
       st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_a_text_in_pieces_contains_what_the_whole_contains(text: str, needle: str,
                                                          cuts: list[int]) -> None:
    """search.contains on a text cut anywhere (pieces shorter than the needle too)
    answers as ``in`` on the whole text."""
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)] or [""]
    assert search.contains(pieces, needle) == (needle in text)
