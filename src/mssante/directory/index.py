"""An in-memory search index over the directory's mailboxes, for autocompletion.

A document is ``(doc_id, search_text, family_key)``: both texts are normalised
"spaced" word lists (``mssante.directory.text.spaced``: lower-case ASCII letters and
digits, single spaces, a space before the first word and after the last), as the
store writes them. A document's words are ``search_text.split()``; the words of its
family name are ``family_key.split()``. Repeated words and the order of the words
make no difference to the matching; the length of ``search_text`` as given is a
tiebreak of the ranking.

Semantics of ``SearchIndex.search(query, limit)``:

- The query is normalised with ``mssante.directory.text.words`` (accents and case
  folded; anything that is not an ASCII letter or digit only separates words), so
  that no syntax is interpreted: ``dupont*`` is the word ``dupont``, ``a AND b`` the
  three words ``a``, ``and``, ``b``, ``%`` nothing. Repeated query words count once.
  A query without words, or ``limit < 1``, gives ``[]``; ``limit`` is capped at
  ``MAX_LIMIT`` (1000).
- A document matches when every query word ``q`` matches some word ``w`` of its
  ``search_text``: ``w`` starts with ``q`` (prefix match), or, when ``q`` has
  ``FUZZY_MIN`` (4) characters or more, ``w`` with one of its characters deleted starts
  with ``q``
  (one missing letter anywhere, even while ``q`` is still being typed:
  ``cardilogie`` and ``cardilog`` match ``cardiologie``, ``upont`` matches
  ``dupont``). Only letters missing from the query are tolerated, not extra or
  wrong ones.
- Ranking, best first, on these keys in turn:

  1. ``k1``: the number of query words matched without the missing-letter
     tolerance (a prefix of some word of ``search_text``);
  2. ``k2``: the number of query words that start a word of ``family_key``;
  3. ``k3``: the number of query words equal to a whole word of ``family_key``;
  4. ``k4``: the number of query words equal to a whole word of ``search_text``;
  5. the shorter ``search_text`` (``len`` of the text as given);
  6. the smaller ``doc_id``.

- Each result is ``(doc_id, score)`` with, for ``n`` distinct query words and
  ``B = n + 1``, ``score = float(((k1 * B + k2) * B + k3) * B + k4)``. Every key is at
  most ``n``, so sorting on the score is sorting on keys 1 to 4, and the score is an
  exact integer-valued float (for queries of fewer than 9,000 words). Scores compare
  only within one query.

Structure and invariants:

- The base holds the documents of the last ``build`` or compaction in numpy arrays,
  renumbered in static order (key 5, then key 6): internal number ``i`` is the
  ``i``-th document in that order. Candidate arrays are kept ascending, hence in
  tiebreak order: among equal scores the first candidates win.
- The vocabulary (every word of every ``search_text`` and ``family_key``) is a sorted
  list: the words starting with a prefix are one rank range ``[lo, hi)``, found by
  bisection, and the postings (internal numbers grouped by word in vocabulary order,
  ascending within a word, without duplicates) of all those words are the one slice
  ``docs[offsets[lo]:offsets[hi]]``. ``search_text`` and ``family_key`` have such
  postings each, over the same vocabulary.
- Per document, a 64-bit mask of which of the 64 words of most documents it has
  ("medecin", "cabinet", "centre"...): whether candidates have one of these is a
  gather, not a pass over their hundreds of thousands of postings.
- A forward array ``internal * V + rank`` (sorted, ``V`` the vocabulary's size;
  uint32 when it fits) answers "has this candidate a word in ``[lo, hi)``" by
  binary search, for a few candidates against a long slice of postings.
- A scratch boolean array of the base's size is all False between calls: a search
  sets the postings of a slice, reads it at the candidates, and clears the slice.
- The one-letter deletions of the vocabulary's words of ``FUZZY_MIN + 1`` (5) to 64
  characters, at every position but the last (deleting the last character leaves a
  prefix of the word, a prefix match already), are numpy arrays of fixed-width strings,
  one per length, sorted, with the rank of the word of each: the words matching a query
  word only with a missing letter are a ``searchsorted`` range in each array at least as
  wide as the query word. Longer words (none in practice) are checked one by one.

A search, in the base: each query word becomes its prefix range plus the ranks of
its missing-letter words (none under ``FUZZY_MIN`` characters); a word that matches no document
ends the search. When every word starts some family name, the documents where every
word starts a word of the family name and of the text come first (the best possible
keys 1 and 2); if there are ``limit`` of them, the answer is among them, found in the
much shorter family postings ("d": 40,000 family names instead of 350,000 documents
having a word starting with d; "ma", "le goff"). Otherwise the candidates are the
documents of the most selective word, narrowed by the others, then scored. The top
``limit`` scores are found by counting the scores (``bincount``) and cutting at a
threshold, the ties taken in internal order.

Changes after the build (``upsert``, ``remove``) are visible at once: a changed or
removed base document is tombstoned (a boolean array; never returned again); an
upserted document lives in an overlay dict, scanned linearly with substring tests on
its spaced texts (``" " + q`` in the text for a prefix; for a missing letter, the
whole words that match so, found among the base's deletions and, for the overlay's
words missing from the base's vocabulary, by a regular expression), and merged with
the base's best hits. When the overlay exceeds
``compact_at`` documents (``COMPACT_AT`` by default; an attribute, so it can be
changed per index) or the tombstones exceed ``max(compact_at, base size // 4)``, the
base is rebuilt from its own arrays and the overlay, without re-tokenising the base
(about a second at 540,000 documents, during the ``upsert`` or ``remove`` that
crosses the threshold; ``compact()`` runs it at a chosen time).

Costs (``bench/directory_index.py``, 540,000 generated documents on 2 cores): a build
in under 2 s, about 95 MiB of structures, searches of 1,000 realistic queries with a
p99 of about 2 ms (the overlay adds up to a few ms at a few thousand documents).

The index holds almost no Python objects per document (the vocabulary's strings and
the overlay's documents only), so that it adds little to the cyclic GC's work. Not
thread-safe: one caller at a time (the server's event loop); results are plain lists
that later changes do not modify.
"""

