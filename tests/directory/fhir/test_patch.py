"""Publication by FHIRPath Patch over HTTP on both engines: add, insert, replace,
delete; conditional on the identifier (404, 412); 401, 403 (another operator's
domain), 422 (conflicts); what was patched reads back at once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from mssante.directory.fhir import create_fhir_router
from mssante.directory.fhir.patch import MAILBOX_ORGANIZATION_URL
from mssante.directory.fhir.resources import telecom
from mssante.directory.model import Mailbox
from mssante.directory.store import DirectoryStore
from mssante.domain.mailboxes import MailboxType
from mssante.errors import Ambiguous
from tests.directory.fhir.conftest import (
    CABINET,
    CHU,
    CHU_DOMAIN,
    CLINIC,
    DOMAIN,
    TWIN_A,
    ZOE,
    ZOE2,
    authorise,
    client_of,
    diagnostics,
    fetch,
    validate,
)

PS = "urn:oid:1.2.250.1.71.4.2.1"
ST = "urn:oid:1.2.250.1.71.4.2.2"
NEW = f"zoe.nouvelle@{DOMAIN}"


@pytest_asyncio.fixture
async def client(fresh: DirectoryStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(fresh) as http:
        yield http


def contact(address: str, mailbox_type: str = "PER", organisation: str = "",
            **metadata: Any) -> dict[str, Any]:
    value = telecom(Mailbox(address=address, type=MailboxType(mailbox_type), **metadata))
    if organisation:
        value["extension"].append({"url": MAILBOX_ORGANIZATION_URL, "valueReference": {
            "reference": f"Organization/{organisation}"}})
    return value


def operation(op_type: str, path: str, value: dict[str, Any] | None = None,
              **parts: Any) -> dict[str, Any]:
    rendered: list[dict[str, Any]] = [{"name": "type", "valueCode": op_type},
                                      {"name": "path", "valueString": path}]
    if "name" in parts:
        rendered.append({"name": "name", "valueString": parts["name"]})
    if "index" in parts:
        rendered.append({"name": "index", "valueInteger": parts["index"]})
    if value is not None:
        rendered.append({"name": "value", "valueContactPoint": value})
    return {"name": "operation", "part": rendered}


def parameters(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


async def patch(client: httpx.AsyncClient, url: str, body: Any, status: int = 200, *,
                operator: str | None = "op-test",
                content_type: str = "application/fhir+json") -> dict[str, Any]:
    headers = {"content-type": content_type}
    if operator is not None:
        headers["x-test-operator"] = operator
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await fetch(client, url, status, method="PATCH", content=content, headers=headers)


def addresses(resource: dict[str, Any]) -> list[str]:
    return [t["value"] for t in resource.get("telecom", [])]


async def test_add_publishes_a_mailbox(client: httpx.AsyncClient) -> None:
    added = await patch(client, f"/fhir/Practitioner?identifier={PS}|{ZOE.nat}", parameters(
        operation("add", "Practitioner", contact(NEW, organisation=CHU.st,
                                                 description="Consultations"),
                  name="telecom")))
    assert added["resourceType"] == "Practitioner" and added["id"] == ZOE.nat
    assert NEW in addresses(added)
    published = next(t for t in added["telecom"] if t["value"] == NEW)
    assert {"url": "description", "valueString": "Consultations"} in published[
        "extension"][1]["extension"]
    # At once: the read, the role at the named organisation, the searches.
    assert NEW in addresses(await fetch(client, f"/fhir/Practitioner/{ZOE.nat}"))
    role = await fetch(client, f"/fhir/PractitionerRole/{ZOE.nat}-{CHU.st}")
    assert NEW in addresses(role)
    found = await fetch(client, f"/fhir/Practitioner?mailbox-mss:exact={NEW}")
    assert [e["resource"]["id"] for e in found["entry"]] == [ZOE.nat]


async def test_a_publication_invents_no_practice_role(client: httpx.AsyncClient) -> None:
    """Only the referential says where a professional practises: naming another
    organisation is refused, and no role appears (not even for a hidden mailbox)."""
    for hidden in (False, True):
        await patch(client, f"/fhir/Practitioner?identifier={PS}|{ZOE.nat}", parameters(
            operation("add", "Practitioner", contact(NEW, organisation=CLINIC.st,
                                                     liste_rouge=hidden), name="telecom")),
            status=422)
        await fetch(client, f"/fhir/PractitionerRole/{ZOE.nat}-{CLINIC.st}", status=404)


async def test_insert_on_an_organisation(client: httpx.AsyncClient) -> None:
    address = f"urgences@{CHU_DOMAIN}"
    done = await patch(client, f"/fhir/Organization?identifier=https://finess.esante.gouv.fr|"
                               f"{CHU.st[1:]}", parameters(
        operation("insert", "Organization.telecom", contact(address, "ORG", service="SAU"),
                  index=0)))
    assert addresses(done) == [f"cardiologie@{CHU_DOMAIN}", f"dmp@{CHU_DOMAIN}", address]
    found = await fetch(client, "/fhir/Organization?mailbox-mss=urgences@&mailbox-mss-type=ORG")
    assert [e["resource"]["id"] for e in found["entry"]] == [CHU.st]


async def test_replace_changes_metadata(client: httpx.AsyncClient) -> None:
    address = f"zoe.dupont@{DOMAIN}"
    done = await patch(client, f"/fhir/Practitioner/{ZOE.nat}", parameters(
        operation("replace", f"Practitioner.telecom.where(value='{address}')",
                  contact(address, organisation=CHU.st, description="Nouvelle",
                          service="Pédiatrie", digitization=True))))
    metadata = {e["url"]: e for e in next(
        t for t in done["telecom"] if t["value"] == address)["extension"][1]["extension"]}
    assert metadata["description"]["valueString"] == "Nouvelle"
    assert metadata["service"]["valueString"] == "Pédiatrie"
    assert metadata["digitization"]["valueBoolean"] is True


async def test_replace_onto_the_liste_rouge_hides_it(client: httpx.AsyncClient) -> None:
    address = f"cabinet.dupont@{DOMAIN}"
    done = await patch(client, f"/fhir/Practitioner?identifier={ZOE.pp_id}", parameters(
        operation("replace", f"Practitioner.telecom.where(value='{address}')",
                  contact(address, "CAB", organisation=CABINET.st, liste_rouge=True))))
    assert address not in addresses(done)
    for resource in ("Practitioner", "PractitionerRole"):
        found = await fetch(client, f"/fhir/{resource}?mailbox-mss={address}")
        assert found["total"] == 0
    role = await fetch(client, f"/fhir/PractitionerRole/{ZOE.nat}-{CABINET.st}")
    assert "telecom" not in role


async def test_delete_withdraws_it(client: httpx.AsyncClient) -> None:
    address = f"accueil@{CHU_DOMAIN}"
    done = await patch(client, f"/fhir/Organization?identifier={ST}|{CLINIC.st}", parameters(
        operation("delete", f"Organization.telecom.where(value='{address}')")))
    assert "telecom" not in done
    assert (await fetch(client, f"/fhir/Organization?mailbox-mss={address}"))["total"] == 0


async def test_several_operations_in_one_patch(client: httpx.AsyncClient) -> None:
    done = await patch(client, f"/fhir/Practitioner?identifier={PS}|{ZOE.nat}", parameters(
        operation("add", "Practitioner.telecom", contact(NEW), name="telecom"),
        operation("delete", f"Practitioner.telecom.where(value='zoe.dupont@{DOMAIN}')")))
    assert addresses(done) == [f"cabinet.dupont@{DOMAIN}", NEW]


async def test_identifier_matching_nothing_is_404(client: httpx.AsyncClient) -> None:
    body = parameters(operation("add", "Practitioner", contact(NEW), name="telecom"))
    for query in (f"identifier={PS}|810999999999", f"identifier=https://adeli.esante.gouv.fr|"
                                                   f"{ZOE.pp_id}", f"identifier=|{ZOE.nat}"):
        outcome = await patch(client, f"/fhir/Practitioner?{query}", body, 404)
        assert outcome["issue"][0]["code"] == "not-found"
    await patch(client, "/fhir/Practitioner/810999999999", body, 404)
    await patch(client, f"/fhir/Organization?identifier={ZOE.nat}", parameters(operation(
        "add", "Organization", contact(f"x@{CHU_DOMAIN}", "ORG"), name="telecom")), 404)


async def test_identifier_matching_several_is_412(client: httpx.AsyncClient) -> None:
    body = parameters(operation("add", "Practitioner", contact(NEW), name="telecom"))
    outcome = await patch(client, f"/fhir/Practitioner?identifier={TWIN_A.pp_id}", body, 412)
    assert outcome["issue"][0]["code"] == "multiple-matches"
    assert "system" in diagnostics(outcome)
    # Named with its system, the identifier is one professional's.
    await patch(client, f"/fhir/Practitioner?identifier=https://rpps.esante.gouv.fr|"
                        f"{TWIN_A.pp_id}", parameters(operation(
                            "add", "Practitioner", contact(f"alpha2@{DOMAIN}"),
                            name="telecom")))
    # Several identifiers in one parameter are several matches too.
    await patch(client, f"/fhir/Practitioner?identifier={ZOE.nat},{ZOE2.nat}", body, 412)


async def test_without_a_client_certificate_is_401(client: httpx.AsyncClient) -> None:
    body = parameters(operation("add", "Practitioner", contact(NEW), name="telecom"))
    response = await client.patch(f"/fhir/Practitioner/{ZOE.nat}", content=json.dumps(body),
                                  headers={"content-type": "application/fhir+json"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Mutual realm="mssante"'
    validate(response.json())
    assert response.json()["issue"][0]["code"] == "login"
    outcome = await patch(client, f"/fhir/Practitioner?identifier={ZOE.nat}", body, 401,
                          operator=None)
    assert "certificate" in diagnostics(outcome)
    assert NEW not in addresses(await fetch(client, f"/fhir/Practitioner/{ZOE.nat}"))


async def test_another_operators_domain_is_403(client: httpx.AsyncClient) -> None:
    body = parameters(
        operation("delete", f"Practitioner.telecom.where(value='zoe.dupont@{DOMAIN}')"),
        operation("add", "Practitioner", contact(NEW), name="telecom"))
    outcome = await patch(client, f"/fhir/Practitioner?identifier={ZOE.nat}", body, 403,
                          operator="op-other")
    assert outcome["issue"][0]["code"] == "forbidden"
    assert DOMAIN in diagnostics(outcome)
    # All or nothing: the first operation did not happen either.
    assert f"zoe.dupont@{DOMAIN}" in addresses(
        await fetch(client, f"/fhir/Practitioner/{ZOE.nat}"))
    outcome = await patch(client, f"/fhir/Practitioner/{ZOE.nat}", body, 403,
                          operator="op-unknown")
    assert "not an operator" in diagnostics(outcome)


async def test_conflicts_are_422(client: httpx.AsyncClient) -> None:
    # An address held by another professional.
    taken = f"zoe.dupontel@{DOMAIN}"
    outcome = await patch(client, f"/fhir/Practitioner/{ZOE.nat}", parameters(operation(
        "add", "Practitioner", contact(taken), name="telecom")), 422)
    assert outcome["issue"][0]["code"] == "business-rule" and taken in diagnostics(outcome)
    # A type never changes.
    outcome = await patch(client, f"/fhir/Practitioner/{ZOE.nat}", parameters(operation(
        "replace", f"Practitioner.telecom.where(value='zoe.dupont@{DOMAIN}')",
        contact(f"zoe.dupont@{DOMAIN}", "CAB"))), 422)
    assert "type" in diagnostics(outcome)
    # A type the resource does not hold, a telecom that is not a mailbox.
    await patch(client, f"/fhir/Practitioner/{ZOE.nat}", parameters(operation(
        "add", "Practitioner", contact(NEW, "ORG"), name="telecom")), 422)
    await patch(client, f"/fhir/Practitioner/{ZOE.nat}", parameters(operation(
        "add", "Practitioner", {"system": "phone", "value": "0102030405"},
        name="telecom")), 422)


async def test_bad_requests(client: httpx.AsyncClient) -> None:
    body = parameters(operation("add", "Practitioner", contact(NEW), name="telecom"))
    url = f"/fhir/Practitioner?identifier={ZOE.nat}"
    outcome = await patch(client, url, b"{not json", 400)
    assert outcome["issue"][0]["code"] == "structure"
    await patch(client, url, {"resourceType": "Practitioner"}, 400)
    outcome = await patch(client, url, body, 415, content_type="application/json-patch+json")
    assert "application/fhir+json" in diagnostics(outcome)
    await patch(client, url, body, content_type="application/json")  # plain JSON: accepted
    await patch(client, "/fhir/Practitioner", body, 400)  # no identifier
    outcome = await patch(client, "/fhir/Practitioner?family=Dupont", body, 400)
    assert "identifier only" in diagnostics(outcome)
    # The body is checked before the identifier is looked up.
    await patch(client, f"/fhir/Practitioner?identifier={PS}|810999999999",
                {"resourceType": "Bundle"}, 400)
    await patch(client, url, b"x" * ((1 << 20) + 1), 413)


class _AmbiguousStore:
    """A store whose publication finds several targets (the store's own check)."""

    def __init__(self, store: DirectoryStore) -> None:
        self.engine = store.engine

    async def patch_telecom(self, *args: object, **kwargs: object) -> None:
        raise Ambiguous("two Practitioners hold that identifier")


async def test_store_ambiguity_is_412(fresh: DirectoryStore) -> None:
    app = FastAPI()
    app.include_router(create_fhir_router(_AmbiguousStore(fresh), authorise,
                                          base_url="http://directory.test/fhir"),
                       prefix="/fhir")
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://directory.test") as c:
        outcome = await patch(c, f"/fhir/Practitioner?identifier={ZOE.nat}", parameters(
            operation("add", "Practitioner", contact(NEW), name="telecom")), 412)
    assert outcome["issue"][0]["code"] == "multiple-matches"
