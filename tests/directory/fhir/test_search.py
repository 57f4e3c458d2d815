"""FHIR search over HTTP on both engines: every parameter and modifier compared with
the oracle's answer, paging to exhaustion, _count, _include, the liste rouge, and the
400s as OperationOutcomes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import text

from mssante.directory import store as directory_store
from mssante.directory.fhir import queries
from mssante.directory.fhir.params import (
    Criterion,
    Search,
    StringCriterion,
    Token,
    TokenCriterion,
)
from mssante.directory.model import Organisation
from mssante.directory.store import DirectoryStore, open_directory
from tests.conftest import POSTGRES_URL, postgres_schema
from tests.directory.fhir.conftest import (
    CABINET,
    CHU,
    CHU_DOMAIN,
    CLINIC,
    DOMAIN,
    HIDDEN,
    IRENE,
    JOEL,
    TWIN_A,
    TWIN_B,
    ZOE,
    ZOE2,
    Oracle,
    address_matches,
    client_of,
    collect,
    diagnostics,
    fetch,
    load,
    string_matches,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

Criteria = list[tuple[str, str, list[str]]]  # (name, modifier, alternatives)


def url(resource: str, criteria: Criteria, **extra: str) -> str:
    items = [(f"{name}:{modifier}" if modifier else name, ",".join(values))
             for name, modifier, values in criteria]
    return f"/fhir/{resource}?{urlencode([*items, *extra.items()])}"


def city(oracle: Oracle, resource: str, fhir_id: str) -> tuple[str, str, str]:
    """The stored (city, routing line, postal code) of the resource's organisation."""
    row = oracle.structure(resource, fhir_id)
    assert row is not None
    organisation = Organisation(id_nat_st=row.structure_id, id_type=row.structure_id_type,
                                routing_line=row.routing_line, postal_code=row.postal_code)
    return organisation.city, row.routing_line, row.postal_code


def matches(oracle: Oracle, resource: str, fhir_id: str, name: str, modifier: str,
            value: str) -> bool:
    """One criterion on one resource, in plain Python."""
    if name == "mailbox-mss":
        return any(address_matches(a, value, modifier)
                   for a in oracle.telecoms(resource, fhir_id))
    if name == "mailbox-mss-type":
        return value in oracle.types(resource, fhir_id)
    if name == "address-city":
        town, line, postal = city(oracle, resource, fhir_id)
        if modifier == "exact":
            return line in (value, f"{postal} {value}")
        return string_matches(town, value, modifier)
    if name == "address-postalcode":
        postal = city(oracle, resource, fhir_id)[2]
        return {"exact": postal == value, "contains": value in postal}.get(
            modifier, postal.startswith(value))
    if resource == "Organization":
        row = oracle.organisations[fhir_id]
        return (string_matches(row.legal_name, value, modifier)
                or trade_name_matches(row.trade_name, value, modifier))
    row = oracle.practitioners[fhir_id]
    stored = {"family": [row.family_name], "given": [row.given_name],
              "name": [row.family_name, row.given_name]}[name]
    return any(string_matches(s, value, modifier) for s in stored)


def trade_name_matches(stored: str, value: str, modifier: str) -> bool:
    return bool(stored) and string_matches(stored, value, modifier)


def expected(oracle: Oracle, resource: str, criteria: Criteria) -> set[str]:
    return {fhir_id for fhir_id in oracle.ids(resource)
            if all(any(matches(oracle, resource, fhir_id, name, modifier, value)
                       for value in values) for name, modifier, values in criteria)}


