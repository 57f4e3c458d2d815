"""The in-memory directory search index: every rule of its semantics, and equality
with a straightforward reference implementation on random corpora and changes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.directory import index as index_module
from mssante.directory.extract import ExtractRow
from mssante.directory.generate import generate_rows
from mssante.directory.index import FUZZY_MIN, MAX_LIMIT, SearchIndex
from mssante.directory.store import search_text
from mssante.directory.text import spaced, words

Document = tuple[int, str, str]


def doc(doc_id: int, text: str, family: str = "") -> Document:
    """A document from plain text, normalised and spaced as the store does."""
    return doc_id, spaced(dict.fromkeys(words(f"{family} {text}"))), spaced(words(family))


def document(doc_id: int, row: ExtractRow) -> Document:
    """The index document of a row: the store's own search text (``store.search_text``)."""
    return doc_id, search_text(row), spaced(words(row.family_name))


# The reference: the rules of the module docstring, written plainly.

def _matches(query_word: str, word: str) -> bool:
    if word.startswith(query_word):
        return True
    return len(query_word) >= FUZZY_MIN and any(
        (word[:i] + word[i + 1:]).startswith(query_word) for i in range(len(word)))


def reference(documents: Mapping[int, tuple[str, str]], query: str,
              limit: int = 10) -> list[tuple[int, float]]:
    query_words = list(dict.fromkeys(words(query)))
    if not query_words or limit < 1:
        return []
    radix = len(query_words) + 1
    ranked = []
    for doc_id, (text, family) in documents.items():
        text_words, family_words = text.split(), family.split()
        if not all(any(_matches(q, w) for w in text_words) for q in query_words):
            continue
        k1 = sum(any(w.startswith(q) for w in text_words) for q in query_words)
        k2 = sum(any(w.startswith(q) for w in family_words) for q in query_words)
        k3 = sum(q in family_words for q in query_words)
        k4 = sum(q in text_words for q in query_words)
        score = ((k1 * radix + k2) * radix + k3) * radix + k4
        ranked.append((-score, len(text), doc_id))
    ranked.sort()
    return [(doc_id, float(-score)) for score, _, doc_id in ranked[:min(limit, MAX_LIMIT)]]


def ids(hits: Iterable[tuple[int, float]]) -> list[int]:
    return [doc_id for doc_id, _ in hits]


@contextmanager
def tuning(probe_cost: int, sort_share: int, frequent: int) -> Iterator[None]:
    """Other thresholds between the index's strategies, so that small corpora take
    every path: binary searches or the scratch array, sorting or marking, bits."""
    with ExitStack() as stack:
        for name, value in (("_PROBE_COST", probe_cost), ("_SORT_SHARE", sort_share),
                            ("_FREQUENT", frequent)):
            stack.enter_context(mock.patch.object(index_module, name, value))
        yield


PEOPLE = [
    doc(1, "zoe medecin cardiologie 69003 lyon 69", "Dupont"),
    doc(2, "zoe medecin cardiologie 69003 lyon 69", "Dupontel"),
    doc(3, "dupont yves medecin pediatrie 69003 lyon 69", "Bernard"),
    doc(4, "irene medecin nephrologie 14000 caen 14", "Lefèvre"),
    doc(5, "joel medecin psychiatrie 13001 marseille 13", "Bérenger"),
    doc(6, "centre hospitalier de lyon urgences 69003 lyon 69"),
]


@pytest.fixture(scope="module")
def people() -> SearchIndex:
    return SearchIndex.build(PEOPLE)


# Matching.

def test_prefix_of_any_word(people: SearchIndex) -> None:
    assert set(ids(people.search("dup"))) == {1, 2, 3}
    assert ids(people.search("cardio")) == [1, 2]
    assert ids(people.search("urg")) == [6]
    assert people.search("pont") == []  # inside a word is not a prefix


def test_every_word_must_match(people: SearchIndex) -> None:
    assert ids(people.search("dupont zoe")) == [1, 2]
    assert ids(people.search("dupont pediatrie")) == [3]
    assert people.search("dupont caen") == []


def test_accents_case_and_punctuation_are_folded(people: SearchIndex) -> None:
    assert ids(people.search("LEFÈVRE")) == [4]
    assert ids(people.search("bérenger")) == ids(people.search("BERENGER")) == [5]
    assert ids(people.search("Zoé, Dupont!")) == [1, 2]
    assert ids(people.search("  lefevre\tirene ")) == [4]


