"""Sequence sets (RFC 9051 §9, §6.4.9; RFC 5182 ``$``)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.imap.sequence import (
    MAX_EXPANSION,
    MAX_NUMBER,
    STAR,
    BadSequence,
    SequenceSet,
    format_uid_set,
    parse_sequence_set,
)

UIDS = [3, 5, 6, 7, 10, 20]  # positions 0..5


@pytest.mark.parametrize("text,ranges", [
    ("1", ((1, 1),)),
    ("1:5", ((1, 5),)),
    ("*", ((STAR, STAR),)),
    ("1:*", ((1, STAR),)),
    ("*:4", ((STAR, 4),)),
    ("1,3,5:7", ((1, 1), (3, 3), (5, 7))),
    ("4294967295", ((MAX_NUMBER, MAX_NUMBER),)),
    ("7:2,2", ((7, 2), (2, 2))),
])
def test_parse(text: str, ranges: tuple[tuple[int, int], ...]) -> None:
    parsed = parse_sequence_set(text)
    assert parsed == SequenceSet(ranges)
    assert str(parsed) == text


def test_saved_result() -> None:
    parsed = parse_sequence_set("$")
    assert parsed.saved and str(parsed) == "$"


@pytest.mark.parametrize("text", ["", "0", "0:5", "5:0", "01", "1:", ":1", "1,,2", ",1", "1,",
                                  " 1", "1 ", "1:2:3", "a", "-1", "+1", "1.5", "**", "1:**",
                                  "4294967296", "1:4294967296", "99999999999", "$,1", "$:1",
                                  "$$", "١", "1\n"])
def test_bad_sets(text: str) -> None:
    with pytest.raises(BadSequence):
        parse_sequence_set(text)


def test_bad_sequence_is_a_value_error_with_a_readable_message() -> None:
    with pytest.raises(ValueError, match="bad sequence set 'x'"):
        parse_sequence_set("x")
    with pytest.raises(BadSequence, match=r"\.\.\.'$"):
        parse_sequence_set("1," * 50 + "x")


# ------------------------------------------------------------ UID mode


@pytest.mark.parametrize("text,positions", [
    ("1:*", [0, 1, 2, 3, 4, 5]),
    ("*", [5]),
    ("5", [1]),
    ("4", []),
    ("6:10", [2, 3, 4]),
    ("10:6", [2, 3, 4]),
    ("1:4,21:30", [0]),
    ("20,3,5:6,6,3", [0, 1, 2, 5]),
    ("7:*,1:6", [0, 1, 2, 3, 4, 5]),
    ("559:*", [5]),  # RFC 9051 §6.4.9: n:* names the last UID even if n is above it
    ("*:559", [5]),
    ("21:30", []),
    ("4294967295", []),
])
def test_uid_mode(text: str, positions: list[int]) -> None:
    assert parse_sequence_set(text).uids_in(UIDS, True) == positions
    assert parse_sequence_set(text).positions(UIDS, uid_mode=True) == positions


def test_uid_mode_in_an_empty_mailbox_names_nothing() -> None:
    assert parse_sequence_set("1:*").uids_in([], True) == []
    assert parse_sequence_set("*").uids_in([], True) == []


# ------------------------------------------------------------ sequence numbers


@pytest.mark.parametrize("text,positions", [
    ("1:*", [0, 1, 2, 3, 4, 5]),
    ("*", [5]),
    ("2", [1]),
    ("*:4", [3, 4, 5]),
    ("6:1", [0, 1, 2, 3, 4, 5]),
    ("1,3,1:2", [0, 1, 2]),
])
def test_sequence_numbers(text: str, positions: list[int]) -> None:
    assert parse_sequence_set(text).uids_in(UIDS, False) == positions


@pytest.mark.parametrize("text", ["7", "1:7", "7:*", "1,3,8"])
def test_a_sequence_number_beyond_exists_is_bad(text: str) -> None:
    with pytest.raises(BadSequence, match="no message"):
        parse_sequence_set(text).uids_in(UIDS, False)


def test_non_strict_resolution_ignores_numbers_beyond_exists() -> None:
    assert parse_sequence_set("5:9,100").uids_in(UIDS, False, strict=False) == [4, 5]
    assert parse_sequence_set("1:*").uids_in([], False, strict=False) == []


@pytest.mark.parametrize("text", ["*", "1:*", "1"])
def test_sequence_numbers_in_an_empty_mailbox_are_bad(text: str) -> None:
    with pytest.raises(BadSequence, match="empty"):
        parse_sequence_set(text).uids_in([], False)


# ------------------------------------------------------------ $, resolve_uids, contains


def test_saved_result_resolves_to_the_saved_uids_still_there() -> None:
    saved = parse_sequence_set("$")
    assert saved.uids_in(UIDS, True, saved=[20, 4, 3, 3]) == [0, 5]
    assert saved.uids_in(UIDS, False, saved=iter([7])) == [3]
    assert saved.uids_in(UIDS, True) == []  # nothing saved yet: empty (RFC 5182 §2.1)


def test_resolve_uids_of_messages_present() -> None:
    assert parse_sequence_set("4:7,*").resolve_uids(UIDS) == [5, 6, 7, 20]
    assert parse_sequence_set("1:*").resolve_uids([]) == []


def test_resolve_known_uids_lists_expunged_ones_too() -> None:
    """QRESYNC known-uids (RFC 7162 §3.2.5) may name messages already expunged."""
    assert parse_sequence_set("1:4,8,18:*").resolve_uids(UIDS, known=True) == [
        1, 2, 3, 4, 8, 18, 19, 20]
    assert parse_sequence_set("18:30").resolve_uids(UIDS, known=True, uidnext=25) == [
        18, 19, 20, 21, 22, 23, 24]
    # RFC 9051 §9: in an empty mailbox "*" is UIDNEXT
    assert parse_sequence_set("3:*").resolve_uids([], known=True, uidnext=6) == [3, 4, 5]
    assert parse_sequence_set("3:*,1").resolve_uids([], known=True) == [1]
    with pytest.raises(BadSequence):
        parse_sequence_set("$").resolve_uids(UIDS, known=True)


def test_resolve_known_uids_is_bounded() -> None:
    assert len(parse_sequence_set(f"1:{MAX_EXPANSION}").resolve_uids(UIDS, known=True)) == \
        MAX_EXPANSION
    with pytest.raises(BadSequence, match="more than"):
        parse_sequence_set("1:4294967295").resolve_uids(UIDS, known=True)
    assert parse_sequence_set("1:4294967295").resolve_uids(UIDS, known=True, uidnext=4) == [
        1, 2, 3]


def test_contains() -> None:
    s = parse_sequence_set("2:4,10:*")
    assert [n for n in range(1, 14) if s.contains(n, star=12)] == [2, 3, 4, 10, 11, 12]
    assert parse_sequence_set("559:*").contains(20, star=20)
    assert not parse_sequence_set("$").contains(1, star=1)


# ------------------------------------------------------------ format_uid_set


@pytest.mark.parametrize("uids,text", [
    ([], ""),
    ([7], "7"),
    ([1, 2, 3, 4, 5, 7, 9, 10, 11, 12], "1:5,7,9:12"),
    ([1, 3, 5], "1,3,5"),
    (range(1, 100_001), "1:100000"),
    ([5, 6, 1, 2], "5:6,1:2"),  # order kept: COPYUID pairs its sets element by element
    ([3, 2, 1], "3,2,1"),
    ([4, 4], "4,4"),
])
def test_format_uid_set(uids: list[int], text: str) -> None:
    assert format_uid_set(uids) == text
    assert format_uid_set(iter(uids)) == text


# ------------------------------------------------------------ properties and speed


def naive(text: str, uids: list[int], uid_mode: bool) -> list[int]:
    star = (uids[-1] if uids else 0) if uid_mode else len(uids)
    wanted: set[int] = set()
    for element in text.split(","):
        a, _, b = element.partition(":")
        lo = star if a == "*" else int(a)
        hi = lo if not b else (star if b == "*" else int(b))
        wanted.update(range(min(lo, hi), max(lo, hi) + 1))
    if uid_mode:
        return [i for i, uid in enumerate(uids) if uid in wanted]
    return [n - 1 for n in sorted(wanted) if 1 <= n <= len(uids)]


numbers = st.one_of(st.integers(1, 60).map(str), st.just("*"))
elements = st.one_of(numbers, st.builds(lambda a, b: f"{a}:{b}", numbers, numbers))
set_texts = st.lists(elements, min_size=1, max_size=8).map(",".join)
uid_lists = st.lists(st.integers(1, 60), unique=True).map(sorted)


@given(set_texts, uid_lists)
def test_uid_resolution_matches_a_naive_one(text: str, uids: list[int]) -> None:
    assert parse_sequence_set(text).uids_in(uids, True) == naive(text, uids, True)


@given(set_texts, uid_lists)
def test_sequence_resolution_matches_a_naive_one(text: str, uids: list[int]) -> None:
    parsed = parse_sequence_set(text)
    assert parsed.uids_in(uids, False, strict=False) == naive(text, uids, False)
    expected_bad = not uids or any(
        int(n) > len(uids) for n in text.replace(":", ",").split(",") if n != "*")
    if expected_bad:
        with pytest.raises(BadSequence):
            parsed.uids_in(uids, False)
    else:
        assert parsed.uids_in(uids, False) == naive(text, uids, False)


@given(uid_lists, st.lists(st.integers(1, 80), unique=True).map(sorted))
def test_a_formatted_set_names_exactly_its_uids(chosen: list[int], others: list[int]) -> None:
    universe = sorted(set(chosen) | set(others))
    text = format_uid_set(chosen)
    if not chosen:
        assert text == ""
        return
    parsed = parse_sequence_set(text)
    assert [universe[i] for i in parsed.uids_in(universe, True)] == chosen
    assert all(parsed.contains(uid, star=universe[-1]) == (uid in chosen) for uid in universe)


@given(st.text(max_size=20))
def test_arbitrary_text_parses_or_raises_bad_sequence(text: str) -> None:
    with contextlib.suppress(BadSequence):
        parse_sequence_set(text)


def test_one_to_star_over_100000_uids() -> None:
    """Large sets resolve through ranges, not element by element (speed: bench/imap.py)."""
    uids = list(range(1, 200_001, 2))
    assert parse_sequence_set("1:*").uids_in(uids, True) == list(range(100_000))
    assert parse_sequence_set("1:*").uids_in(uids, False) == list(range(100_000))
    assert format_uid_set(uids).count(",") == 99_999
    assert format_uid_set(list(range(1, 100_001))) == "1:100000"


def test_many_elements() -> None:
    uids = list(range(1, 100_001))
    text = ",".join(str(n) for n in range(1, 100_001, 7))
    assert parse_sequence_set(text).uids_in(uids, True) == list(range(0, 100_000, 7))
