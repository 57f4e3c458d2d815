"""Sequence sets: ``1:*,3,5:7`` and ``$``, read and resolved (RFC 9051 §9, RFC 5182).

``parse_sequence_set`` reads the text of a set once; ``SequenceSet.uids_in``
(also named ``positions``) turns it into the 0-based positions of the messages it
names in the selected mailbox, given the mailbox's sorted UID list, for a
sequence-number command (FETCH) or a UID command (UID FETCH).
``format_uid_set`` writes UID lists back for COPYUID, APPENDUID, VANISHED and
ESEARCH.

Implementation notes:
- Numbers are nz-number (1 to 2**32-1, RFC 9051 §9); ``0``, a sign, a space or an
  empty element is ``BadSequence`` (a ``ValueError``: the command answers BAD).
- ``a:b`` is the same as ``b:a`` (RFC 9051 §9 ``seq-range``). ``*`` is the
  highest number in use: EXISTS for sequence numbers, the highest UID for UIDs, so
  that ``UID FETCH 559:*`` names the last message even when its UID is below 559
  (RFC 9051 §6.4.9). In an empty mailbox a UID set names nothing.
- Sequence numbers beyond EXISTS, ``*`` in an empty mailbox included, are
  ``BadSequence`` (RFC 9051 §9: "The server should respond with a tagged BAD");
  with ``strict=False`` (SEARCH) they name nothing instead. UIDs that do not
  exist are simply not there (RFC 9051 §6.4.9).
- Resolution never walks the numbers of a range: each range becomes a slice of
  the UID list by bisection, slices are merged, and only the positions found are
  listed, so ``1:*`` over 100,000 messages costs one ``list(range(...))``.
- ``$`` (RFC 5182 §2.1) is the saved search result; the session keeps it and
  passes its UIDs in ``saved``. Until a SEARCH saved one, it is empty.
- Parsed sets are immutable; short texts (``1:*``) are cached.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

MAX_NUMBER = 2**32 - 1  # RFC 9051 §9 nz-number
STAR = 0  # "*" in ``SequenceSet.ranges``; 0 is never a valid number
MAX_EXPANSION = 1_000_000  # UIDs that resolve_uids(known=True) may list

_NUMBER = r"(?:[1-9][0-9]{0,9}|\*)"
_RANGE = rf"{_NUMBER}(?::{_NUMBER})?"
_SET = re.compile(rf"{_RANGE}(?:,{_RANGE})*")


class BadSequence(ValueError):
    """Not a sequence set, or one naming a message that does not exist; the
    message fits a BAD response."""


@dataclass(frozen=True, slots=True)
class SequenceSet:
    ranges: tuple[tuple[int, int], ...]  # (first, last) as sent; STAR for "*"
    saved: bool = False  # "$", RFC 5182

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_number_text(lo) if lo == hi else
                        f"{_number_text(lo)}:{_number_text(hi)}" for lo, hi in self.ranges)

    def uids_in(self, uids: Sequence[int], uid_mode: bool, *,
                saved: Iterable[int] | None = None, strict: bool = True) -> list[int]:
        """The 0-based positions, ascending and without duplicates, of the messages
        the set names in a mailbox whose sorted UIDs are ``uids``. ``uid_mode``:
        the set holds UIDs (UID FETCH), else sequence numbers. ``saved``: the UIDs
        of the saved search result, for ``$``. ``strict``: a sequence number beyond
        EXISTS is ``BadSequence`` rather than ignored."""
        if self.saved:
            return _saved_positions(uids, saved)
        if uid_mode:
            return _expand(self._uid_spans(uids))
        return _expand(self._number_spans(len(uids), strict))

    positions = uids_in

    def resolve_uids(self, uids: Sequence[int], *, known: bool = False,
                     uidnext: int | None = None) -> list[int]:
        """The UIDs the set names, ascending. Without ``known``: those of messages
        in the mailbox (``uids``, sorted). With ``known`` (QRESYNC known-uids,
        RFC 7162 §3.2.5, which may name expunged messages): every number of the
        set, ``*`` being the highest UID (``uidnext`` in an empty mailbox, RFC 9051
        §9; ranges with ``*`` name nothing when neither is known), below
        ``uidnext`` when given; more than ``MAX_EXPANSION`` numbers is
        ``BadSequence``."""
        if not known:
            return [uids[i] for i in self.uids_in(uids, True)]
        if self.saved:
            raise BadSequence("$ is not allowed here")
        star = uids[-1] if uids else (uidnext or STAR)
        ceiling = MAX_NUMBER if uidnext is None else uidnext - 1
        spans: list[tuple[int, int]] = []
        total = 0
        for lo, hi in self.ranges:
            if STAR in (lo, hi):
                if star == STAR:
                    continue
                lo, hi = lo or star, hi or star
            if lo > hi:
                lo, hi = hi, lo
            hi = min(hi, ceiling)
            if lo <= hi:
                total += hi - lo + 1
                if total > MAX_EXPANSION:
                    raise BadSequence(f"the set names more than {MAX_EXPANSION} UIDs")
                spans.append((lo, hi + 1))
        return _expand(spans)

    def contains(self, number: int, star: int) -> bool:
        """Whether the set names ``number`` when ``*`` stands for ``star`` (the
        highest UID, or EXISTS). ``$`` names nothing here: resolve it first."""
        for lo, hi in self.ranges:
            lo, hi = lo or star, hi or star
            if lo <= number <= hi or hi <= number <= lo:
                return True
        return False

    def _uid_spans(self, uids: Sequence[int]) -> list[tuple[int, int]]:
        if not uids:
            return []
        top = uids[-1]
        spans: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            lo, hi = lo or top, hi or top
            if lo > hi:
                lo, hi = hi, lo
            start = bisect_left(uids, lo)
            end = bisect_right(uids, hi, start)
            if start < end:
                spans.append((start, end))
        return spans

    def _number_spans(self, count: int, strict: bool) -> list[tuple[int, int]]:
        if count == 0:
            if strict:
                raise BadSequence("no message has a sequence number: the mailbox is empty")
            return []
        spans: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            lo, hi = lo or count, hi or count
            if lo > hi:
                lo, hi = hi, lo
            if hi > count:
                if strict:
                    raise BadSequence(f"no message {hi}: the mailbox has {count}")
                hi = count
            if lo <= hi:
                spans.append((lo - 1, hi))
        return spans


def parse_sequence_set(text: str) -> SequenceSet:
    """The sequence set ``text`` (RFC 9051 §9 ``sequence-set``, or ``$``)."""
    if len(text) <= 32:
        return _parse_cached(text)
    return _parse(text)


@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> SequenceSet:
    return _parse(text)


def _parse(text: str) -> SequenceSet:
    if text == "$":
        return SequenceSet((), saved=True)
    if not _SET.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise BadSequence(f"bad sequence set {shown!r}")
    ranges: list[tuple[int, int]] = []
    for element in text.split(","):
        first, _, last = element.partition(":")
        lo = STAR if first == "*" else int(first)
        hi = lo if not last else (STAR if last == "*" else int(last))
        if lo > MAX_NUMBER or hi > MAX_NUMBER:
            raise BadSequence(f"{max(lo, hi)} is above the largest number, {MAX_NUMBER}")
        ranges.append((lo, hi))
    return SequenceSet(tuple(ranges))


def format_uid_set(uids: Iterable[int]) -> str:
    """``uids`` as a sequence set, runs of consecutive numbers as ranges:
    ``[1, 2, 3, 4, 5, 7, 9, 10]`` gives ``1:5,7,9:10``. The order is kept (COPYUID
    pairs its two sets element by element, RFC 4315 §3), so give sorted UIDs for
    the shortest text; an empty list gives ``""``."""
    seq = uids if isinstance(uids, list) else list(uids)
    if not seq:
        return ""
    first, last = seq[0], seq[-1]
    if last - first == len(seq) - 1 and seq == list(range(first, last + 1)):
        return str(first) if first == last else f"{first}:{last}"
    parts: list[str] = []
    start = prev = first
    for uid in islice(seq, 1, None):
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def _number_text(n: int) -> str:
    return "*" if n == STAR else str(n)


def _expand(spans: list[tuple[int, int]]) -> list[int]:
    """Every integer of the half-open spans, ascending, each once."""
    if not spans:
        return []
    if len(spans) == 1:
        start, end = spans[0]
        return list(range(start, end))
    spans.sort()
    out: list[int] = []
    done = spans[0][0]
    for start, end in spans:
        start = max(start, done)
        if start < end:
            out.extend(range(start, end))
            done = end
    return out


def _saved_positions(uids: Sequence[int], saved: Iterable[int] | None) -> list[int]:
    if saved is None:
        return []
    found: list[int] = []
    for uid in sorted(set(saved)):
        i = bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            found.append(i)
    return found
