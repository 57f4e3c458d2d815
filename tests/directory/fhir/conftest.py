"""Fixtures of the FHIR API tests: a directory on SQLite and PostgreSQL, the API in a
FastAPI application driven through ``httpx.ASGITransport``, FHIR validation of every
answer, and an oracle that computes in Python what a search must find.

The data: 1,200 generated rows (``generate_rows``) and ``KNOWN`` rows written for
the tests (accents, a CAB mailbox, trade names, an ADELI professional, two
professionals that share an identifier value, mailboxes put on the liste rouge).
Read-only tests share one loaded directory per module and engine; PATCH tests get
a fresh one each.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, HTTPException, Request
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from sqlalchemy import update

from mssante.directory import schema
from mssante.directory.extract import FIELD_NAMES, ExtractRow
from mssante.directory.fhir import Publisher, create_fhir_router
from mssante.directory.generate import generate_rows
from mssante.directory.store import DirectoryStore, open_directory
from mssante.directory.text import joined, normalise
from mssante.domain.mailboxes import MailboxType
from tests.conftest import POSTGRES_URL, postgres_schema

FHIR_JSON = "application/fhir+json"
MODELS: dict[str, Any] = {
    "Bundle": Bundle, "CapabilityStatement": CapabilityStatement,
    "OperationOutcome": OperationOutcome, "Organization": Organization,
    "Practitioner": Practitioner, "PractitionerRole": PractitionerRole,
}
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

DOMAIN = "fhir-test.mssante.fr"  # the known professionals' mailboxes
CHU_DOMAIN = "chu-test.mssante.fr"  # the known organisations' mailboxes


# The known rows -------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    nat: str  # idNatPs
    id_type: str
    pp_id: str
    family: str
    given: str
    civility: str = "DR"
    profession: tuple[str, str] = ("10", "Médecin")
    skill: tuple[str, str] = ("SM54", "Médecine générale")


@dataclass(frozen=True)
class Structure:
    st: str  # idNatSt
    id_type: str
    legal: str
    city: str
    postal: str
    trade: str = ""
    location: str = ""


CHU = Structure("1690000001", "1", "CENTRE HOSPITALIER UNIVERSITAIRE DE LYON", "LYON",
                "69003", trade="Hôpital Édouard Herriot", location="Bâtiment A")
CABINET = Structure("312345678901234", "3", "CABINET LEFÈVRE", "CAEN", "14000")
CLINIC = Structure("1130000002", "1", "CLINIQUE SAINT-JOSEPH", "MARSEILLE", "13001",
                   trade="Étoile du Sud")

ZOE = Person("810000000017", "8", "10000000017", "Dupont", "Zoé")
ZOE2 = Person("810000000025", "8", "10000000025", "Dupontel", "Zoé")
IRENE = Person("810000000033", "8", "10000000033", "Lefèvre", "Irène", civility="PR",
               skill=("SM42", "Néphrologie"))
JOEL = Person("0691234567", "0", "691234567", "Bérenger", "Joël", civility="",
              profession=("60", "Infirmier"), skill=("", ""))
# Two professionals sharing an identifier value: TWIN_A's RPPS is TWIN_B's idNatPs
# (crafted: the national numbering never does it, the API must still tell).
TWIN_A = Person("810000000041", "8", "10000000041", "Jumeau", "Alpha")
TWIN_B = Person("10000000041", "0", "000000041", "Jumeau", "Beta")


def extract_row(mailbox_type: MailboxType, address: str, person: Person | None,
                structure: Structure | None, *, service: str = "") -> ExtractRow:
    values: dict[str, Any] = dict.fromkeys(FIELD_NAMES, "")
    values.update(mailbox_type=mailbox_type, address=address, service=service,
                  digitization=mailbox_type is MailboxType.PER)
    if person is not None:
        values.update(
            pp_id_type=person.id_type, pp_id=person.pp_id, pp_national_id=person.nat,
            civility=person.civility, family_name=person.family, given_name=person.given,
            profession_category="C", profession_category_label="Civil",
            profession_code=person.profession[0], profession_label=person.profession[1],
            skill_code=person.skill[0], skill_label=person.skill[1])
    if structure is not None:
        values.update(
            structure_id_type=structure.id_type, structure_id=structure.st,
            legal_name=structure.legal, trade_name=structure.trade,
            location_complement=structure.location, street_number="3",
            street_type="R", street_name="de la Paix",
            routing_line=f"{structure.postal} {structure.city}",
            postal_code=structure.postal, department=structure.postal[:2], country="FRANCE")
    return ExtractRow(**values)


PER, ORG, APP, CAB = MailboxType.PER, MailboxType.ORG, MailboxType.APP, MailboxType.CAB
KNOWN = [
    extract_row(PER, f"zoe.dupont@{DOMAIN}", ZOE, CHU),
    extract_row(CAB, f"cabinet.dupont@{DOMAIN}", ZOE, CABINET),
    extract_row(PER, f"zoe.dupontel@{DOMAIN}", ZOE2, CLINIC),
    extract_row(PER, f"irene.lefevre@{DOMAIN}", IRENE, CABINET),
    extract_row(PER, f"irene.secret@{DOMAIN}", IRENE, CHU),  # liste rouge
    extract_row(PER, f"joel.berenger@{DOMAIN}", JOEL, CLINIC),
    extract_row(CAB, f"cabinet.jumeau@{DOMAIN}", TWIN_A, CABINET),  # liste rouge
    extract_row(PER, f"alpha.jumeau@{DOMAIN}", TWIN_A, CLINIC),
    extract_row(PER, f"beta.jumeau@{DOMAIN}", TWIN_B, CLINIC),
    extract_row(ORG, f"cardiologie@{CHU_DOMAIN}", None, CHU, service="Cardiologie"),
    extract_row(APP, f"dmp@{CHU_DOMAIN}", None, CHU, service="DMP"),
    extract_row(ORG, f"direction@{CHU_DOMAIN}", None, CHU, service="Direction"),  # hidden
    extract_row(ORG, f"accueil@{CHU_DOMAIN}", None, CLINIC, service="Accueil"),
]
HIDDEN = frozenset({f"irene.secret@{DOMAIN}", f"cabinet.jumeau@{DOMAIN}",
                    f"direction@{CHU_DOMAIN}"})
GENERATED = list(generate_rows(1200, seed=5))
ROWS = GENERATED + KNOWN


async def load(store: DirectoryStore, rows: Iterable[ExtractRow] = ROWS,
               hidden: Iterable[str] = HIDDEN) -> DirectoryStore:
    await store.import_extract(rows)
    async with store.engine.begin() as conn:
        await conn.execute(update(schema.mailboxes).where(
            schema.mailboxes.c.address.in_(sorted(hidden))).values(liste_rouge=True))
    return store


# The oracle ---------------------------------------------------------------------------

class Oracle:
    """What the directory holds, from the rows: the expected answers of searches."""

    def __init__(self, rows: Iterable[ExtractRow], hidden: Iterable[str]) -> None:
        hidden = frozenset(hidden)
        self.practitioners: dict[str, ExtractRow] = {}
        self.organisations: dict[str, ExtractRow] = {}
        self.roles: set[tuple[str, str]] = set()
        self.mailboxes: list[ExtractRow] = []  # visible ones
        self._by_holder: dict[str, dict[str, list[ExtractRow]]] = {}
        for row in rows:
            if row.pp_national_id:
                self.practitioners[row.pp_national_id] = row
            if row.structure_id:
                self.organisations[row.structure_id] = row
            if row.pp_national_id and row.structure_id and row.mailbox_type in (PER, CAB):
                self.roles.add((row.pp_national_id, row.structure_id))
            if row.address not in hidden:
                self.mailboxes.append(row)

    def telecoms(self, resource: str, fhir_id: str) -> set[str]:
        return {m.address for m in self._held(resource).get(fhir_id, ())}

    def types(self, resource: str, fhir_id: str) -> set[str]:
        return {m.mailbox_type.value for m in self._held(resource).get(fhir_id, ())}

    def ids(self, resource: str) -> list[str]:
        if resource == "Practitioner":
            return list(self.practitioners)
        if resource == "Organization":
            return list(self.organisations)
        return [f"{ps}-{st}" for ps, st in self.roles]

    def _held(self, resource: str) -> dict[str, list[ExtractRow]]:
        """The visible mailboxes shown by each resource of a type."""
        if resource not in self._by_holder:
            held: dict[str, list[ExtractRow]] = {}
            for m in self.mailboxes:
                if resource == "Organization" and m.mailbox_type in (ORG, APP):
                    held.setdefault(m.structure_id, []).append(m)
                elif resource == "Practitioner" and m.mailbox_type in (PER, CAB):
                    held.setdefault(m.pp_national_id, []).append(m)
                elif resource == "PractitionerRole" and m.mailbox_type in (PER, CAB):
                    held.setdefault(f"{m.pp_national_id}-{m.structure_id}", []).append(m)
            self._by_holder[resource] = held
        return self._by_holder[resource]

    def structure(self, resource: str, fhir_id: str) -> ExtractRow | None:
        if resource == "Organization":
            return self.organisations[fhir_id]
        if resource == "PractitionerRole":
            return self.organisations[fhir_id.partition("-")[2]]
        return None


def string_matches(stored: str, value: str, modifier: str) -> bool:
    """FHIR R4 string search, as the API documents it, in plain Python."""
    if modifier == "exact":
        return stored == value
    if modifier == "contains":
        return joined(value) in joined(stored)
    return joined(stored).startswith(joined(value))


def address_matches(address: str, value: str, modifier: str) -> bool:
    wanted = normalise(value).strip()
    if modifier == "exact":
        return address == wanted
    if modifier == "contains":
        return wanted in address
    return address.startswith(wanted)


# The application -----------------------------------------------------------------------

OPERATORS = {
    "op-test": Publisher("CN=op-test,O=Test", frozenset({DOMAIN, CHU_DOMAIN})),
    "op-other": Publisher("CN=op-other,O=Other", frozenset({"other.mssante.fr"})),
}


async def authorise(request: Request) -> Publisher:
    """Tests name the operator in a header; the trust space uses the client certificate."""
    name = request.headers.get("x-test-operator")
    if name is None:
        raise HTTPException(401, "a client certificate is required",
                            headers={"WWW-Authenticate": 'Mutual realm="mssante"'})
    if name not in OPERATORS:
        raise HTTPException(403, f"{name} is not an operator of the trust space")
    return OPERATORS[name]


FHIR_BASE = "http://directory.test/fhir"


def application(store: DirectoryStore) -> FastAPI:
    app = FastAPI()
    app.include_router(create_fhir_router(store, authorise, base_url=FHIR_BASE), prefix="/fhir")
    return app


def client_of(store: DirectoryStore) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(application(store)),
                             base_url="http://directory.test")


def validate(data: dict[str, Any]) -> None:
    """Validate with fhir.resources (R4B models): every resource the API serves."""
    MODELS[data["resourceType"]].model_validate(data)


async def fetch(client: httpx.AsyncClient, url: str, status: int = 200, *,
                method: str = "GET", **kwargs: Any) -> dict[str, Any]:
    response = await client.request(method, url, **kwargs)
    assert response.status_code == status, (url, response.status_code, response.text)
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    data: dict[str, Any] = response.json()
    validate(data)
    if status >= 400:
        assert data["resourceType"] == "OperationOutcome", data
        issue = data["issue"][0]
        assert issue["severity"] in ("error", "fatal") and issue["code"] and issue["diagnostics"]
    return data


def diagnostics(outcome: dict[str, Any]) -> str:
    return str(outcome["issue"][0]["diagnostics"])


@dataclass
class Collected:
    ids: list[str]
    total: int | None
    pages: int
    included: list[str]


async def collect(client: httpx.AsyncClient, url: str) -> Collected:
    """Follow the ``next`` links to the end; every page validated, no id twice."""
    first: int | None = None
    ids: list[str] = []
    included: list[str] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        bundle = await fetch(client, next_url)
        pages += 1
        assert bundle["type"] == "searchset"
        if pages == 1:
            first = bundle.get("total")
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith("http://directory.test/fhir/")
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            assert entry["fullUrl"] == (f"http://directory.test/fhir/"
                                        f"{resource['resourceType']}/{resource['id']}")
            if entry["search"]["mode"] == "match":
                ids.append(resource["id"])
            else:
                included.append(f"{resource['resourceType']}/{resource['id']}")
            for telecom in resource.get("telecom", []):
                assert telecom["value"] not in HIDDEN, "a liste rouge mailbox was served"
        next_url = links.get("next")
        if next_url is not None:
            assert re.search(r"[?&]_cursor=\d+", next_url), next_url
        assert pages < 500, "endless paging"
    assert len(ids) == len(set(ids)), "an id came twice"
    if first is not None:
        assert first == len(ids)
    return Collected(ids, first, pages, included)


# Fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def oracle() -> Oracle:
    return Oracle(ROWS, HIDDEN)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=ENGINES)
async def loaded(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DirectoryStore]:
    """One loaded directory per module and engine, for tests that only read."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fhir") / "directory.sqlite3"
        store = await open_directory(f"sqlite:///{path}")
        try:
            yield await load(store)
        finally:
            await store.close()
        return
    async with postgres_schema() as schema_name:
        store = await open_directory(POSTGRES_URL, schema=schema_name)
        try:
            yield await load(store)
        finally:
            await store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(loaded: DirectoryStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(loaded) as http:
        yield http


@pytest_asyncio.fixture(params=ENGINES)
async def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DirectoryStore]:
    """A directory holding only ``KNOWN``, for one test that writes."""
    if request.param == "sqlite":
        store = await open_directory(f"sqlite:///{tmp_path / 'directory.sqlite3'}")
        try:
            yield await load(store, KNOWN)
        finally:
            await store.close()
        return
    async with postgres_schema() as schema_name:
        store = await open_directory(POSTGRES_URL, schema=schema_name)
        try:
            yield await load(store, KNOWN)
        finally:
            await store.close()