def test_query_syntax_is_never_interpreted(people: SearchIndex) -> None:
    assert people.search("dupont*") == people.search("dupont")
    assert people.search('"dupont"') == people.search("dupont")
    assert people.search("%") == people.search("_") == people.search("*") == []
    assert people.search("dup%ont") == []  # the words "dup" and "ont"
    assert people.search("dupont AND zoe") == []  # "and" is a word, in no document
    assert people.search("dupont OR caen") == []
    assert people.search("dupont -zoe") == people.search("dupont zoe")
    index = SearchIndex.build([doc(1, "a and b"), doc(2, "a b")])
    assert ids(index.search("a AND b")) == [1]
    assert ids(index.search("a NEAR b")) == []


def test_missing_letter(people: SearchIndex) -> None:
    assert ids(people.search("cardilogie")) == [1, 2]
    assert ids(people.search("cardilog")) == [1, 2]  # a prefix being typed
    assert ids(people.search("ardiologie")) == [1, 2]  # the first letter
    assert set(ids(people.search("upont"))) == {1, 2, 3}
    assert ids(people.search("nephrlogie caen")) == [4]


def test_missing_letter_only_from_four_letters(people: SearchIndex) -> None:
    assert people.search("upo") == []
    assert people.search("crd") == []
    assert set(ids(people.search("upon"))) == {1, 2, 3}
    assert ids(people.search("crdi")) == [1, 2]


def test_only_one_missing_letter_and_no_extra_or_wrong_letter(people: SearchIndex) -> None:
    assert ids(people.search("cardologie")) == [1, 2]
    assert people.search("crdilogie") == []  # two missing
    assert people.search("duppont") == []  # one extra
    assert people.search("dupomt") == []  # one wrong


def test_missing_letter_in_a_long_word() -> None:
    long = "a" * 70 + "bcdefgh"
    documents = [doc(1, long), doc(2, "x" + "a" * 70 + "cdefgh"), doc(3, "other")]
    index = SearchIndex.build(documents)
    assert ids(index.search("a" * 70 + "cdef")) == [1, 2]  # deleting b, or x
    assert ids(index.search("a" * 69 + "bcd")) == [1]
    assert ids(index.search("xa" + "a" * 68 + "cdefg")) == [2]
    index.upsert(*doc(4, "y" + long))
    assert ids(index.search(long)) == [1, 4]


# Ranking.

def test_exact_words_before_missing_letters() -> None:
    # Key 1 before key 2: both words exact, above a family match with a missing letter.
    index = SearchIndex.build([doc(1, "martin parxis", "Martin"), doc(2, "paris martin")])
    assert ids(index.search("martin paris")) == [2, 1]


def test_family_prefix_before_whole_words_and_length() -> None:
    # Key 2 before keys 3, 4 and 5.
    index = SearchIndex.build([doc(1, "dupont", "Martin"),
                               doc(2, "zoe medecin cardiologie lyon", "Dupontel")])
    assert ids(index.search("dupont")) == [2, 1]


def test_whole_family_word_before_family_prefix() -> None:
    # Key 3 before key 5: the longer text wins on an exact family name.
    index = SearchIndex.build([doc(1, "zoe", "Dupontel"),
                               doc(2, "zoe medecin cardiologie lyon", "Dupont")])
    assert ids(index.search("dupont")) == [2, 1]


def test_whole_word_before_length() -> None:
    # Key 4 before key 5.
    index = SearchIndex.build([doc(1, "lyonnais"), doc(2, "medecin lyon 69003")])
    assert ids(index.search("lyon")) == [2, 1]


def test_shorter_text_then_smaller_doc_id() -> None:
    index = SearchIndex.build([doc(9, "lyon aaa"), doc(3, "lyon bbbb"), doc(5, "lyon ccc")])
    assert ids(index.search("lyon")) == [5, 9, 3]


def test_score_is_a_weighted_sum_of_the_keys(people: SearchIndex) -> None:
    # "dupont zoe" on document 1: k1 = 2, k2 = 1, k3 = 1, k4 = 2, radix 3.
    assert people.search("dupont zoe")[0] == (1, float(((2 * 3 + 1) * 3 + 1) * 3 + 2))
    # Document 2: family "dupontel", k3 = 0, k4 = 1 ("zoe").
    assert people.search("dupont zoe")[1] == (2, float(((2 * 3 + 1) * 3 + 0) * 3 + 1))
    # A missing letter: k1 = 0.
    assert people.search("cardilogie")[0] == (1, 0.0)