CASES: list[tuple[str, Criteria]] = [
    ("Practitioner", [("family", "", ["dup"])]),
    ("Practitioner", [("family", "", ["DUPONT"])]),
    ("Practitioner", [("family", "", ["lefevre"])]),  # accents do not matter
    ("Practitioner", [("family", "", ["LÉFÈVRE"])]),
    ("Practitioner", [("family", "exact", ["Dupont"])]),
    ("Practitioner", [("family", "exact", ["dupont"])]),  # exact is case-sensitive
    ("Practitioner", [("family", "exact", ["Lefèvre"])]),
    ("Practitioner", [("family", "contains", ["pon"])]),
    ("Practitioner", [("family", "contains", ["EVR"])]),
    ("Practitioner", [("given", "", ["zo"])]),
    ("Practitioner", [("given", "", ["irène"])]),
    ("Practitioner", [("given", "contains", ["lph"])]),
    ("Practitioner", [("given", "exact", ["Zoé"])]),
    ("Practitioner", [("name", "", ["jum"])]),
    ("Practitioner", [("name", "", ["dup", "ber"])]),
    ("Practitioner", [("name", "contains", ["ene"])]),
    ("Practitioner", [("name", "exact", ["Alpha"])]),
    ("Practitioner", [("family", "", ["dup"]), ("given", "", ["zo"])]),
    ("Practitioner", [("family", "", ["d"]), ("family", "", ["du"])]),
    ("Practitioner", [("mailbox-mss", "", ["zoe.dup"])]),
    ("Practitioner", [("mailbox-mss", "", ["ZOE.DUPONT@"])]),
    ("Practitioner", [("mailbox-mss", "exact", [f"Zoe.Dupont@{DOMAIN}"])]),
    ("Practitioner", [("mailbox-mss", "contains", [f"@{DOMAIN}"])]),
    ("Practitioner", [("mailbox-mss", "contains", ["upont", "jumeau"])]),
    ("Practitioner", [("mailbox-mss", "contains", ["mssante.fr"])]),  # every address
    ("Practitioner", [("mailbox-mss", "contains", ["ie."]), ("family", "", ["m"])]),
    ("Practitioner", [("mailbox-mss", "", ["m"])]),
    ("Practitioner", [("mailbox-mss", "", ["m", "zoe.dup"]),
                      ("mailbox-mss-type", "", ["PER"])]),
    ("Practitioner", [("mailbox-mss", "", ["irene.secret"])]),  # liste rouge
    ("Practitioner", [("mailbox-mss", "exact", [f"direction@{CHU_DOMAIN}"])]),
    ("Practitioner", [("mailbox-mss-type", "", ["CAB"])]),
    ("Practitioner", [("mailbox-mss-type", "", ["ORG"])]),
    ("Practitioner", [("mailbox-mss-type", "", ["PER"]), ("family", "", ["jumeau"])]),
    ("Practitioner", [("mailbox-mss-type", "", ["CAB"]), ("mailbox-mss", "", ["cabinet"])]),
    ("Organization", [("name", "", ["centre hosp"])]),
    ("Organization", [("name", "", ["clinique"])]),
    ("Organization", [("name", "contains", ["joseph"])]),
    ("Organization", [("name", "exact", ["CABINET LEFÈVRE"])]),
    ("Organization", [("name", "exact", ["cabinet lefevre"])]),
    ("Organization", [("name", "", ["etoile du"])]),  # the enseigne, accents aside
    ("Organization", [("name", "", ["HOPITAL EDOUARD"])]),
    ("Organization", [("name", "contains", ["douard her"])]),
    ("Organization", [("name", "contains", ["ique", "sud"])]),
    ("Organization", [("name", "exact", ["Étoile du Sud"])]),
    ("Organization", [("name", "exact", ["etoile du sud"])]),
    ("Organization", [("address-city", "", ["lyo"])]),
    ("Organization", [("address-city", "", ["saint"])]),
    ("Organization", [("address-city", "exact", ["CAEN"])]),
    ("Organization", [("address-city", "contains", ["ille"])]),
    ("Organization", [("address-postalcode", "", ["69"])]),
    ("Organization", [("address-postalcode", "exact", ["14000"])]),
    ("Organization", [("address-postalcode", "contains", ["000"])]),
    ("Organization", [("mailbox-mss", "", ["cardio"])]),
    ("Organization", [("mailbox-mss", "", ["direction@"])]),  # liste rouge
    ("Organization", [("mailbox-mss", "contains", [CHU_DOMAIN])]),
    ("Organization", [("mailbox-mss", "contains", ["mss"])]),
    ("Organization", [("mailbox-mss", "", [f"zoe.dupont@{DOMAIN}"])]),  # a PER: not here
    ("Organization", [("mailbox-mss-type", "", ["APP"])]),
    ("Organization", [("mailbox-mss-type", "", ["ORG", "APP"]),
                      ("address-city", "", ["lyon"])]),
    ("Organization", [("mailbox-mss-type", "", ["PER"])]),
    ("PractitionerRole", [("address-city", "", ["caen"])]),
    ("PractitionerRole", [("address-city", "exact", ["MARSEILLE"])]),
    ("PractitionerRole", [("address-postalcode", "", ["130"])]),
    ("PractitionerRole", [("mailbox-mss", "", ["zoe."])]),
    ("PractitionerRole", [("mailbox-mss", "contains", ["secret", "cabinet.jumeau"])]),
    ("PractitionerRole", [("mailbox-mss", "contains", [".fr"])]),
    ("PractitionerRole", [("mailbox-mss", "", ["ma", "zoe."])]),
    ("PractitionerRole", [("mailbox-mss-type", "", ["CAB"])]),
    ("PractitionerRole", [("mailbox-mss-type", "", ["PER"]),
                          ("address-postalcode", "exact", ["69003"])]),
]


