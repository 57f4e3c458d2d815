"""The trust space's directory over real HTTPS on 127.0.0.1: publication by an operator
authenticated with its certificate, autocomplete, the published extract, and the
liste rouge never leaving through any of them."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from mssante.directory.extract import ExtractRow, read_extract
from mssante.directory.generate import generate_rows
from mssante.directory.model import ID_NAT_PS_SYSTEM, Practitioner
from mssante.directory.store import open_directory
from mssante.pki.ca import IssuedCertificate
from mssante.pki.tls import client_context
from mssante.trustspace.server import RunningTrustSpace
from mssante.trustspace.service import TrustSpace

EMAIL_TYPE = ("https://interop.esante.gouv.fr/ig/fhir/core/StructureDefinition/"
              "fr-core-contact-point-email-type")
METADATA = ("https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
            "as-ext-mailbox-mss-metadata")
TYPE_SYSTEM = "https://mos.esante.gouv.fr/NOS/JDV_J139-TypeBAL-RASS/FHIR/JDV-J139-TypeBAL-RASS"
PRACTITIONER = Practitioner(id_nat_ps="810101234567", id_type="8", pp_id="10101234567",
                            civility="DR", family_name="LÉVÊQUE", given_name="Zoé",
                            profession_code="10", profession_label="Médecin",
                            skill_code="SM04", skill_label="Cardiologie")
ROWS = list(generate_rows(300, seed=11))


def http(ts: TrustSpace, base_url: str, cert: IssuedCertificate | None = None
         ) -> httpx.AsyncClient:
    context = client_context(ts.pki.root_cert_file,
                             cert.cert_file if cert else None, cert.key_file if cert else None)
    return httpx.AsyncClient(base_url=base_url, verify=context, timeout=10.0)


def contact(address: str, *, liste_rouge: bool = False) -> dict[str, Any]:
    return {"system": "email", "value": address, "extension": [
        {"url": EMAIL_TYPE, "valueCoding": {
            "system": "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/"
                      "TRE-R256-TypeMessagerie", "code": "MSSANTE"}},
        {"url": METADATA, "extension": [
            {"url": "type", "valueCodeableConcept": {"coding": [
                {"system": TYPE_SYSTEM, "code": "PER"}]}},
            {"url": "listeRouge", "valueBoolean": liste_rouge}]}]}


def operation(kind: str, address: str, **fields: Any) -> dict[str, Any]:
    if kind == "add":
        parts = [{"name": "type", "valueCode": "add"},
                 {"name": "path", "valueString": "Practitioner.telecom"},
                 {"name": "name", "valueString": "telecom"},
                 {"name": "value", "valueContactPoint": contact(address, **fields)}]
    else:
        parts = [{"name": "type", "valueCode": kind},
                 {"name": "path",
                  "valueString": f"Practitioner.telecom.where(value='{address}')"}]
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": parts}]}


PATCH_URL = f"/fhir/Practitioner?identifier={ID_NAT_PS_SYSTEM}|{PRACTITIONER.id_nat_ps}"
HEADERS = {"Content-Type": "application/fhir+json"}


@pytest.fixture
async def seeded(trust_space: TrustSpace) -> TrustSpace:
    store = await open_directory(trust_space.directory_database)
    try:
        await store.import_extract(ROWS)
        await store.add_practitioner(PRACTITIONER)
    finally:
        await store.close()
    trust_space.extract_interval = 0.0  # every change shows in the extract at once
    return trust_space


@pytest.fixture
async def server(seeded: TrustSpace) -> Any:
    async with RunningTrustSpace(seeded) as running:
        yield running


async def autocomplete(client: httpx.AsyncClient, text: str) -> list[str]:
    answer = await client.get("/directory/autocomplete", params={"q": text, "limit": 10})
    assert answer.status_code == 200, answer.text
    return [hit["address"] for hit in answer.json()["results"]]


async def extract_addresses(client: httpx.AsyncClient) -> set[str]:
    answer = await client.get("/extractions/Extraction_Correspondance_MSSante.txt")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    rows = [r for r in read_extract(io.StringIO(answer.text)) if isinstance(r, ExtractRow)]
    assert len(rows) == answer.text.count("\n") - 1  # every line is a valid row
    return {row.address for row in rows}


async def test_autocomplete_finds_imported_mailboxes(seeded: TrustSpace,
                                                     server: RunningTrustSpace) -> None:
    target = next(r for r in ROWS if r.family_name and len(r.family_name) > 4)
    async with http(seeded, server.url) as client:
        found = await autocomplete(client, f"{target.family_name.lower()} {target.given_name}")
        assert target.address in found
        assert await autocomplete(client, "") == []
        too_many = await client.get("/directory/autocomplete", params={"q": "a", "limit": 51})
        assert too_many.status_code == 422


async def test_autocomplete_by_the_beginning_of_an_address(seeded: TrustSpace,
                                                           server: RunningTrustSpace) -> None:
    """A recipient field typed up to and past the ``@``: the domain is not a word of the
    index, so such a query is answered from the addresses themselves."""
    target = ROWS[0]
    local, _, domain = target.address.partition("@")
    async with http(seeded, server.url) as client:
        for typed in (target.address, f"{local}@", f"{local}@{domain[:3]}",
                      f"  {target.address.upper()} ", f"{local}@{domain}\x00"):
            assert target.address in await autocomplete(client, typed), typed
        answer = await client.get("/directory/autocomplete",
                                  params={"q": f"{local}@", "limit": 10})
        hit = next(h for h in answer.json()["results"] if h["address"] == target.address)
        assert hit["type"] == target.mailbox_type.value
        assert hit["family_name"] == target.family_name
        assert hit["profession"] == target.profession_label
        # the answers are the addresses beginning so, in order, at most ``limit``
        first = min(r.address for r in ROWS)
        whole = first.partition("@")[0] + "@"
        expected = sorted(r.address for r in ROWS if r.address.startswith(whole))[:10]
        assert await autocomplete(client, whole) == expected
        assert await autocomplete(client, "@") == []  # no address begins with "@"
        assert await autocomplete(client, f"@{domain}") == []  # nor with its domain
        assert await autocomplete(client, "nobody.at.all@nowhere.example") == []


async def test_the_published_extract_is_the_directory(seeded: TrustSpace,
                                                      server: RunningTrustSpace) -> None:
    async with http(seeded, server.url) as client:
        assert await extract_addresses(client) == {r.address for r in ROWS}


async def test_an_operator_publishes_with_its_certificate(
        seeded: TrustSpace, server: RunningTrustSpace, mta: IssuedCertificate) -> None:
    address = "zoe.leveque@ch-xyz.mssante.fr"
    async with http(seeded, server.url, mta) as operator, http(seeded, server.url) as public:
        before = await public.get("/extractions/Extraction_Correspondance_MSSante.txt")
        answer = await operator.patch(PATCH_URL, json=operation("add", address), headers=HEADERS)
        assert answer.status_code == 200, answer.text
        assert address in [t["value"] for t in answer.json().get("telecom", [])]
        # visible at once in the autocomplete (accents and case folded) and the extract
        assert address in await autocomplete(public, "leveque zoe")
        assert address in await extract_addresses(public)
        after = await public.get("/extractions/Extraction_Correspondance_MSSante.txt")
        assert after.headers["etag"] != before.headers["etag"]
        # withdrawn
        answer = await operator.patch(PATCH_URL, json=operation("delete", address),
                                      headers=HEADERS)
        assert answer.status_code == 200, answer.text
        assert address not in await autocomplete(public, "leveque zoe")
        assert address not in await extract_addresses(public)


async def test_a_mailbox_on_the_liste_rouge_never_leaves(
        seeded: TrustSpace, server: RunningTrustSpace, mta: IssuedCertificate) -> None:
    address = "zoe.leveque.rouge@ch-xyz.mssante.fr"
    async with http(seeded, server.url, mta) as operator, http(seeded, server.url) as public:
        before = await public.get("/extractions/Extraction_Correspondance_MSSante.txt")
        answer = await operator.patch(PATCH_URL, json=operation("add", address, liste_rouge=True),
                                      headers=HEADERS)
        assert answer.status_code == 200, answer.text
        after = await public.get("/extractions/Extraction_Correspondance_MSSante.txt")
        assert after.headers["etag"] == before.headers["etag"]  # nothing public changed
        assert address not in [t["value"] for t in answer.json().get("telecom", [])]
        assert address not in await autocomplete(public, "leveque rouge")
        assert await autocomplete(public, address) == []
        assert await autocomplete(public, "zoe.leveque.rouge@") == []
        assert address not in await extract_addresses(public)
        fhir = await public.get("/fhir/Practitioner", params={"mailbox-mss": address})
        assert fhir.status_code == 200
        assert fhir.json().get("total", 0) == 0
        read = await public.get(f"/fhir/Practitioner/{PRACTITIONER.id_nat_ps}")
        assert address not in read.text
    store = await open_directory(seeded.directory_database)
    try:
        kept = await store.get_mailbox(address)
    finally:
        await store.close()
    assert kept is not None and kept.liste_rouge  # kept, only hidden


async def test_publishing_needs_a_whitelisted_certificate(
        seeded: TrustSpace, server: RunningTrustSpace, mta: IssuedCertificate,
        tmp_path: Path) -> None:
    body = operation("add", "someone@ch-xyz.mssante.fr")
    async with http(seeded, server.url) as anonymous:
        answer = await anonymous.patch(PATCH_URL, json=body, headers=HEADERS)
        assert answer.status_code == 401
        assert answer.json()["resourceType"] == "OperationOutcome"
    stranger = seeded.pki.issue_server("mta.ailleurs.mssante.fr", organisation="AILLEURS",
                                       out_dir=tmp_path, name="stranger")
    async with http(seeded, server.url, stranger) as client:
        answer = await client.patch(PATCH_URL, json=body, headers=HEADERS)
        assert answer.status_code == 403
        assert "whitelist" in answer.json()["issue"][0]["diagnostics"]
    async with http(seeded, server.url, mta) as operator:
        other_domain = operation("add", "someone@medecin.mssante.fr")
        answer = await operator.patch(PATCH_URL, json=other_domain, headers=HEADERS)
        assert answer.status_code == 403
        assert "someone@medecin.mssante.fr" in answer.json()["issue"][0]["diagnostics"]
    seeded.pki.revoke(mta.serial, "keyCompromise")
    async with http(seeded, server.url, mta) as operator:
        answer = await operator.patch(PATCH_URL, json=body, headers=HEADERS)
        assert answer.status_code == 403
        assert "revoked" in answer.json()["issue"][0]["diagnostics"]


async def test_concurrent_searches_during_publications(
        seeded: TrustSpace, server: RunningTrustSpace, mta: IssuedCertificate) -> None:
    async with http(seeded, server.url, mta) as operator, http(seeded, server.url) as public:
        async def publish(n: int) -> int:
            body = operation("add", f"zoe.leveque{n}@ch-xyz.mssante.fr")
            return (await operator.patch(PATCH_URL, json=body, headers=HEADERS)).status_code

        statuses = await asyncio.gather(*(publish(n) for n in range(10)),
                                        *(autocomplete(public, "leveque") for _ in range(10)))
        assert statuses[:10] == [200] * 10
        found = await autocomplete(public, "leveque zoe")
        assert {f"zoe.leveque{n}@ch-xyz.mssante.fr" for n in range(10)} <= set(found)



async def page_links(client: httpx.AsyncClient, host: str) -> tuple[dict[str, str], list[str]]:
    """Links and fullUrls of a first page of practitioners, asked with ``Host: host``."""
    answer = await client.get("/fhir/Practitioner", params={"_count": "2"},
                              headers={"Host": host})
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    return ({link["relation"]: link["url"] for link in bundle["link"]},
            [entry["fullUrl"] for entry in bundle["entry"]])


async def test_fhir_links_ignore_a_forged_host_header(seeded: TrustSpace,
                                                      server: RunningTrustSpace) -> None:
    """Threat: links built from the Host header a client chooses; a cache or proxy
    keeping the page would send the next reader (and its certificate) elsewhere."""
    async with http(seeded, server.url) as client:
        links, full_urls = await page_links(client, "evil.example")
    assert set(links) == {"self", "next"}
    for url in [*links.values(), *full_urls]:
        assert url.startswith(f"{server.url}/fhir/"), url
    assert "evil" not in repr(links) + repr(full_urls)


async def test_fhir_links_name_the_configured_public_url(seeded: TrustSpace) -> None:
    seeded.public_url = "https://annuaire.sante.example/"  # as behind a reverse proxy
    async with RunningTrustSpace(seeded) as running, http(seeded, running.url) as client:
        links, full_urls = await page_links(client, "evil.example")
    for url in [*links.values(), *full_urls]:
        assert url.startswith("https://annuaire.sante.example/fhir/"), url