def test_repeated_query_words_count_once(people: SearchIndex) -> None:
    assert people.search("dupont dupont DUPONT") == people.search("dupont")


# Limits and empty cases.

def test_empty_index_and_empty_query(people: SearchIndex) -> None:
    empty = SearchIndex()
    assert len(empty) == 0
    assert empty.search("dupont") == []
    assert empty.memory_bytes() > 0
    assert SearchIndex.build([]).search("a") == []
    assert people.search("") == people.search("  ,;  ") == []
    assert people.search("dupont", limit=0) == people.search("dupont", limit=-3) == []


def test_limit_and_its_cap() -> None:
    index = SearchIndex.build(doc(i, f"lyon w{i}") for i in range(1, 1201))
    assert ids(index.search("lyon", limit=3)) == [1, 2, 3]
    assert len(index.search("lyon")) == 10
    hits = index.search("lyon", limit=5000)
    assert len(hits) == MAX_LIMIT
    assert ids(hits) == list(range(1, 1001))


def test_a_later_document_replaces_an_earlier_one_in_a_build() -> None:
    index = SearchIndex.build([doc(1, "lyon"), doc(2, "caen"), doc(1, "paris")])
    assert len(index) == 2
    assert index.search("lyon") == []
    assert ids(index.search("paris")) == [1]


def test_a_document_without_words_matches_nothing() -> None:
    index = SearchIndex.build([(1, " ", " "), (2, "", ""), doc(3, "lyon")])
    assert len(index) == 3
    assert ids(index.search("lyon")) == [3]


def test_long_queries_keep_their_order() -> None:
    # 20 words: scores beyond 16 bits.
    text = " ".join(f"w{i:02d}" for i in range(20))
    index = SearchIndex.build([doc(1, text), doc(2, text + " extra", "W00"), doc(3, "w00")])
    query = text.upper()
    expected = reference({d: (t, f) for d, t, f in [doc(1, text),
                                                     doc(2, text + " extra", "W00"),
                                                     doc(3, "w00")]}, query)
    assert index.search(query) == expected
    assert ids(expected) == [2, 1]


# Changes.

def test_upsert_is_visible_at_once(people: SearchIndex) -> None:
    index = SearchIndex.build(PEOPLE)
    index.upsert(*doc(10, "amelie medecin 75001 paris", "Dupond"))
    assert len(index) == len(PEOPLE) + 1
    assert ids(index.search("dupond")) == [10]
    assert ids(index.search("dupon paris")) == [10]
    assert index.search("dupont zoe") == people.search("dupont zoe")


def test_upsert_replaces_the_text_of_a_document() -> None:
    index = SearchIndex.build(PEOPLE)
    index.upsert(*doc(1, "zoe medecin 75001 paris", "Martin"))
    assert len(index) == len(PEOPLE)
    assert ids(index.search("dupont zoe")) == [2]  # the old words find it no longer
    assert ids(index.search("martin paris")) == [1]
    index.upsert(*doc(1, "zoe medecin 14000 caen", "Martin"))
    assert index.search("martin paris") == []
    assert ids(index.search("martin caen")) == [1]


def test_remove_is_visible_at_once_and_absent_is_a_no_op() -> None:
    index = SearchIndex.build(PEOPLE)
    index.remove(1)
    index.remove(1)
    index.remove(12345)
    assert len(index) == len(PEOPLE) - 1
    assert ids(index.search("dupont zoe")) == [2]
    index.upsert(*doc(20, "new lyon"))
    index.remove(20)
    assert index.search("new") == []
    index.upsert(*doc(1, "zoe again", "Dupont"))
    assert ids(index.search("dupont again")) == [1]


def test_changes_on_an_empty_index() -> None:
    index = SearchIndex()
    index.upsert(*doc(1, "cardiologie lyon", "Dupont"))
    index.upsert(*doc(2, "lyon"))
    assert ids(index.search("cardilogie")) == [1]
    assert ids(index.search("lyon")) == [2, 1]
    index.compact()
    assert ids(index.search("cardilogie")) == [1]
    assert ids(index.search("lyon")) == [2, 1]
    index.remove(2)
    index.compact()
    assert len(index) == 1
    assert ids(index.search("lyon")) == [1]