@pytest.mark.parametrize(("resource", "criteria"), CASES,
                         ids=[url(r, c)[6:] for r, c in CASES])
async def test_search_matches_the_oracle(client: httpx.AsyncClient, oracle: Oracle,
                                         resource: str, criteria: Criteria) -> None:
    found = await collect(client, url(resource, criteria, _count="7"))
    assert set(found.ids) == expected(oracle, resource, criteria)


@pytest.mark.parametrize("dense", [0, 10**9], ids=["walked", "read-whole"])
@pytest.mark.parametrize(("resource", "criteria"), CASES,
                         ids=[url(r, c)[6:] for r, c in CASES])
async def test_dense_searches_match_the_oracle(client: httpx.AsyncClient, oracle: Oracle,
                                               monkeypatch: pytest.MonkeyPatch, resource: str,
                                               criteria: Criteria, dense: int) -> None:
    """With TOTAL_LIMIT at 3 nearly every search is "dense": subqueries are not listed,
    totals are omitted, pages are walked in key order; the mailboxes of a dense
    criterion are either read whole or tested row by row (the DENSE limits). The
    answers stay the same."""
    monkeypatch.setattr(queries, "TOTAL_LIMIT", 3)
    for limit in ("DENSE_LIMIT", "DENSE_LIMIT_PG", "TRIGRAM_DENSE"):
        monkeypatch.setattr(queries, limit, dense)
    found = await collect(client, url(resource, criteria, _count="4"))
    assert set(found.ids) == expected(oracle, resource, criteria)


