"""PATCH against hostile callers and bodies, on both engines: authentication before
anything else (no oracle on identifiers, no database work for an anonymous caller),
bodies JSON cannot decode safely, strings a database refuses, the body's size.
Each answer is an OperationOutcome, never a 500; nothing is written."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from mssante.directory.fhir import create_fhir_router
from mssante.directory.fhir.patch import (
    MAILBOX_ORGANIZATION_URL,
    MAX_DEPTH,
    MAX_PATCH_BODY,
    check_strings,
)
from mssante.directory.fhir.resources import telecom
from mssante.directory.model import Mailbox, ResourceKind, TelecomOp
from mssante.directory.store import DirectoryStore
from mssante.domain.mailboxes import MailboxType
from tests.directory.fhir.conftest import (
    CHU,
    DOMAIN,
    TWIN_A,
    ZOE,
    authorise,
    diagnostics,
    fetch,
)

PS = "urn:oid:1.2.250.1.71.4.2.1"
NEW = f"zoe.nouvelle@{DOMAIN}"
URL = f"/fhir/Practitioner?identifier={PS}|{ZOE.nat}"


class _Watched:
    """The store, counting every use of its engine and every publication."""

    def __init__(self, store: DirectoryStore) -> None:
        self.store = store
        self.uses: list[str] = []

    @property
    def engine(self) -> AsyncEngine:
        self.uses.append("engine")
        return self.store.engine

    async def patch_telecom(self, kind: ResourceKind, resource_id: str,
                            ops: Sequence[TelecomOp], *, publisher: str,
                            allowed_domains: frozenset[str]) -> object:
        self.uses.append("patch_telecom")
        return await self.store.patch_telecom(kind, resource_id, ops, publisher=publisher,
                                              allowed_domains=allowed_domains)


@pytest_asyncio.fixture
async def watched(fresh: DirectoryStore) -> _Watched:
    return _Watched(fresh)


@pytest_asyncio.fixture
async def client(watched: _Watched) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(create_fhir_router(watched, authorise, base_url="http://directory.test/fhir"),
                       prefix="/fhir")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                 base_url="http://directory.test") as http:
        yield http


def contact(address: str = NEW, **metadata: Any) -> dict[str, Any]:
    return telecom(Mailbox(address=address, type=MailboxType.PER, **metadata))


def add(value: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "add"},
        {"name": "path", "valueString": "Practitioner"},
        {"name": "name", "valueString": "telecom"},
        {"name": "value", "valueContactPoint": value}]}]}


async def send(client: httpx.AsyncClient, url: str, content: bytes | str | dict[str, Any],
               status: int, *, operator: str | None = "op-test",
               content_type: str = "application/fhir+json") -> dict[str, Any]:
    headers = {"content-type": content_type}
    if operator is not None:
        headers["x-test-operator"] = operator
    if isinstance(content, dict):
        content = json.dumps(content)
    return await fetch(client, url, status, method="PATCH", content=content, headers=headers)


async def unchanged(client: httpx.AsyncClient) -> None:
    zoe = await fetch(client, f"/fhir/Practitioner/{ZOE.nat}")
    assert NEW not in [t["value"] for t in zoe.get("telecom", [])]


# Authentication first ------------------------------------------------------------------

ANONYMOUS: list[tuple[str, bytes | str | dict[str, Any], str]] = [
    # (url, body, content type): each answered 400/404/412/413/415/422 once authenticated
    (URL, add(contact()), "application/fhir+json"),  # 200
    (f"/fhir/Practitioner?identifier={PS}|810999999999", add(contact()),
     "application/fhir+json"),  # 404: an oracle on identifiers
    (f"/fhir/Practitioner?identifier={TWIN_A.pp_id}", add(contact()),
     "application/fhir+json"),  # 412: another one
    ("/fhir/Practitioner/810999999999", add(contact()), "application/fhir+json"),  # 404
    ("/fhir/Practitioner/not%20an%20id", add(contact()), "application/fhir+json"),  # 404
    ("/fhir/Practitioner?family=x", add(contact()), "application/fhir+json"),  # 400
    ("/fhir/Practitioner?identifier=%00", add(contact()), "application/fhir+json"),  # 400
    (URL, b"{not json", "application/fhir+json"),  # 400
    (URL, add({"system": "phone"}), "application/fhir+json"),  # 422
    (URL, add(contact()), "text/plain"),  # 415
    (URL, b" " * (MAX_PATCH_BODY + 1), "application/fhir+json"),  # 413
    (URL, b"[" * 30_000, "application/fhir+json"),  # RecursionError
]


@pytest.mark.parametrize(("url", "body", "content_type"), ANONYMOUS,
                         ids=[f"{i}" for i in range(len(ANONYMOUS))])
async def test_anonymous_patch_is_401_before_anything(
        client: httpx.AsyncClient, watched: _Watched, url: str,
        body: bytes | str | dict[str, Any], content_type: str) -> None:
    """Whatever an anonymous caller sends, 401: no 404/412 telling which identifiers
    exist, no parsing, no database work. An unknown certificate is 403 alike."""
    outcome = await send(client, url, body, 401, operator=None, content_type=content_type)
    assert outcome["issue"][0]["code"] == "login"
    outcome = await send(client, url, body, 403, operator="op-unknown",
                         content_type=content_type)
    assert "not an operator" in diagnostics(outcome)
    assert watched.uses == []
    await unchanged(client)


# Bodies JSON cannot decode safely --------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"[" * 30_000 + b"]" * 30_000,  # RecursionError while decoding
    b'{"resourceType": "Parameters", "parameter": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    b'{"a": ' * 8_000 + b"1" + b"}" * 8_000,
], ids=["arrays", "in-parameter", "objects"])
async def test_deeply_nested_json_is_400(client: httpx.AsyncClient, watched: _Watched,
                                         body: bytes) -> None:
    assert len(body) <= MAX_PATCH_BODY
    outcome = await send(client, URL, body, 400)
    assert outcome["issue"][0]["code"] == "structure"
    assert "patch_telecom" not in watched.uses


async def test_nesting_deeper_than_a_patch_is_400(client: httpx.AsyncClient) -> None:
    """Decodable, but deeper than any FHIRPath Patch: refused before it is read."""
    value: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        value = [value]
    outcome = await send(client, URL, {"resourceType": "Parameters", "parameter": value}, 400)
    assert str(MAX_DEPTH) in diagnostics(outcome)
    check_strings([[["x"]]])  # shallow: nothing to say


async def test_huge_integer_is_400(client: httpx.AsyncClient) -> None:
    """Python refuses to convert an integer of more than 4,300 digits (ValueError)."""
    body = json.dumps(add(contact())).replace('"valueString": "telecom"',
                                              '"valueString": "telecom", "x": ' + "9" * 5000)
    outcome = await send(client, URL, body, 400)
    assert outcome["issue"][0]["code"] == "structure"
    index = ('{"resourceType": "Parameters", "parameter": [{"name": "operation", "part": ['
             '{"name": "type", "valueCode": "insert"}, {"name": "path", "valueString": '
             '"Practitioner.telecom"}, {"name": "index", "valueInteger": ' + "1" * 4400
             + "}]}]}")
    await send(client, URL, index, 400)
    await unchanged(client)


async def test_body_beyond_the_limit_is_413(client: httpx.AsyncClient) -> None:
    padded = add(contact(description="x" * MAX_PATCH_BODY))
    outcome = await send(client, URL, padded, 413)
    assert outcome["issue"][0]["code"] == "too-costly"
    assert str(MAX_PATCH_BODY) in diagnostics(outcome)
    await unchanged(client)


# Strings a database refuses ---------------------------------------------------------

def _with_organisation(reference: str) -> dict[str, Any]:
    value = contact()
    value["extension"].append({"url": MAILBOX_ORGANIZATION_URL,
                               "valueReference": {"reference": reference}})
    return value


def _with_organisation_identifier(identifier: str) -> dict[str, Any]:
    value = contact()
    value["extension"].append({"url": MAILBOX_ORGANIZATION_URL, "valueIdentifier": {
        "system": "urn:oid:1.2.250.1.71.4.2.2", "value": identifier}})
    return value


STRINGS: list[tuple[str, dict[str, Any], str]] = [
    # (id, body, what the message names)
    ("description-surrogate", add(contact(description="Secr\ud800tariat")), "description"),
    ("description-nul", add(contact(description="Secr\x00tariat")), "description"),
    ("service-nul", add(contact(service="Cardio\x00")), "service"),
    ("responsible-nul", add(contact(responsible="\x00Dr X")), "responsible"),
    ("responsible-control", add(contact(responsible="Dr\x1bX")), "responsible"),
    ("description-newline", add(contact(description="a\nb")), "description"),
    ("description-del", add(contact(description="a\x7fb")), "description"),
    ("address-nul", add(contact(f"zoe\x00nouvelle@{DOMAIN}")), "valueContactPoint.value"),
    ("address-surrogate", add(contact(f"zoe\udc80@{DOMAIN}")), "valueContactPoint.value"),
    ("organisation-reference", add(_with_organisation(f"Organization/{CHU.st}\x00")),
     "reference"),
    ("organisation-identifier", add(_with_organisation_identifier(f"{CHU.st}\x00")),
     "valueIdentifier.value"),
    ("name-of-a-key", add(contact() | {"ext\x00": 1}), "a name"),
]


@pytest.mark.parametrize(("body", "named"), [(b, n) for _, b, n in STRINGS],
                         ids=[i for i, _, _ in STRINGS])
async def test_nul_and_lone_surrogates_in_patch_strings_are_422(
        client: httpx.AsyncClient, watched: _Watched, body: dict[str, Any],
        named: str) -> None:
    """A NUL is refused by PostgreSQL, a lone surrogate by every UTF-8 encoder (it was a
    500 while writing); the answer names the field."""
    outcome = await send(client, URL, json.dumps(body), 422)
    assert outcome["issue"][0]["code"] == "value"
    assert named in diagnostics(outcome) and "operation 1" in diagnostics(outcome)
    assert "patch_telecom" not in watched.uses
    await unchanged(client)


async def test_control_characters_in_where_literals_are_422(client: httpx.AsyncClient) -> None:
    """A FHIRPath literal writes a newline as ``\\n``: the address it names is checked
    once unescaped."""
    body = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "delete"},
        {"name": "path", "valueString": f"Practitioner.telecom.where(value='zoe\\n@{DOMAIN}')"},
    ]}]}
    outcome = await send(client, URL, body, 422)
    assert "U+000A" in diagnostics(outcome) and "address" in diagnostics(outcome)


async def test_nul_in_the_conditional_identifier_is_400(client: httpx.AsyncClient) -> None:
    for query in (f"identifier={PS}|{ZOE.nat}%00", "identifier=%00", f"identifier={ZOE.nat}"
                  "%00,1"):
        outcome = await send(client, f"/fhir/Practitioner?{query}", add(contact()), 400)
        assert "identifier" in diagnostics(outcome) and "U+0000" in diagnostics(outcome)
    await send(client, f"/fhir/Practitioner/{ZOE.nat}?_format=json%00", add(contact()), 400)
    await unchanged(client)


async def test_clean_strings_are_still_published(client: httpx.AsyncClient) -> None:
    """Accents, symbols and characters beyond the BMP are not control characters."""
    done = await send(client, URL, add(contact(description="Secrétariat € 😀",
                                               service="Cardiologie", responsible="Dr X")),
                      200)
    assert NEW in [t["value"] for t in done["telecom"]]