from __future__ import annotations

import bisect
import re
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from mssante.directory.text import words

MAX_LIMIT: Final = 1000
FUZZY_MIN: Final = 4  # a query word this long may miss one letter
COMPACT_AT: Final = 4096

Int64s = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]
Pairs = tuple[Int32s, Int32s]  # (document, rank) pairs, as two arrays
Bools = npt.NDArray[np.bool_]
Integers = npt.NDArray[np.integer[Any]]
_I = TypeVar("_I", bound=np.integer[Any])

_EMPTY: Final[Int64s] = np.zeros(0, dtype=np.int64)
# A binary search of a forward array (one candidate, one rank range) costs about this
# many times setting then clearing one posting in the scratch array.
_PROBE_COST: Final = 64
# A word's documents are sorted out of its postings when they are fewer than the
# base's size / _SORT_SHARE, else marked in the scratch array and read back in order.
_SORT_SHARE: Final = 16
_FREQUENT: Final = 64
_LONG: Final = 64  # longer words are checked one by one for a missing letter


def _distinct(values: npt.NDArray[_I]) -> npt.NDArray[_I]:
    """The distinct values, ascending (``np.unique`` hashes, and is much slower)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    first = np.empty(len(ordered), dtype=np.bool_)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def _after(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True, slots=True)
class _Postings:
    """Documents by word: ``docs[offsets[r]:offsets[r + 1]]`` are the internal numbers
    (ascending) of the documents having the word of rank ``r``; ``forward`` holds
    ``internal * V + rank`` for every such pair, sorted (uint32 when it fits); bit
    ``j`` of ``bits[internal]`` tells whether the document has the word of rank
    ``frequent[j]`` (the 64 words of most documents, ascending ranks)."""

    offsets: Int64s
    docs: Int64s
    forward: Integers
    vocab_size: int
    frequent: list[int]
    bits: npt.NDArray[np.uint64]

    def split(self, lo: int, hi: int) -> tuple[int, list[tuple[int, int]]]:
        """The bits of the frequent words of rank in ``[lo, hi)``, and the ranges of the
        other ranks there."""
        first = bisect.bisect_left(self.frequent, lo)
        last = bisect.bisect_left(self.frequent, hi, lo=first)
        mask = (1 << last) - (1 << first)
        rest: list[tuple[int, int]] = []
        for rank in self.frequent[first:last]:
            if lo < rank:
                rest.append((lo, rank))
            lo = rank + 1
        if lo < hi:
            rest.append((lo, hi))
        return mask, rest

    def size(self, lo: int, hi: int) -> int:
        return int(self.offsets[hi] - self.offsets[lo])

    def slice(self, lo: int, hi: int) -> Int64s:
        return self.docs[self.offsets[lo]:self.offsets[hi]]

    def ranks(self) -> Int32s:
        """The rank of each posting of ``docs``."""
        return np.repeat(np.arange(self.vocab_size, dtype=np.int32), np.diff(self.offsets))

    def probe(self, candidates: Int64s, lo: int, hi: int) -> Bools:
        """Whether each candidate (ascending) has a word of rank in ``[lo, hi)``."""
        forward = self.forward
        kind = forward.dtype
        starts = candidates.astype(kind) * np.asarray(self.vocab_size, dtype=kind)
        at = np.searchsorted(forward, starts + np.asarray(lo, dtype=kind))
        inside = at < len(forward)
        found = np.zeros(len(candidates), dtype=np.bool_)
        found[inside] = forward[at[inside]] < starts[inside] + np.asarray(hi, dtype=kind)
        return found

    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.docs.nbytes + self.forward.nbytes
                   + self.bits.nbytes)


def _postings(pairs: Pairs, count: int, vocab_size: int) -> _Postings:
    """The postings of the (internal number, rank) ``pairs``, duplicates dropped; the
    big temporaries are reused in place (the build's peak of memory)."""
    width = max(count, 1)
    key = pairs[1].astype(np.int64)
    key *= width
    key += pairs[0]
    key.sort()
    if len(key) > 1:
        first = np.empty(len(key), dtype=np.bool_)
        first[0] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        if not first.all():
            key = key[first]
        del first
    offsets = np.searchsorted(key, np.arange(vocab_size + 1, dtype=np.int64) * width)
    internal = key % width
    np.floor_divide(key, width, out=key)  # now the ranks
    forward: Integers = internal * vocab_size
    forward += key
    del key
    forward.sort()
    if count * vocab_size < 2**32:
        forward = forward.astype(np.uint32)
    sizes = np.diff(offsets)
    frequent = sorted(np.argsort(-sizes, kind="stable")[:_FREQUENT].tolist())
    bits = np.zeros(count, dtype=np.uint64)
    for bit, rank in enumerate(frequent):
        bits[internal[offsets[rank]:offsets[rank + 1]]] |= np.uint64(1 << bit)
    return _Postings(offsets, internal, forward, vocab_size, frequent, bits)


@dataclass(frozen=True, slots=True)
class _Base:
    """The documents of the last build, renumbered in static order (module docstring)."""

    doc_ids: Int64s  # by internal number
    lengths: Int64s  # len(search_text), by internal number
    sorted_ids: Int64s  # the doc ids, ascending
    internal_of: Int64s  # the internal numbers, in the order of sorted_ids
    vocab: list[str]
    text: _Postings
    family: _Postings
    loose: Int64s  # internal numbers of the documents with a family word not in the text
    deletions: _Deletions

    @property
    def count(self) -> int:
        return len(self.doc_ids)

    def internal(self, doc_id: int) -> int | None:
        at = int(np.searchsorted(self.sorted_ids, doc_id))
        if at < len(self.sorted_ids) and int(self.sorted_ids[at]) == doc_id:
            return int(self.internal_of[at])
        return None

    def prepare(self, word: str) -> _Word | None:
        """``word`` as the base sees it; None when no document can match it."""
        lo = bisect.bisect_left(self.vocab, word)
        hi = bisect.bisect_left(self.vocab, _after(word), lo=lo)
        extra = _EMPTY
        if len(word) >= FUZZY_MIN:
            ranks = self.deletions.matching(word, self.vocab)
            extra = ranks[(ranks < lo) | (ranks >= hi)]
        prepared = _Word(lo, hi, lo < hi and self.vocab[lo] == word, extra, 0)
        size = sum(self.text.size(a, b) for a, b in prepared.ranges())
        if size == 0:
            return None
        return _Word(lo, hi, prepared.exact, extra, size)

    def nbytes(self) -> int:
        arrays = (self.doc_ids, self.lengths, self.sorted_ids, self.internal_of)
        vocab = sys.getsizeof(self.vocab) + sum(sys.getsizeof(w) for w in self.vocab)
        return (sum(int(a.nbytes) for a in arrays) + vocab + self.text.nbytes()
                + self.family.nbytes() + self.deletions.nbytes())


@dataclass(frozen=True, slots=True)
class _Word:
    """A query word as the base sees it."""

    lo: int  # [lo, hi): the ranks of the vocabulary's words starting with the word
    hi: int
    exact: bool  # the word itself is in the vocabulary (its rank is then ``lo``)
    extra: Int64s  # ranks of the words matching only with a missing letter
    size: int  # postings of all these words

    def ranges(self) -> list[tuple[int, int]]:
        own = [(self.lo, self.hi)] if self.lo < self.hi else []
        return own + _runs(self.extra)


def _runs(ranks: Int64s) -> list[tuple[int, int]]:
    """Sorted distinct ranks as ranges ``[lo, hi)`` of consecutive ranks."""
    if len(ranks) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ranks) != 1) + 1
    starts = np.concatenate([ranks[:1], ranks[breaks]])
    ends = np.concatenate([ranks[breaks - 1], ranks[-1:]]) + 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class _Deletions:
    """The one-letter deletions of the vocabulary's words of ``FUZZY_MIN + 1`` to
    ``_LONG`` characters, at every position but the last, by length: ``strings[m]``
    holds the deletions of ``m`` characters, sorted (bytes, or str for a length having
    words outside ASCII), ``ranks[m]`` the rank of the word of each; ``long`` holds
    the ranks of the longer words, checked one by one."""

    strings: dict[int, npt.NDArray[np.bytes_] | npt.NDArray[np.str_]]
    ranks: dict[int, npt.NDArray[np.int32]]
    long: list[int]

    def matching(self, word: str, vocab: list[str]) -> Int64s:
        """The ranks of the words that, with one letter deleted, start with ``word``."""
        found: list[Int64s] = []
        bounds = (word, _after(word))
        for size, strings in self.strings.items():
            if size >= len(word):
                needles = bounds if strings.dtype.kind == "U" else tuple(
                    b.encode() for b in bounds)
                lo, hi = np.searchsorted(strings, needles).tolist()
                if lo < hi:
                    found.append(self.ranks[size][lo:hi].astype(np.int64))
        extra = [rank for rank in self.long
                 if any((vocab[rank][:i] + vocab[rank][i + 1:]).startswith(word)
                        for i in range(len(word)))]
        if extra:
            found.append(np.array(extra, dtype=np.int64))
        return _distinct(np.concatenate(found)) if found else _EMPTY

    def nbytes(self) -> int:
        return (sum(int(a.nbytes) for a in self.strings.values())
                + sum(int(a.nbytes) for a in self.ranks.values()) + 8 * len(self.long))


