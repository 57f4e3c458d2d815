"""The directory store on SQLite and PostgreSQL: import as a difference, get, search.

PostgreSQL: ``MSSANTE_TEST_POSTGRES_URL`` (default the local trust-auth server); each
test gets a fresh schema, dropped afterwards. When the server cannot be reached the
PostgreSQL cases skip, unless ``MSSANTE_REQUIRE_POSTGRES`` is set: then they fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from mssante.directory.extract import ExtractRow
from mssante.directory.generate import generate_rows
from mssante.directory.store import (
    DirectoryStore,
    ImportReport,
    normalise,
    open_directory,
    search_text,
    words,
)
from tests.conftest import POSTGRES_URL, postgres_schema

COUNT = 2000

GENERATED = list(generate_rows(COUNT, seed=7))
_TEMPLATE = next(r for r in GENERATED if r.family_name and r.skill_label)


def person(address: str, family: str, given: str, *, skill: str = "Cardiologie",
           city: str = "69003 LYON") -> ExtractRow:
    return replace(_TEMPLATE, address=address, family_name=family, given_name=given,
                   profession_label="Médecin", skill_label=skill, routing_line=city,
                   postal_code=city.split()[0], department=city[:2], legal_name="",
                   trade_name="", service="")


KNOWN = [
    person("zoe.dupont@medecin.mssante.fr", "Dupont", "Zoé"),
    person("zoe.dupontel@medecin.mssante.fr", "Dupontel", "Zoé"),
    person("yves.bernard@medecin.mssante.fr", "Bernard", "Dupont-Yves", skill="Pédiatrie"),
    person("irene.lefevre-x@medecin.mssante.fr", "Lefèvre", "Irène", skill="Néphrologie",
           city="14000 CAEN"),
    person("joel.berenger@medecin.mssante.fr", "Bérenger", "Joël", skill="Psychiatrie",
           city="13001 MARSEILLE"),
]
ROWS = GENERATED + KNOWN


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def directory(request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[DirectoryStore]:
    if request.param == "sqlite":
        store = await open_directory(f"sqlite:///{tmp_path / 'directory.sqlite3'}")
        yield store
        await store.close()
        return
    async with postgres_schema() as schema:
        store = await open_directory(POSTGRES_URL, schema=schema)
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture
async def loaded(directory: DirectoryStore) -> DirectoryStore:
    await directory.import_extract(ROWS)
    return directory


def test_normalise_strips_accents_and_case() -> None:
    assert normalise("Lefèvre ÉLODIE Noël") == "lefevre elodie noel"
    assert search_text(KNOWN[3]).startswith(" lefevre irene medecin nephrologie 14000 caen ")


async def test_import_then_count_and_get(directory: DirectoryStore) -> None:
    assert directory.dialect in ("sqlite", "postgresql")
    seen: list[int] = []
    report = await directory.import_extract(ROWS, progress=seen.append, batch=500)
    assert report == ImportReport(created=len(ROWS), changed=0, removed=0, unchanged=0)
    assert seen == [500, 1000, 1500, 2000, len(ROWS)]
    assert await directory.count() == len(ROWS)
    for row in (ROWS[0], ROWS[1234], KNOWN[3]):
        assert await directory.get(row.address) == row
    assert await directory.get(KNOWN[3].address.upper()) == KNOWN[3]
    assert await directory.get("nobody@medecin.mssante.fr") is None


async def test_second_import_applies_the_difference(loaded: DirectoryStore) -> None:
    changed = [replace(row, given_name=row.given_name + "-Marie", digitization=not
                       row.digitization) for row in ROWS[10:40]]
    added = list(generate_rows(COUNT + 25, seed=7))[COUNT:]
    new_rows = ROWS[:10] + changed + ROWS[40:1900] + added
    seen: list[int] = []
    report = await loaded.import_extract(new_rows, progress=seen.append)
    assert report == ImportReport(created=25, changed=30, removed=len(ROWS) - 1900,
                                  unchanged=1870)
    assert seen == [len(new_rows)]
    assert await loaded.count() == len(new_rows)
    assert await loaded.get(ROWS[15].address) == changed[5]
    assert await loaded.get(ROWS[1950].address) is None
    assert await loaded.get(added[0].address) == added[0]
    # The changed values are searchable, the removed rows are not.
    assert [hit.row for hit in await loaded.search("dupont zoe")] == []
    assert (await loaded.import_extract(new_rows)
            == ImportReport(created=0, changed=0, removed=0, unchanged=len(new_rows)))


async def test_duplicate_address_changes_nothing(loaded: DirectoryStore) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        await loaded.import_extract([KNOWN[0], replace(KNOWN[1], address=KNOWN[0].address)])
    assert await loaded.count() == len(ROWS)


async def addresses(store: DirectoryStore, query: str) -> list[str]:
    return [hit.row.address for hit in await store.search(query)]


async def test_search_by_family_name_exact_first(loaded: DirectoryStore) -> None:
    hits = await loaded.search("dupont")
    found = [hit.row.address for hit in hits]
    assert found[0] == KNOWN[0].address  # exact family name
    assert KNOWN[1].address in found  # Dupontel: a prefix of the family name
    assert KNOWN[2].address in found  # the given name only: last
    assert found.index(KNOWN[1].address) < found.index(KNOWN[2].address)
    assert hits[0].score > hits[found.index(KNOWN[1].address)].score
    assert all(b.score <= a.score for a, b in pairwise(hits))


async def test_search_family_and_profession_and_city(loaded: DirectoryStore) -> None:
    assert (await addresses(loaded, "dupont cardio lyon"))[:2] == [
        KNOWN[0].address, KNOWN[1].address]
    hits = await loaded.search("dupont pediatrie")
    rank = [hit.row.address for hit in hits].index(KNOWN[2].address)
    # Dupont is only a given name there: after every Dupont by family name.
    assert all(hit.row.family_name == "Dupont" for hit in hits[:rank])
    assert all(hit.row.family_name != "Dupont" for hit in hits[rank:])
    assert await addresses(loaded, "berenger marseille") == [KNOWN[4].address]
    assert KNOWN[3].address in await addresses(loaded, "lefevre caen")
    assert await addresses(loaded, "dupont marseille") == []


async def test_search_ignores_accents_and_case(loaded: DirectoryStore) -> None:
    expected = await addresses(loaded, "lefevre irene")
    assert expected[0] == KNOWN[3].address
    for query in ("Lefèvre Irène", "LEFÈVRE irene", "lefévre IRÉNE", "  lefevre   irene "):
        assert await addresses(loaded, query) == expected
    assert await addresses(loaded, "Bérenger Joël") == [KNOWN[4].address]


async def test_search_tolerates_one_missing_letter(loaded: DirectoryStore) -> None:
    assert KNOWN[0].address in await addresses(loaded, "dupon zoe")  # a prefix anyway
    assert KNOWN[0].address in await addresses(loaded, "dpont zoe")
    assert KNOWN[0].address in await addresses(loaded, "cardilogie zoe lyon")
    assert KNOWN[4].address in await addresses(loaded, "berenge psychitrie")
    # Only one letter: two missing do not match; short words need their letters.
    assert await addresses(loaded, "brnger psychitrie") == []
    assert await addresses(loaded, "dpnt zoe") == []


async def test_search_limit(loaded: DirectoryStore) -> None:
    assert len(await loaded.search("medecin", limit=5)) == 5
    assert len(await loaded.search("medecin")) == 20
    assert await loaded.search("medecin", limit=0) == []


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "%", "_", "'", '"', "*", "-", "%%",
                                   "' --", "*:*", "()", '"*"'])
async def test_search_without_words_returns_nothing(loaded: DirectoryStore,
                                                    query: str) -> None:
    assert await loaded.search(query) == []


@pytest.mark.parametrize(("query", "plain"), [
    ("dupont%", "dupont"), ("dup%nt", "dup nt"), ("dup_nt", "dup nt"), ("dupont'", "dupont"),
    ('dupont"', "dupont"), ("dupont*", "dupont"), ("dupont -zoe", "dupont zoe"),
    ("dupont AND zoe", "dupont and zoe"), ("dupont NEAR zoe", "dupont near zoe"),
    ("NEAR(dupont zoe)", "near dupont zoe"), ("d'upont", "d upont"),
    ("zoe.dupont@medecin", "zoe dupont medecin"), ("' OR 1=1 --", "or 1 1"),
    ('"dupont" OR "zoe"', "dupont or zoe"),
])
async def test_search_special_characters_are_plain_text(loaded: DirectoryStore,
                                                        query: str, plain: str) -> None:
    found = await addresses(loaded, query)  # never raises
    assert found == await addresses(loaded, plain)
    assert len(await loaded.search(query, limit=COUNT)) < COUNT // 2  # not everything


async def test_operators_are_words(loaded: DirectoryStore) -> None:
    # "AND" is the word "and": nobody has it, so nothing matches.
    assert await addresses(loaded, "dupont AND zoe") == []
    assert await addresses(loaded, "dupont -zoe") == await addresses(loaded, "dupont zoe")


async def test_reopen_keeps_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'again.sqlite3'}"
    store = await open_directory(url)
    await store.import_extract(KNOWN)
    await store.close()
    store = await open_directory(url)
    try:
        assert await store.count() == len(KNOWN)
        assert await addresses(store, "berenger") == [KNOWN[4].address]
    finally:
        await store.close()


@pytest.mark.parametrize("query", ["d zoe", "a mar", "z", "a b c dup", "x y", "dup e",
                                   "e dup card", "d'upont", "a martin"])
async def test_search_short_words_do_not_crash(loaded: DirectoryStore, query: str) -> None:
    # SQLite 3.40's FTS5 trigram LIKE crashes the process on a pattern of fewer than three
    # characters combined with another: short words must never reach the trigram table.
    hits = await loaded.search(query)
    query_words = words(query)
    if all(len(w) < 5 for w in query_words):  # no approximate matching: check every hit
        for hit in hits:
            indexed = search_text(hit.row).split()
            assert all(any(t.startswith(w) for t in indexed) for w in query_words), hit.row