async def test_total_is_omitted_beyond_the_limit(client: httpx.AsyncClient, oracle: Oracle,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = expected(oracle, "Practitioner", [("family", "", ["m"])])
    monkeypatch.setattr(queries, "TOTAL_LIMIT", len(wanted) - 1)
    bundle = await fetch(client, "/fhir/Practitioner?family=m")
    assert "total" not in bundle and len(bundle["entry"]) == 50
    monkeypatch.setattr(queries, "TOTAL_LIMIT", len(wanted))
    assert (await fetch(client, "/fhir/Practitioner?family=m"))["total"] == len(wanted)
    # _count=0 asks for the total alone: counted even without a countable criterion.
    summary = await fetch(client, "/fhir/Practitioner?mailbox-mss-type=CAB&_count=0")
    assert summary["total"] == len(expected(oracle, "Practitioner",
                                            [("mailbox-mss-type", "", ["CAB"])]))


async def test_known_answers(client: httpx.AsyncClient) -> None:
    """A few answers written out, so that the oracle is checked too."""
    async def ids(resource: str, criteria: Criteria) -> set[str]:
        return set((await collect(client, url(resource, criteria))).ids)

    assert {ZOE.nat, ZOE2.nat} <= await ids("Practitioner", [("family", "", ["dupont"])])
    assert IRENE.nat in await ids("Practitioner", [("family", "", ["LEFEVRE"])])
    assert await ids("Practitioner", [("mailbox-mss", "", ["zoe.dupont"])]) == {ZOE.nat,
                                                                               ZOE2.nat}
    assert await ids("Practitioner", [("mailbox-mss", "", ["irene.secret"])]) == set()
    assert await ids("Organization", [("mailbox-mss", "exact",
                                       [f"direction@{CHU_DOMAIN}"])]) == set()
    assert await ids("PractitionerRole", [("mailbox-mss", "", ["cabinet.dupont"])]) == {
        f"{ZOE.nat}-{CABINET.st}"}
    assert TWIN_A.nat not in await ids("Practitioner", [("mailbox-mss-type", "", ["CAB"])])


TOKEN_CASES: list[tuple[str, str, set[str]]] = [
    ("Practitioner", f"identifier=urn:oid:1.2.250.1.71.4.2.1|{ZOE.nat}", {ZOE.nat}),
    ("Practitioner", f"identifier=https://rpps.esante.gouv.fr|{ZOE.pp_id}", {ZOE.nat}),
    ("Practitioner", f"identifier=https://adeli.esante.gouv.fr|{ZOE.pp_id}", set()),
    ("Practitioner", f"identifier=https://adeli.esante.gouv.fr|{JOEL.pp_id}", {JOEL.nat}),
    ("Practitioner", f"identifier={JOEL.nat}", {JOEL.nat}),
    ("Practitioner", f"identifier={ZOE.pp_id}", {ZOE.nat}),
    ("Practitioner", f"identifier={TWIN_A.pp_id}", {TWIN_A.nat, TWIN_B.nat}),
    ("Practitioner", f"identifier=|{ZOE.nat}", set()),
    ("Practitioner", f"identifier=http://example.org|{ZOE.nat}", set()),
    ("Practitioner", f"identifier={ZOE.nat},{IRENE.nat}", {ZOE.nat, IRENE.nat}),
    ("Practitioner", f"_id={ZOE.nat},{JOEL.nat},nobody", {ZOE.nat, JOEL.nat}),
    ("Practitioner", f"_id={ZOE.nat}&family=lef", set()),
    ("Organization", f"identifier=urn:oid:1.2.250.1.71.4.2.2|{CHU.st}", {CHU.st}),
    ("Organization", f"identifier=https://finess.esante.gouv.fr|{CHU.st[1:]}", {CHU.st}),
    ("Organization", f"identifier=https://sirene.fr|{CABINET.st[1:]}", {CABINET.st}),
    ("Organization", f"identifier=https://sirene.fr|{CHU.st[1:]}", set()),
    ("Organization", f"identifier={CLINIC.st[1:]}", {CLINIC.st}),
    ("Organization", f"identifier={CABINET.st}", {CABINET.st}),
    ("Organization", f"_id={CHU.st},{CLINIC.st}", {CHU.st, CLINIC.st}),
    ("Organization", "mailbox-mss-type=https://mos.esante.gouv.fr/NOS/JDV_J139-TypeBAL-RASS"
                     f"/FHIR/JDV-J139-TypeBAL-RASS|APP&_id={CHU.st}", {CHU.st}),
    ("Organization", f"mailbox-mss-type=http://example.org|APP&_id={CHU.st}", set()),
    ("PractitionerRole", f"_id={ZOE.nat}-{CHU.st},{ZOE.nat}-{CLINIC.st},nodash",
     {f"{ZOE.nat}-{CHU.st}"}),
    ("PractitionerRole", f"practitioner=Practitioner/{ZOE.nat}",
     {f"{ZOE.nat}-{CHU.st}", f"{ZOE.nat}-{CABINET.st}"}),
    ("PractitionerRole", f"practitioner={IRENE.nat}&organization=Organization/{CHU.st}",
     {f"{IRENE.nat}-{CHU.st}"}),  # the role exists; its only mailbox is hidden
    ("PractitionerRole", f"organization=http://elsewhere/fhir/Organization/{CABINET.st}",
     {f"{ZOE.nat}-{CABINET.st}", f"{IRENE.nat}-{CABINET.st}",
      f"{TWIN_A.nat}-{CABINET.st}"}),
]


@pytest.mark.parametrize(("resource", "query", "wanted"), TOKEN_CASES,
                         ids=[f"{r}?{q}" for r, q, _ in TOKEN_CASES])
async def test_tokens_and_references(client: httpx.AsyncClient, resource: str, query: str,
                                     wanted: set[str]) -> None:
    found = await collect(client, f"/fhir/{resource}?{query}")
    assert set(found.ids) == wanted


@pytest.mark.parametrize("resource", ["Practitioner", "Organization", "PractitionerRole"])
async def test_paging_visits_everything_once(client: httpx.AsyncClient, oracle: Oracle,
                                             resource: str) -> None:
    """No criterion: the whole directory, 50 a page, through ``next`` to the end."""
    found = await collect(client, f"/fhir/{resource}")
    assert sorted(found.ids) == sorted(oracle.ids(resource))
    assert found.pages == -(-len(found.ids) // 50)
    assert found.total is None  # no driving criterion and more than a page: not counted


async def test_count(client: httpx.AsyncClient, oracle: Oracle) -> None:
    wanted = expected(oracle, "Practitioner", [("family", "", ["m"])])
    assert 100 < len(wanted) < 1000
    for count, size in (("1", 1), ("13", 13), ("50", 50), ("51", 50), ("100000", 50)):
        bundle = await fetch(client, f"/fhir/Practitioner?family=m&_count={count}")
        assert len(bundle["entry"]) == size
        assert bundle["total"] == len(wanted)
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert f"_count={size}" in links["self"] and f"_count={size}" in links["next"]
    summary = await fetch(client, "/fhir/Practitioner?family=m&_count=0")
    assert summary["total"] == len(wanted) and "entry" not in summary
    assert [link["relation"] for link in summary["link"]] == ["self"]
    found = await collect(client, "/fhir/Practitioner?family=m&_count=13")
    assert set(found.ids) == wanted and found.pages == -(-len(wanted) // 13)


async def test_links_are_absolute_and_repeat_the_criteria(client: httpx.AsyncClient) -> None:
    bundle = await fetch(client, "/fhir/Practitioner?family=m&given:contains=ric&_count=2"
                                 "&_format=json")
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert links["self"] == ("http://directory.test/fhir/Practitioner?family=m"
                             "&given%3Acontains=ric&_count=2")
    assert links["next"].startswith(links["self"] + "&_cursor=")
    page2 = await fetch(client, links["next"])
    assert {link["relation"]: link["url"] for link in page2["link"]}["self"] == links["next"]
    assert page2["total"] == bundle["total"]
    assert not {e["resource"]["id"] for e in page2["entry"]} & {
        e["resource"]["id"] for e in bundle["entry"]}


async def test_last_page_has_no_next(client: httpx.AsyncClient, oracle: Oracle) -> None:
    wanted = expected(oracle, "Practitioner", [("family", "", ["dupont"])])
    bundle = await fetch(client, f"/fhir/Practitioner?family=dupont&_count={len(wanted)}")
    assert len(bundle["entry"]) == bundle["total"] == len(wanted)
    assert [link["relation"] for link in bundle["link"]] == ["self"]
    empty = await fetch(client, "/fhir/Practitioner?family=zzzzz")
    assert empty["total"] == 0 and "entry" not in empty


async def test_post_search(client: httpx.AsyncClient) -> None:
    get = await fetch(client, "/fhir/Practitioner?family=dupont&given=zo")
    posted = await fetch(client, "/fhir/Practitioner/_search?family=dupont", method="POST",
                         content="given=zo",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert posted["entry"] == get["entry"]
    assert posted["total"] == get["total"]
    self_link = {link["relation"]: link["url"] for link in posted["link"]}["self"]
    assert self_link == "http://directory.test/fhir/Practitioner?family=dupont&given=zo&_count=50"
    outcome = await fetch(client, "/fhir/Practitioner/_search", 415, method="POST",
                          content='{"family": "x"}',
                          headers={"content-type": "application/json"})
    assert "form" in diagnostics(outcome)
    assert (await fetch(client, "/fhir/Organization/_search?name=clinique"))["type"] == (
        "searchset")


async def test_include(client: httpx.AsyncClient, oracle: Oracle) -> None:
    base = f"/fhir/PractitionerRole?organization={CABINET.st}"
    both = await collect(client, base + "&_include=PractitionerRole:practitioner"
                                        "&_include=PractitionerRole:organization")
    assert sorted(both.included) == sorted(
        [f"Practitioner/{p}" for p in (ZOE.nat, IRENE.nat, TWIN_A.nat)]
        + [f"Organization/{CABINET.st}"])
    only = await collect(client, base + "&_include=PractitionerRole:organization:Organization")
    assert only.included == [f"Organization/{CABINET.st}"]
    none = await collect(client, base)
    assert none.included == [] and sorted(none.ids) == sorted(both.ids)
    # Included resources are complete, with their telecoms (liste rouge dropped).
    bundle = await fetch(client, f"/fhir/PractitionerRole?practitioner={IRENE.nat}"
                                 "&_include=PractitionerRole:practitioner")
    modes = [e["search"]["mode"] for e in bundle["entry"]]
    assert modes == ["match", "match", "include"]
    assert bundle["total"] == 2
    included = bundle["entry"][-1]["resource"]
    assert [t["value"] for t in included["telecom"]] == [f"irene.lefevre@{DOMAIN}"]
    # Over several pages, each page includes what its own roles refer to.
    paged = await collect(client, "/fhir/PractitionerRole?address-city=caen&_count=3"
                                  "&_include=PractitionerRole:organization")
    wanted = expected(oracle, "PractitionerRole", [("address-city", "", ["caen"])])
    assert set(paged.ids) == wanted
    assert {i.partition("/")[2] for i in paged.included} == {i.partition("-")[2]
                                                             for i in wanted}


async def test_liste_rouge_is_never_served(client: httpx.AsyncClient, oracle: Oracle) -> None:
    for address in sorted(HIDDEN):
        for resource in ("Practitioner", "Organization", "PractitionerRole"):
            for modifier in ("", ":exact", ":contains"):
                bundle = await fetch(client, f"/fhir/{resource}?mailbox-mss{modifier}="
                                             f"{address}")
                assert bundle["total"] == 0, (resource, address)
    # collect() checks every telecom of every page against HIDDEN.
    await collect(client, f"/fhir/Practitioner?mailbox-mss:contains=@{DOMAIN}")
    await collect(client, f"/fhir/Organization?mailbox-mss:contains=@{CHU_DOMAIN}")
    await collect(client, f"/fhir/PractitionerRole?practitioner={IRENE.nat},{TWIN_A.nat}")


BAD: list[tuple[str, int, str]] = [
    ("/fhir/Practitioner?birthdate=2000-01-01", 400, "birthdate"),
    ("/fhir/Practitioner?address-city=lyon", 400, "address-city"),
    ("/fhir/Organization?family=x", 400, "family"),
    ("/fhir/Practitioner?family:missing=true", 400, ":missing"),
    ("/fhir/Practitioner?family:above=x", 400, ":above"),
    ("/fhir/Practitioner?identifier:of-type=x", 400, ":of-type"),
    ("/fhir/Practitioner?_count=-1", 400, "_count"),
    ("/fhir/Practitioner?_count=ten", 400, "_count"),
    ("/fhir/Practitioner?_cursor=x", 400, "_cursor"),
    ("/fhir/Practitioner?_sort=family", 400, "_sort"),
    ("/fhir/Practitioner?_summary=count", 400, "_summary"),
    ("/fhir/Practitioner?_include=PractitionerRole:practitioner", 400, "_include"),
    ("/fhir/PractitionerRole?_include=PractitionerRole:endpoint", 400, "endpoint"),
    ("/fhir/PractitionerRole?_revinclude=Practitioner:x", 400, "_revinclude"),
    ("/fhir/PractitionerRole?practitioner=Organization/1", 400, "Practitioner"),
    ("/fhir/PractitionerRole?practitioner.family=x", 400, "practitioner.family"),
    ("/fhir/Practitioner?family=%2A%2A", 400, "no letter or digit"),
    ("/fhir/Practitioner?mailbox-mss=%20", 400, "mailbox-mss"),
    ("/fhir/Practitioner?_format=xml", 406, "application/fhir+json"),
]


@pytest.mark.parametrize(("path", "status", "named"), BAD, ids=[b[0][6:] for b in BAD])
async def test_bad_searches_are_operation_outcomes(client: httpx.AsyncClient, path: str,
                                                   status: int, named: str) -> None:
    outcome = await fetch(client, path, status)
    assert named in diagnostics(outcome)


@pytest.mark.parametrize("query", [
    "mailbox-mss=%25", "mailbox-mss:contains=___", "mailbox-mss:contains=%25%25%25",
    "mailbox-mss:exact=%25", "family=' OR 1=1 --", "mailbox-mss='%3B--",
    "mailbox-mss:contains=%5C%5C%5C%5C%5C%5C", "family:exact=%25%25x",
])
async def test_characters_of_sql_and_like_are_plain(client: httpx.AsyncClient,
                                                    query: str) -> None:
    bundle = await fetch(client, f"/fhir/Practitioner?{query}")
    assert bundle["total"] == 0, query


# Substring searches and the trigram tables ------------------------------------------------

def _criterion(name: str, modifier: str, values: list[str]) -> Criterion:
    if name == "mailbox-mss-type":
        return TokenCriterion(name, tuple(Token(None, v) for v in values))
    return StringCriterion(name, modifier, tuple(values))


async def _search_directly(store: DirectoryStore, resource: str, criteria: Criteria) -> set[str]:
    """Every page of a search through ``queries.search`` itself, bypassing the
    parameters' checks (which refuse ``:contains`` values under three characters)."""
    found: set[str] = set()
    cursor: int | None = None
    while True:
        query = Search(resource, tuple(_criterion(*c) for c in criteria), 7, cursor,
                       frozenset(), ())
        async with store.engine.connect() as conn:
            result = await queries.search(conn, query)
        found.update(view.fhir_id for view in result.matches)
        if result.next_cursor is None:
            return found
        cursor = result.next_cursor


SHORT: list[tuple[str, Criteria]] = [
    ("Practitioner", [("mailbox-mss", "contains", ["z"])]),
    ("Practitioner", [("mailbox-mss", "contains", ["zo"]), ("family", "", ["dup"])]),
    ("Practitioner", [("mailbox-mss", "contains", ["e."]), ("mailbox-mss-type", "", ["CAB"])]),
    ("Practitioner", [("mailbox-mss", "contains", ["u", "jumeau"]), ("given", "", ["a"])]),
    ("Practitioner", [("mailbox-mss", "contains", ["a%b", "__e", "%%z"]),
                      ("family", "", ["j"])]),
    ("Practitioner", [("mailbox-mss", "contains", ["zo_", "e.d%"])]),
    ("Organization", [("mailbox-mss", "contains", ["dm"]), ("address-city", "", ["lyon"])]),
    ("Organization", [("name", "contains", ["ju"]), ("mailbox-mss-type", "", ["ORG"])]),
    ("Organization", [("name", "contains", ["e"]), ("name", "contains", ["sud", "ly"])]),
    ("PractitionerRole", [("mailbox-mss", "contains", ["t."]),
                          ("address-postalcode", "", ["69"])]),
]


@pytest.mark.parametrize(("resource", "criteria"), SHORT,
                         ids=[url(r, c)[6:] for r, c in SHORT])
async def test_short_contains_patterns_do_not_crash(
        loaded: DirectoryStore, client: httpx.AsyncClient, oracle: Oracle, resource: str,
        criteria: Criteria) -> None:
    """SQLite 3.40's FTS5 crashes the whole process (a segmentation fault) on a trigram
    LIKE pattern of fewer than three characters combined with another condition: the
    queries never give the trigram tables one (short values, and values whose parts
    between LIKE's wildcards are short, are scanned), and the answers are the scan's."""
    assert await _search_directly(loaded, resource, criteria) == expected(
        oracle, resource, criteria)
    if all(len(v.replace(" ", "")) >= 3 for _, m, vs in criteria if m == "contains"
           for v in vs):
        found = await collect(client, url(resource, criteria, _count="5"))
        assert set(found.ids) == expected(oracle, resource, criteria)


WITHOUT_TRIGRAMS: list[tuple[str, Criteria]] = [
    (r, c) for r, c in CASES if any(m == "contains" for _, m, _ in c)] + [
    ("Organization", [("name", "", ["etoile"])]),
    ("Practitioner", [("mailbox-mss", "", ["zoe."])]),
]


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres",
                                                           marks=pytest.mark.postgres)])
async def test_without_trigrams_substring_searches_scan(
        engine: str, tmp_path: Path, oracle: Oracle, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that cannot have the trigram tables (SQLite without FTS5's trigram
    tokenizer, before 3.34) or index (PostgreSQL without ``pg_trgm``) still opens,
    imports and publishes; substring searches scan and give the same answers."""
    if engine == "sqlite":
        monkeypatch.setattr(directory_store, "_TRIGRAM_TOKENIZER", "no_such_tokenizer")
        store = await open_directory(f"sqlite:///{tmp_path / 'plain.sqlite3'}")
        await _check_without_trigrams(store, oracle, monkeypatch)
        return
    monkeypatch.setattr(directory_store, "_TRIGRAM_EXTENSION", "no_such_extension")
    async with postgres_schema() as schema_name:
        store = await open_directory(POSTGRES_URL, schema=schema_name)
        await _check_without_trigrams(store, oracle, monkeypatch)


async def _check_without_trigrams(store: DirectoryStore, oracle: Oracle,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        await load(store)
        async with store.engine.connect() as conn:
            if store.dialect == "sqlite":
                found = await conn.execute(text(
                    "SELECT name FROM sqlite_master WHERE name LIKE '%trigram%'"))
            else:
                found = await conn.execute(text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND indexdef LIKE '%gin_trgm_ops%'"))
            assert found.all() == []
        async with client_of(store) as http:
            for resource, criteria in WITHOUT_TRIGRAMS:
                found_ids = await collect(http, url(resource, criteria, _count="7"))
                assert set(found_ids.ids) == expected(oracle, resource, criteria), criteria
            monkeypatch.setattr(queries, "TOTAL_LIMIT", 3)
            for resource, criteria in WITHOUT_TRIGRAMS:
                found_ids = await collect(http, url(resource, criteria, _count="4"))
                assert set(found_ids.ids) == expected(oracle, resource, criteria), criteria
    finally:
        await store.close()