def test_compaction_keeps_every_answer() -> None:
    index = SearchIndex.build(PEOPLE)
    index.compact_at = 2
    current = {d: (t, f) for d, t, f in PEOPLE}
    for doc_id, text, family in [doc(7, "zoe dupont lyon"), doc(1, "moved paris", "Dupont"),
                                 doc(8, "cardiologue", "Zoeller")]:
        index.upsert(doc_id, text, family)
        current[doc_id] = (text, family)
    index.remove(3)
    del current[3]
    assert len(index) == len(current)
    assert index.memory_bytes() > 0
    for query in ("dupont", "zoe", "lyon", "cardio", "paris", "upont", "z", "moved"):
        assert index.search(query) == reference(current, query), query


def test_results_are_not_changed_by_later_changes(people: SearchIndex) -> None:
    index = SearchIndex.build(PEOPLE)
    before = index.search("lyon", limit=100)
    copy = list(before)
    index.upsert(*doc(30, "lyon"))
    index.remove(1)
    assert before == copy


def test_memory_grows_with_the_documents() -> None:
    small = SearchIndex.build(doc(i, f"w{i} lyon", "Dupont") for i in range(10))
    large = SearchIndex.build(doc(i, f"w{i} lyon", "Dupont") for i in range(10_000))
    assert large.memory_bytes() > small.memory_bytes() + 10_000 * 8


# Equality with the reference.

GENERATED = [document(i, row) for i, row in enumerate(generate_rows(1500, seed=3), start=1)]
GENERATED_INDEX = SearchIndex.build(GENERATED)
GENERATED_MAP = {d: (t, f) for d, t, f in GENERATED}


def _typed(data: st.DataObject) -> str:
    """A query as a professional types it: the starts of a document's words, maybe
    with a letter missing."""
    text = data.draw(st.sampled_from(GENERATED))[1].split()
    chosen = data.draw(st.lists(st.sampled_from(text), min_size=1, max_size=3))
    query = []
    for word in chosen:
        word = word[:data.draw(st.integers(1, len(word)))]
        if len(word) > 5 and data.draw(st.booleans()):
            at = data.draw(st.integers(0, len(word) - 1))
            word = word[:at] + word[at + 1:]
        query.append(word)
    return " ".join(query)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), limit=st.integers(1, 30))
def test_generated_directory_equals_the_reference(data: st.DataObject, limit: int) -> None:
    query = _typed(data)
    assert GENERATED_INDEX.search(query, limit) == reference(GENERATED_MAP, query, limit)


WORDS = st.text("abcd", min_size=1, max_size=7)
TEXTS = st.lists(WORDS, max_size=6).map(" ".join)
DOCUMENTS = st.tuples(st.integers(1, 40), TEXTS, st.lists(WORDS, max_size=2).map(" ".join))
OPERATIONS = st.lists(st.one_of(st.tuples(st.just("upsert"), DOCUMENTS),
                                st.tuples(st.just("remove"), st.integers(1, 40))),
                      max_size=12)
QUERIES = st.lists(st.one_of(WORDS, st.sampled_from(["abcda", "bcdab", "aaaaa", "abcd*",
                                                     "a b", "dcba.", "é"])),
                   min_size=1, max_size=3).map(" ".join)


def _as_document(value: tuple[int, str, str]) -> Document:
    doc_id, text, family = value
    # The family's words are usually, but not always, words of the text.
    return doc_id, spaced(text.split()), spaced(family.split())


@settings(max_examples=300, deadline=None)
@given(documents=st.lists(DOCUMENTS, max_size=30), operations=OPERATIONS,
       queries=st.lists(QUERIES, min_size=1, max_size=4), limit=st.integers(1, 6),
       compact_at=st.integers(1, 8),
       tune=st.sampled_from([(64, 16, 64), (0, 1, 0), (10**9, 10**9, 3)]))
def test_random_corpora_and_changes_equal_the_reference(
        documents: list[tuple[int, str, str]], operations: list[tuple[str, object]],
        queries: list[str], limit: int, compact_at: int,
        tune: tuple[int, int, int]) -> None:
    with tuning(*tune):
        built = [_as_document(d) for d in documents]
        index = SearchIndex.build(built)
        index.compact_at = compact_at
        current = {d: (t, f) for d, t, f in built}
        for query in queries:
            assert index.search(query, limit) == reference(current, query, limit)
        for operation, value in operations:
            if operation == "upsert":
                assert isinstance(value, tuple)
                doc_id, text, family = _as_document(value)
                index.upsert(doc_id, text, family)
                current[doc_id] = (text, family)
            else:
                assert isinstance(value, int)
                index.remove(value)
                current.pop(value, None)
            assert len(index) == len(current)
            for query in queries:
                assert index.search(query, limit) == reference(current, query, limit)
