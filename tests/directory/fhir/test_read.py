"""Reads, the CapabilityStatement, and the OperationOutcomes of what is not served
(404, 405, 406, 500) on both engines."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from mssante.directory.fhir import create_fhir_router
from mssante.directory.fhir.params import PARAMETERS
from mssante.directory.store import DirectoryStore
from tests.directory.fhir.conftest import (
    CABINET,
    CHU,
    CHU_DOMAIN,
    CLINIC,
    DOMAIN,
    IRENE,
    JOEL,
    ZOE,
    Oracle,
    authorise,
    diagnostics,
    fetch,
    validate,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_read_practitioner(client: httpx.AsyncClient) -> None:
    zoe = await fetch(client, f"/fhir/Practitioner/{ZOE.nat}")
    assert zoe["resourceType"] == "Practitioner" and zoe["id"] == ZOE.nat
    assert [(i["system"], i["value"]) for i in zoe["identifier"]] == [
        ("urn:oid:1.2.250.1.71.4.2.1", ZOE.nat), ("https://rpps.esante.gouv.fr", ZOE.pp_id)]
    assert zoe["name"] == [{"use": "official", "family": "Dupont", "given": ["Zoé"],
                            "prefix": ["DR"]}]
    codes = [[c["code"] for c in q["code"]["coding"]] for q in zoe["qualification"]]
    assert codes == [["10", "C"], ["SM54"]]
    # PER and CAB, wherever their organisation: the Practitioner holds both.
    assert [t["value"] for t in zoe["telecom"]] == [f"cabinet.dupont@{DOMAIN}",
                                                   f"zoe.dupont@{DOMAIN}"]
    joel = await fetch(client, f"/fhir/Practitioner/{JOEL.nat}")
    assert joel["identifier"][1] == {
        "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/"
                                       "fr-core-cs-v2-0203", "code": "ADELI"}]},
        "system": "https://adeli.esante.gouv.fr", "value": JOEL.pp_id}
    assert "prefix" not in joel["name"][0]  # no civility: no empty string
    assert len(joel["qualification"]) == 1  # no savoir-faire


async def test_telecom_rendering(client: httpx.AsyncClient) -> None:
    chu = await fetch(client, f"/fhir/Organization/{CHU.st}")
    cardiology = next(t for t in chu["telecom"] if t["value"].startswith("cardiologie@"))
    assert cardiology == {
        "extension": [
            {"url": "https://interop.esante.gouv.fr/ig/fhir/core/StructureDefinition/"
                    "fr-core-contact-point-email-type",
             "valueCoding": {"system": "https://mos.esante.gouv.fr/NOS/TRE_R256-"
                                       "TypeMessagerie/FHIR/TRE-R256-TypeMessagerie",
                             "code": "MSSANTE"}},
            {"url": "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
                    "as-ext-mailbox-mss-metadata",
             "extension": [
                 {"url": "type", "valueCodeableConcept": {"coding": [
                     {"system": "https://mos.esante.gouv.fr/NOS/JDV_J139-TypeBAL-RASS/FHIR/"
                                "JDV-J139-TypeBAL-RASS", "code": "ORG"}]}},
                 {"url": "service", "valueString": "Cardiologie"},
                 {"url": "digitization", "valueBoolean": False},
                 {"url": "listeRouge", "valueBoolean": False}]},
        ],
        "system": "email",
        "value": f"cardiologie@{CHU_DOMAIN}",
    }


async def test_read_organization(client: httpx.AsyncClient) -> None:
    chu = await fetch(client, f"/fhir/Organization/{CHU.st}")
    assert [(i["system"], i["value"], i["type"]["coding"][0]["code"])
            for i in chu["identifier"]] == [
        ("urn:oid:1.2.250.1.71.4.2.2", CHU.st, "IDNST"),
        ("https://finess.esante.gouv.fr", CHU.st[1:], "FINEG")]
    assert chu["name"] == CHU.legal and chu["alias"] == [CHU.trade]
    assert chu["address"] == [{"use": "work", "line": ["Bâtiment A", "3 R de la Paix"],
                               "city": "LYON", "district": "69", "postalCode": "69003",
                               "country": "FRANCE"}]
    # ORG and APP only; the liste rouge one is not there.
    assert [t["value"] for t in chu["telecom"]] == [f"cardiologie@{CHU_DOMAIN}",
                                                   f"dmp@{CHU_DOMAIN}"]
    cabinet = await fetch(client, f"/fhir/Organization/{CABINET.st}")
    assert cabinet["identifier"][1]["system"] == "https://sirene.fr"
    assert cabinet["identifier"][1]["value"] == CABINET.st[1:]
    assert "telecom" not in cabinet and "alias" not in cabinet  # a CAB is a Practitioner's


async def test_read_practitioner_role(client: httpx.AsyncClient) -> None:
    role = await fetch(client, f"/fhir/PractitionerRole/{ZOE.nat}-{CABINET.st}")
    assert role["practitioner"] == {"reference": f"Practitioner/{ZOE.nat}",
                                    "display": "Zoé Dupont"}
    assert role["organization"] == {"reference": f"Organization/{CABINET.st}",
                                    "display": CABINET.legal}
    assert role["code"][0]["coding"][0]["code"] == "10"
    # Only the mailboxes at this organisation.
    assert [t["value"] for t in role["telecom"]] == [f"cabinet.dupont@{DOMAIN}"]
    hidden = await fetch(client, f"/fhir/PractitionerRole/{IRENE.nat}-{CHU.st}")
    assert "telecom" not in hidden  # its only mailbox is on the liste rouge


async def test_every_resource_reads_as_the_oracle_says(client: httpx.AsyncClient,
                                                       oracle: Oracle) -> None:
    for resource in ("Practitioner", "Organization", "PractitionerRole"):
        for fhir_id in sorted(oracle.ids(resource))[::40]:
            data = await fetch(client, f"/fhir/{resource}/{fhir_id}")
            assert data["id"] == fhir_id
            assert {t["value"] for t in data.get("telecom", [])} == oracle.telecoms(
                resource, fhir_id)


@pytest.mark.parametrize("path", [
    "/fhir/Practitioner/1", f"/fhir/Organization/{ZOE.nat}",
    f"/fhir/PractitionerRole/{ZOE.nat}-{CLINIC.st}", f"/fhir/PractitionerRole/{ZOE.nat}",
    "/fhir/Practitioner/a%20b", "/fhir/Practitioner/" + "9" * 65,
])
async def test_unknown_resources(client: httpx.AsyncClient, path: str) -> None:
    outcome = await fetch(client, path, 404)
    assert outcome["issue"][0]["code"] == "not-found"


async def test_read_parameters(client: httpx.AsyncClient) -> None:
    await fetch(client, f"/fhir/Practitioner/{ZOE.nat}?_format=application/fhir%2Bjson")
    assert "_elements" in diagnostics(await fetch(
        client, f"/fhir/Practitioner/{ZOE.nat}?_elements=name", 400))
    await fetch(client, f"/fhir/Practitioner/{ZOE.nat}?_format=xml", 406)


async def test_capability_statement(client: httpx.AsyncClient) -> None:
    statement = await fetch(client, "/fhir/metadata")
    assert statement["fhirVersion"] == "4.0.1" and statement["format"] == ["json"]
    assert statement["kind"] == "instance" and statement["status"] == "active"
    assert statement["implementation"]["url"] == "http://directory.test/fhir"
    rest = statement["rest"][0]
    assert rest["mode"] == "server" and "rejected with 400" in rest["documentation"]
    resources = {r["type"]: r for r in rest["resource"]}
    assert list(resources) == ["Practitioner", "Organization", "PractitionerRole"]
    for name, resource in resources.items():
        assert {p["name"] for p in resource["searchParam"]} == set(PARAMETERS[name])
        interactions = [i["code"] for i in resource["interaction"]]
        patchable = name != "PractitionerRole"
        assert interactions == ["read", "search-type"] + (["patch"] if patchable else [])
        if patchable:
            assert "identifier=<system>|<value>" in resource["interaction"][2]["documentation"]
    assert resources["PractitionerRole"]["searchInclude"] == [
        "PractitionerRole:practitioner", "PractitionerRole:organization"]
    assert "_format=xml" not in statement  # the statement is JSON only
    await fetch(client, "/fhir/metadata?_format=json")
    await fetch(client, "/fhir/metadata?mode=terminology", 400)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", f"/fhir/Practitioner/{ZOE.nat}", "GET, PATCH"),
    ("PUT", f"/fhir/Organization/{CHU.st}", "GET, PATCH"),
    ("POST", "/fhir/Practitioner", "GET, PATCH"),
    ("PATCH", f"/fhir/PractitionerRole/{ZOE.nat}-{CHU.st}", "GET"),
    ("PATCH", "/fhir/PractitionerRole?_id=1", "GET"),
    ("DELETE", "/fhir/Practitioner/_search", "GET, POST"),
    ("POST", "/fhir/metadata", "GET"),
])
async def test_methods_not_allowed(client: httpx.AsyncClient, method: str, path: str,
                                   allowed: str) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/fhir+json"
    outcome = response.json()
    validate(outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize("path", ["/fhir/Patient/1", "/fhir/Practitioner/1/_history",
                                  "/fhir/", "/fhir/HealthcareService?name=x",
                                  "/fhir/Practitioner/", "/fhir/metadata/"])
async def test_paths_not_served(client: httpx.AsyncClient, path: str) -> None:
    outcome = await fetch(client, path, 404)
    assert "not served" in diagnostics(outcome)


class _BrokenEngine:
    def connect(self) -> object:
        raise RuntimeError("the database is on fire")


class _BrokenStore:
    engine = _BrokenEngine()

    async def patch_telecom(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("not called")


async def test_internal_errors_are_fatal_outcomes(loaded: DirectoryStore,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    app.include_router(create_fhir_router(_BrokenStore(), authorise,  # type: ignore[arg-type]
                                          base_url="http://directory.test/fhir"),
                       prefix="/fhir")
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://directory.test") as c:
        with caplog.at_level(logging.ERROR, logger="mssante.directory.fhir.router"):
            outcome = await fetch(c, "/fhir/Practitioner?family=x", 500)
    assert outcome["issue"][0] == {"severity": "fatal", "code": "exception",
                                   "diagnostics": "internal error"}
    assert "on fire" in caplog.text  # logged, never shown


async def test_openapi_lists_every_route_once() -> None:
    app = FastAPI()
    app.include_router(create_fhir_router(_BrokenStore(), authorise,  # type: ignore[arg-type]
                                          base_url="http://directory.test/fhir"),
                       prefix="/fhir")
    operations = [op["operationId"] for path in app.openapi()["paths"].values()
                  for op in path.values()]
    assert len(operations) == len(set(operations)) == 1 + 3 * 4 + 2 * 2