def _deletions(vocab: list[str]) -> _Deletions:
    """The deletions of ``vocab`` (see ``_Deletions``), built with numpy by length."""
    by_length: dict[int, list[int]] = {}
    long: list[int] = []
    for rank, word in enumerate(vocab):
        if len(word) > _LONG:
            long.append(rank)
        elif len(word) > FUZZY_MIN:
            by_length.setdefault(len(word), []).append(rank)
    strings: dict[int, npt.NDArray[np.bytes_] | npt.NDArray[np.str_]] = {}
    ranks: dict[int, npt.NDArray[np.int32]] = {}
    for length, group in sorted(by_length.items()):
        texts = [vocab[r] for r in group]
        wide = not all(t.isascii() for t in texts)
        kind, unit = ("U", np.uint32) if wide else ("S", np.uint8)
        letters = np.array(texts, dtype=f"{kind}{length}").view(unit).reshape(-1, length)
        size = length - 1
        deleted = np.empty((len(group), size, size), dtype=unit)
        for position in range(size):
            deleted[:, position, :position] = letters[:, :position]
            deleted[:, position, position:] = letters[:, position + 1:]
        flat = deleted.reshape(-1).view(f"{kind}{size}")
        order = np.argsort(flat, kind="stable")
        strings[size] = flat[order]
        ranks[size] = np.repeat(np.array(group, dtype=np.int32), size)[order]
    return _Deletions(strings, ranks, long)


def _make_base(doc_ids: Int64s, lengths: Int64s, vocab: list[str], text: Pairs,
               family: Pairs) -> _Base:
    """The base of the documents ``j`` (``doc_ids[j]``, distinct, and ``lengths[j]``)
    having the words of the pairs ``(j, rank)`` ``text`` and ``family``; ``vocab`` is
    sorted and holds every word of rank in the pairs."""
    count = len(doc_ids)
    order = np.lexsort((doc_ids, lengths))
    internal = np.empty(count, dtype=np.int32)
    internal[order] = np.arange(count, dtype=np.int32)
    by_id = np.argsort(doc_ids)
    text_postings = _postings((internal[text[0]], text[1]), count, len(vocab))
    family_postings = _postings((internal[family[0]], family[1]), count, len(vocab))
    return _Base(
        doc_ids=doc_ids[order], lengths=lengths[order],
        sorted_ids=doc_ids[by_id], internal_of=internal[by_id].astype(np.int64), vocab=vocab,
        text=text_postings, family=family_postings,
        loose=_loose(family_postings, text_postings, len(vocab)),
        deletions=_deletions(vocab))


def _loose(family: _Postings, text: _Postings, vocab_size: int) -> Int64s:
    """The internal numbers of the documents having a family word that is not a word of
    their text (both ``forward`` arrays hold ``internal * V + rank``, sorted)."""
    missing = family.forward[~_member(family.forward, text.forward)].astype(np.int64)
    return _distinct(missing // max(vocab_size, 1))


def _member(values: Integers, sorted_values: Integers) -> Bools:
    """Whether each of ``values`` is in ``sorted_values`` (ascending)."""
    at = np.searchsorted(sorted_values, values)
    found = at < len(sorted_values)
    found[found] = sorted_values[at[found]] == values[found]
    return found


def _pruned(vocab: list[str], text: Pairs, family: Pairs) -> tuple[list[str], Pairs, Pairs]:
    """The words of ``vocab`` that the pairs use, and the pairs renumbered."""
    used = np.zeros(len(vocab), dtype=np.bool_)
    used[text[1]] = True
    used[family[1]] = True
    renumber = (np.cumsum(used) - 1).astype(np.int32)
    kept = [w for w, u in zip(vocab, used.tolist(), strict=True) if u]
    return kept, (text[0], renumber[text[1]]), (family[0], renumber[family[1]])


class _Codes(dict[str, int]):
    """Words numbered in the order they are first seen."""

    def __missing__(self, word: str) -> int:
        code = self[word] = len(self)
        return code


@dataclass(frozen=True, slots=True)
class _Document:
    """An overlay document: its texts re-spaced (``" w1 w2 "``) for substring tests,
    and its words that are not in the base's vocabulary."""

    text: str
    family: str
    length: int
    new_words: tuple[str, ...]


def _contains(ordered: list[str], value: str) -> bool:
    at = bisect.bisect_left(ordered, value)
    return at < len(ordered) and ordered[at] == value


def _respace(value: str) -> str:
    return " " + " ".join(value.split()) + " "


def _missing_letter_pattern(word: str) -> re.Pattern[str]:
    """Finds ``" " + w`` in a spaced text for the words ``w`` that, with one letter
    deleted before the end of ``word``, start with ``word``."""
    options = (re.escape(word[:i]) + "[^ ]" + re.escape(word[i:]) for i in range(len(word)))
    return re.compile(" (?:" + "|".join(options) + ")[^ ]*")


class SearchIndex:
    """Prefix search tolerant of one missing letter over the directory's documents,
    ranked (module docstring). ``build`` for the bulk, ``upsert``/``remove`` for a
    trickle of changes, ``search`` for the best hits."""

    def __init__(self) -> None:
        self.compact_at = COMPACT_AT
        none = np.zeros(0, dtype=np.int32)
        self._base = _make_base(_EMPTY, _EMPTY, [], (none, none), (none, none))
        self._dead: Bools = np.zeros(0, dtype=np.bool_)
        self._dead_count = 0
        self._scratch: Bools = np.zeros(0, dtype=np.bool_)
        self._overlay: dict[int, _Document] = {}
        self._new_words: str | None = None  # the overlay's new words, spaced (cache)

    @classmethod
    def build(cls, documents: Iterable[tuple[int, str, str]]) -> SearchIndex:
        """An index of ``documents``; a later document replaces an earlier one of the
        same ``doc_id``."""
        codes = _Codes()
        code_of = codes.__getitem__
        doc_ids, lengths = array("q"), array("q")
        text_sizes, text_codes = array("i"), array("i")
        family_sizes, family_codes = array("i"), array("i")
        for doc_id, search_text, family_key in documents:
            doc_ids.append(doc_id)
            lengths.append(len(search_text))
            split = search_text.split()
            text_sizes.append(len(split))
            text_codes.extend(map(code_of, split))
            split = family_key.split()
            family_sizes.append(len(split))
            family_codes.extend(map(code_of, split))

        provisional = list(codes)
        del codes
        order = sorted(range(len(provisional)), key=provisional.__getitem__)
        vocab = [provisional[i] for i in order]
        rank_of = np.empty(len(order), dtype=np.int32)
        rank_of[np.array(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int32)

        ids = np.frombuffer(doc_ids, dtype=np.int64)
        by_id = np.argsort(ids, kind="stable")
        repeated = ids[by_id][1:] == ids[by_id][:-1]
        keep = np.ones(len(ids), dtype=np.bool_)
        keep[by_id[:-1][repeated]] = False  # an earlier document of the same doc id
        unique = bool(keep.all())
        position = (np.cumsum(keep) - 1).astype(np.int32)

        def pairs(sizes: array[int], codes: array[int]) -> Pairs:
            docs = np.repeat(np.arange(len(sizes), dtype=np.int32),
                             np.frombuffer(sizes, dtype=np.int32))
            ranks = rank_of[np.frombuffer(codes, dtype=np.int32)]
            if unique:
                return docs, ranks
            live = keep[docs]
            return position[docs[live]], ranks[live]

        text, family = pairs(text_sizes, text_codes), pairs(family_sizes, family_codes)
        del text_codes, family_codes
        if not unique:
            vocab, text, family = _pruned(vocab, text, family)
        index = cls()
        index._set_base(_make_base(ids[keep], np.frombuffer(lengths, dtype=np.int64)[keep],
                                   vocab, text, family))
        return index

    @property
    def pending(self) -> int:
        """Changes not yet folded into the main index (overlay documents and tombstones)."""
        return len(self._overlay) + self._dead_count

    def __len__(self) -> int:
        return self._base.count - self._dead_count + len(self._overlay)

    def upsert(self, doc_id: int, search_text: str, family_key: str) -> None:
        """Add the document, or replace the one of the same ``doc_id``."""
        self._kill(doc_id)
        text, family = _respace(search_text), _respace(family_key)
        vocab = self._base.vocab
        new_words = tuple(w for w in dict.fromkeys(chain(text.split(), family.split()))
                          if not _contains(vocab, w))
        self._overlay[doc_id] = _Document(text, family, len(search_text), new_words)
        self._new_words = None
        self._maybe_compact()

    def remove(self, doc_id: int) -> None:
        """Remove the document; nothing when there is none of this ``doc_id``."""
        if self._overlay.pop(doc_id, None) is not None:
            self._new_words = None
        self._kill(doc_id)
        self._maybe_compact()

    def memory_bytes(self) -> int:
        """The approximate size of the index's structures (arrays, vocabulary,
        overlay)."""
        overlay = sys.getsizeof(self._overlay) + sys.getsizeof(self._new_words) + sum(
            sys.getsizeof(d.text) + sys.getsizeof(d.family) + sys.getsizeof(d.new_words)
            + sum(sys.getsizeof(w) for w in d.new_words) + 64
            for d in self._overlay.values())
        return (self._base.nbytes() + int(self._dead.nbytes) + int(self._scratch.nbytes)
                + overlay)

    def search(self, query: str, limit: int = 10) -> list[tuple[int, float]]:
        """The best ``limit`` documents matching every word of ``query``, as
        ``(doc_id, score)`` best first (module docstring)."""
        query_words = list(dict.fromkeys(words(query)))
        if not query_words or limit < 1:
            return []
        limit = min(limit, MAX_LIMIT)
        radix = len(query_words) + 1
        hits = self._search_base(query_words, limit, radix)
        if self._overlay:
            hits.extend(self._search_overlay(query_words, radix))
            hits.sort()
        return [(doc_id, float(-negative)) for negative, _, doc_id in hits[:limit]]

    def compact(self) -> None:
        """Fold the overlay and the tombstones into the base (module docstring)."""
        old = self._base
        alive = ~self._dead
        kept = int(alive.sum())
        overlay_texts = [d.text.split() for d in self._overlay.values()]
        overlay_families = [d.family.split() for d in self._overlay.values()]
        vocab = sorted(set(old.vocab).union(*overlay_texts, *overlay_families))
        rank_of = {w: r for r, w in enumerate(vocab)}
        remap = np.fromiter(map(rank_of.__getitem__, old.vocab), dtype=np.int32,
                            count=len(old.vocab))
        position = (np.cumsum(alive) - 1).astype(np.int32)

        def pairs(postings: _Postings, lists: list[list[str]]) -> Pairs:
            docs, ranks = postings.docs, postings.ranks()
            if self._dead_count:
                live = alive[docs]
                docs, ranks = docs[live], ranks[live]
            new_docs = np.repeat(np.arange(kept, kept + len(lists), dtype=np.int32),
                                 np.array([len(x) for x in lists], dtype=np.int64))
            new_ranks = np.fromiter(map(rank_of.__getitem__, chain.from_iterable(lists)),
                                    dtype=np.int32, count=len(new_docs))
            return (np.concatenate([position[docs], new_docs]),
                    np.concatenate([remap[ranks], new_ranks]))

        text = pairs(old.text, overlay_texts)
        family = pairs(old.family, overlay_families)
        vocab, text, family = _pruned(vocab, text, family)
        doc_ids = np.concatenate([
            old.doc_ids[alive],
            np.fromiter(self._overlay, dtype=np.int64, count=len(self._overlay))])
        lengths = np.concatenate([
            old.lengths[alive],
            np.fromiter((d.length for d in self._overlay.values()), dtype=np.int64,
                        count=len(self._overlay))])
        self._set_base(_make_base(doc_ids, lengths, vocab, text, family))

    # The base.

    def _search_base(self, query_words: list[str], limit: int,
                     radix: int) -> list[tuple[int, int, int]]:
        """The best ``limit`` hits of the base, as ``(-score, length, doc_id)``."""
        base = self._base
        if base.count == 0:
            return []
        prepared: list[_Word] = []
        for query_word in query_words:
            found = base.prepare(query_word)
            if found is None:
                return []
            prepared.append(found)
        if all(base.family.size(w.lo, w.hi) for w in prepared):
            hits = self._search_family(prepared, limit, radix)
            if hits is not None:
                return hits
        prepared.sort(key=lambda w: w.size)

        # Candidates: ascending internal numbers, narrowed word by word from the most
        # selective; ``exact`` counts the words each one matches without tolerance.
        candidates = self._documents(prepared[0])
        if self._dead_count:
            candidates = candidates[~self._dead[candidates]]
        exact = np.zeros(len(candidates), dtype=_score_type(radix))
        for position, word in enumerate(prepared):
            if len(candidates) == 0:
                return []
            if len(word.extra) == 0:
                if position > 0:
                    keep = self._has(base.text, candidates, [(word.lo, word.hi)])
                    candidates, exact = candidates[keep], exact[keep]
                exact += 1
                continue
            if position > 0:
                keep = self._has(base.text, candidates, word.ranges())
                candidates, exact = candidates[keep], exact[keep]
            if word.lo < word.hi:
                exact += self._has(base.text, candidates, [(word.lo, word.hi)])
        if len(candidates) == 0:
            return []

        score = exact
        score *= radix
        for word in prepared:
            if word.lo < word.hi:
                score += self._has(base.family, candidates, [(word.lo, word.hi)])
        return self._hits(candidates, score, prepared, radix, limit)

    def _search_family(self, prepared: list[_Word], limit: int,
                       radix: int) -> list[tuple[int, int, int]] | None:
        """The best hits when at least ``limit`` documents have every query word
        starting a word of their family name and of their text (the best possible
        keys 1 and 2, so that the best hits are among them); None otherwise.

        Typed names ("d", "ma", "le goff") find their answers here, in the family
        postings, instead of ranking the hundreds of thousands of documents having a
        word with the prefix."""
        family = self._base.family
        ordered = sorted(prepared, key=lambda w: family.size(w.lo, w.hi))
        first = ordered[0]
        candidates = family.slice(first.lo, first.hi)
        if first.hi - first.lo > 1:
            candidates = _distinct(candidates)
        if self._dead_count:
            candidates = candidates[~self._dead[candidates]]
        for word in ordered[1:]:
            candidates = candidates[self._has(family, candidates, [(word.lo, word.hi)])]
            if len(candidates) < limit:
                return None
        # Family words are text words, but for the loose documents: check those only.
        suspect = _member(candidates, self._base.loose)
        if suspect.any():
            kept = candidates[suspect]
            for word in ordered:
                kept = kept[self._has(self._base.text, kept, [(word.lo, word.hi)])]
            candidates = _distinct(np.concatenate([candidates[~suspect], kept]))
        if len(candidates) < limit:
            return None
        count = len(prepared)
        score = np.full(len(candidates), count * radix + count, dtype=_score_type(radix))
        return self._hits(candidates, score, prepared, radix, limit)

    def _hits(self, candidates: Int64s, score: Integers, prepared: list[_Word],
              radix: int, limit: int) -> list[tuple[int, int, int]]:
        """The best ``limit`` hits from ``score`` holding ``k1 * radix + k2``, after
        adding keys 3 and 4, as ``(-score, length, doc_id)``."""
        base = self._base
        score *= radix
        for word in prepared:
            if word.exact:
                score += self._has(base.family, candidates, [(word.lo, word.lo + 1)])
        score *= radix
        for word in prepared:
            if word.exact:
                score += self._has(base.text, candidates, [(word.lo, word.lo + 1)])
        best = _top(candidates, score, limit)
        return [(-int(value), int(base.lengths[internal]), int(base.doc_ids[internal]))
                for value, internal in zip(score[best].tolist(), candidates[best].tolist(),
                                           strict=True)]

    def _documents(self, word: _Word) -> Int64s:
        """The internal numbers, ascending, of the documents having a word matching
        ``word`` (with or without a missing letter)."""
        postings = self._base.text
        ranges = word.ranges()
        if len(ranges) == 1 and ranges[0][1] - ranges[0][0] == 1:
            return postings.slice(*ranges[0])
        parts = [postings.slice(lo, hi) for lo, hi in ranges]
        if word.size * _SORT_SHARE < self._base.count:
            return _distinct(np.concatenate(parts))
        scratch = self._scratch
        try:
            for part in parts:
                scratch[part] = True
            return np.flatnonzero(scratch)
        finally:
            scratch[:] = False

    def _has(self, postings: _Postings, candidates: Int64s,
             ranges: list[tuple[int, int]]) -> Bools:
        """Whether each candidate (ascending) has a word of rank in one of ``ranges``:
        the frequent words by their bits; the others by binary searches of the
        forward array for a few candidates, else through the scratch array."""
        mask = 0
        rest: list[tuple[int, int]] = []
        for lo, hi in ranges:
            bits, others = postings.split(lo, hi)
            mask |= bits
            rest.extend(others)
        found: Bools
        if mask:
            found = (postings.bits[candidates] & np.uint64(mask)) != 0
        else:
            found = np.zeros(len(candidates), dtype=np.bool_)
        size = sum(postings.size(lo, hi) for lo, hi in rest)
        if size == 0:
            return found
        if len(candidates) * len(rest) * _PROBE_COST < size:
            for lo, hi in rest:
                found |= postings.probe(candidates, lo, hi)
            return found
        scratch = self._scratch
        parts = [postings.slice(lo, hi) for lo, hi in rest]
        try:
            for part in parts:
                scratch[part] = True
            found |= scratch[candidates]
            return found
        finally:
            for part in parts:
                scratch[part] = False

    # The overlay.

    def _search_overlay(self, query_words: list[str],
                        radix: int) -> list[tuple[int, int, int]]:
        """Every match of the overlay, as ``(-score, length, doc_id)``.

        A document word matching a query word only with a missing letter is one of
        the base's vocabulary (its deletions say which) or one of the overlay's new
        words (a regular expression over them says which): the documents are then
        tested for those whole words, all substring tests."""
        prefixes = [" " + w for w in query_words]
        wholes = [" " + w + " " for w in query_words]
        tests = sorted(((" " + w, self._missing_letter_words(w)) for w in query_words),
                       key=lambda test: -len(test[0]))  # the longer, the rarer
        hits: list[tuple[int, int, int]] = []
        for doc_id, document in self._overlay.items():
            text = document.text
            exact = 0
            for prefix, others in tests:
                if prefix in text:
                    exact += 1
                elif not others or not any(map(text.__contains__, others)):
                    break
            else:
                family = document.family
                value = (((exact * radix + sum(map(family.__contains__, prefixes))) * radix
                          + sum(map(family.__contains__, wholes))) * radix
                         + sum(map(text.__contains__, wholes)))
                hits.append((-value, document.length, doc_id))
        return hits

    def _missing_letter_words(self, word: str) -> list[str]:
        """The words, spaced (``" w "``), of the base's vocabulary and of the overlay
        that match ``word`` only with a missing letter."""
        if len(word) < FUZZY_MIN:
            return []
        base = self._base
        lo = bisect.bisect_left(base.vocab, word)
        hi = bisect.bisect_left(base.vocab, _after(word), lo=lo)
        found = [base.vocab[r] for r in base.deletions.matching(word, base.vocab).tolist()
                 if not lo <= r < hi]
        if self._new_words is None:
            self._new_words = " " + " ".join(
                chain.from_iterable(d.new_words for d in self._overlay.values())) + " "
        found.extend(m.group()[1:] for m in
                     _missing_letter_pattern(word).finditer(self._new_words))
        return [f" {w} " for w in dict.fromkeys(found) if not w.startswith(word)]

    # Changes.

    def _kill(self, doc_id: int) -> None:
        internal = self._base.internal(doc_id)
        if internal is not None and not self._dead[internal]:
            self._dead[internal] = True
            self._dead_count += 1

    def _maybe_compact(self) -> None:
        if (len(self._overlay) > self.compact_at
                or self._dead_count > max(self.compact_at, self._base.count // 4)):
            self.compact()

    def _set_base(self, base: _Base) -> None:
        self._base = base
        self._dead = np.zeros(base.count, dtype=np.bool_)
        self._dead_count = 0
        self._scratch = np.zeros(base.count, dtype=np.bool_)
        self._overlay = {}
        self._new_words = None


def _score_type(radix: int) -> type[np.generic]:
    """The smallest unsigned type holding the scores (below ``radix ** 4``); Python
    integers for absurdly long queries."""
    for kind in (np.uint16, np.uint32, np.uint64):
        if radix**4 <= np.iinfo(kind).max + 1:
            return kind
    return np.object_


def _top(candidates: Int64s, score: Integers, limit: int) -> Int64s:
    """The positions in ``candidates`` (ascending) of the ``limit`` highest scores,
    ties to the smaller internal number, best first."""
    if len(candidates) <= limit:
        chosen = np.arange(len(candidates), dtype=np.int64)
    else:
        top = int(score.max())
        if top >= 1 << 16:
            return np.lexsort((candidates, top - score))[:limit]
        at_least = np.cumsum(np.bincount(score, minlength=top + 1)[::-1])
        threshold = top - int(np.searchsorted(at_least, limit))
        above = np.flatnonzero(score > threshold)
        tied = np.flatnonzero(score == threshold)[:limit - len(above)]
        chosen = np.concatenate([above, tied])
    best = score[chosen]
    order = np.lexsort((candidates[chosen], best.max(initial=0) - best))
    return chosen[order]
