"""An operator publishes its mailboxes to the trust space's directory by itself: FHIR
PATCH over mutual TLS on 127.0.0.1, against the real trust space, in order per
address, through trust-space and operator restarts, with refusals kept and shown."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.parameters import Parameters
from tests.publishing.conftest import DOMAIN, ID_NAT_PS, ID_NAT_ST, RPPS, UNKNOWN_RPPS
from typer.testing import CliRunner

from mssante.cli import app
from mssante.config import OperatorConfig
from mssante.directory.contact import contact_point, fhirpath_string, patch_parameters
from mssante.directory.model import Mailbox as DirectoryMailbox
from mssante.directory.model import Practitioner
from mssante.directory.store import open_directory
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.environment.operator import OperatorService
from mssante.pki.ca import IssuedCertificate
from mssante.pki.tls import client_context, server_context
from mssante.publishing.client import DirectoryClient, Verdict, classify
from mssante.publishing.publisher import DirectoryPublisher
from mssante.store import Store, open_store
from mssante.trustspace.server import RunningTrustSpace
from mssante.trustspace.service import TrustSpace

RULES = Rules()
ALICE = f"alice.martin@{DOMAIN}"
CARDIO = f"cardiologie@{DOMAIN}"


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def in_directory(ts: TrustSpace, address: str) -> DirectoryMailbox | None:
    directory = await open_directory(ts.directory_database)
    try:
        return await directory.get_mailbox(address)
    finally:
        await directory.close()


async def published(ts: TrustSpace, address: str, *, within: float = 20.0,
                    **expected: Any) -> None:
    """Wait until the directory holds ``address`` with the ``expected`` field values."""

    async def check() -> bool:
        found = await in_directory(ts, address)
        return found is not None and all(getattr(found, name) == value
                                          for name, value in expected.items())

    await eventually(check, f"{address} published with {expected}", timeout=within)


async def withdrawn(ts: TrustSpace, address: str) -> None:
    async def check() -> bool:
        return await in_directory(ts, address) is None

    await eventually(check, f"{address} withdrawn")


async def drained(store: Store) -> None:
    async def check() -> bool:
        return await store.directory_entries() == []

    await eventually(check, "an empty directory outbox")


async def public_telecoms(ts: TrustSpace, server: RunningTrustSpace, resource: str,
                          fhir_id: str) -> list[str]:
    """The telecom values a read of the resource shows (no client certificate)."""
    context = client_context(ts.pki.root_cert_file, check_hostname=True)
    async with httpx.AsyncClient(base_url=server.url, verify=context, timeout=5) as client:
        answer = await client.get(f"/fhir/{resource}/{fhir_id}")
    assert answer.status_code == 200, answer.text
    return [t["value"] for t in answer.json().get("telecom", [])]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def operator(operator_config: OperatorConfig) -> AsyncIterator[OperatorService]:
    """A running operator (no listeners) with dr (RPPS known to the directory) and
    ghost (an RPPS the directory does not know); retries tuned to tenths of seconds."""
    service = await start_operator(operator_config)
    assert service.store is not None
    await service.store.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin", rpps=RPPS)
    await service.store.create_person("ghost", PersonKind.HEALTH, "Dr Nobody",
                                      rpps=UNKNOWN_RPPS)
    try:
        yield service
    finally:
        await service.stop()


async def start_operator(config: OperatorConfig) -> OperatorService:
    service = OperatorService(config)
    await service.start()
    assert service.publisher is not None and service.publisher.running
    service.publisher.retry_first, service.publisher.retry_max = 0.1, 0.4
    return service


def store_of(service: OperatorService) -> Store:
    assert service.store is not None
    return service.store


# ------------------------------------------------ what is sent, and answers

def test_publications_are_valid_fhir_r4() -> None:
    point = contact_point(ALICE, MailboxType.PER, description="Dr Alice Martin",
                          liste_rouge=True)
    assert point["value"] == ALICE and point["system"] == "email"
    add = Parameters.model_validate(patch_parameters("Practitioner", "add", ALICE, point))
    part = add.parameter[0].part
    assert [p.name for p in part] == ["type", "path", "name", "value"]
    assert part[3].valueContactPoint.value == ALICE
    meta = {e["url"]: e for e in point["extension"][1]["extension"]}
    assert set(meta) == {"type", "description", "digitization", "listeRouge"}  # no empties
    delete = Parameters.model_validate(
        patch_parameters("Organization", "delete", "o'brien@x.mssante.fr"))
    assert delete.parameter[0].part[1].valueString == (
        "Organization.telecom.where(value='o\\'brien@x.mssante.fr')")
    assert fhirpath_string("a\\b'\n") == "'a\\\\b\\'\\n'"
    with pytest.raises(ValueError):
        contact_point("p@patient.mssante.fr", MailboxType.PAT)
    with pytest.raises(ValueError):
        patch_parameters("PractitionerRole", "delete", ALICE)
    with pytest.raises(ValueError):
        patch_parameters("Practitioner", "add", ALICE)  # an add needs its contact point


def outcome(status: int, diagnostics: str) -> httpx.Response:
    return httpx.Response(status, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": diagnostics}]})


@pytest.mark.parametrize("response,verdict,reason", [
    (httpx.Response(200, json={"resourceType": "Practitioner"}), Verdict.DONE, ""),
    (outcome(404, "no Practitioner has the identifier given"), Verdict.RETRY,
     "HTTP 404: no Practitioner has the identifier given"),
    (outcome(412, "several match"), Verdict.FAILED, "HTTP 412: several match"),
    (outcome(401, "needs a certificate"), Verdict.RETRY, "HTTP 401: needs a certificate"),
    (outcome(403, "not bound"), Verdict.RETRY, "HTTP 403: not bound"),
    (outcome(415, "not FHIR JSON"), Verdict.FAILED, "HTTP 415: not FHIR JSON"),
    (outcome(422, "bad patch"), Verdict.FAILED, "HTTP 422: bad patch"),
    (outcome(503, "directory busy"), Verdict.RETRY, "HTTP 503: directory busy"),
    (outcome(429, "slow down"), Verdict.RETRY, "HTTP 429: slow down"),
    (httpx.Response(502, text="Bad Gateway"), Verdict.RETRY, "HTTP 502: Bad Gateway"),
    (httpx.Response(404, json={"detail": "Not Found"}), Verdict.RETRY,
     "HTTP 404: Not Found (no directory API at this URL)"),
    (httpx.Response(400, text=""), Verdict.FAILED, "HTTP 400: Bad Request"),
    (httpx.Response(301, headers={"Location": "/x"}), Verdict.RETRY,
     "HTTP 301: Moved Permanently"),
])
def test_what_an_answer_means(response: httpx.Response, verdict: Verdict, reason: str) -> None:
    got = classify(response)
    assert (got.verdict, got.reason, got.status) == (verdict, reason, response.status_code)


async def test_an_unreachable_trust_space_is_retried(seeded: TrustSpace,
                                                     mta: IssuedCertificate) -> None:
    async with DirectoryClient(f"https://127.0.0.1:{closed_port()}",
                               ca_file=seeded.pki.root_cert_file, cert_file=mta.cert_file,
                               key_file=mta.key_file, timeout=2) as client:
        got = await client.publish("Practitioner", ID_NAT_PS, "delete", ALICE)
    assert got.verdict is Verdict.RETRY and got.status is None
    assert got.reason.startswith("ConnectError")


async def test_a_trust_space_outside_our_pki_is_never_trusted(
        foreign: Any, seeded: TrustSpace, server: RunningTrustSpace,
        mta: IssuedCertificate) -> None:
    async with DirectoryClient(server.url, ca_file=foreign.pki.root_cert_file,
                               cert_file=mta.cert_file, key_file=mta.key_file,
                               timeout=2) as client:
        got = await client.publish("Practitioner", ID_NAT_PS, "delete", ALICE)
    assert got.verdict is Verdict.RETRY and "CERTIFICATE_VERIFY_FAILED" in got.reason
    assert await in_directory(seeded, ALICE) is None


# ------------------------------------------------------------- end to end

async def test_a_mailbox_follows_its_changes_into_the_directory(
        operator: OperatorService, seeded: TrustSpace, server: RunningTrustSpace) -> None:
    store = store_of(operator)
    await store.create_mailbox(ALICE, MailboxType.PER, rules=RULES, owner="dr",
                               description="Dr Alice Martin", service="Cardiologie")
    await published(seeded, ALICE, practitioner=ID_NAT_PS, description="Dr Alice Martin",
                    service="Cardiologie", liste_rouge=False, type=MailboxType.PER)
    found = await in_directory(seeded, ALICE)
    assert found is not None and "mta.ch-xyz.mssante.fr" in found.publisher  # its DN
    assert await public_telecoms(seeded, server, "Practitioner", ID_NAT_PS) == [ALICE]

    await store.update_mailbox(ALICE, description="Dr A. Martin, cardiologue",
                               liste_rouge=True)
    await published(seeded, ALICE, description="Dr A. Martin, cardiologue", liste_rouge=True)
    assert await public_telecoms(seeded, server, "Practitioner", ID_NAT_PS) == []  # hidden

    await store.set_mailbox_active(ALICE, False)
    await withdrawn(seeded, ALICE)
    await store.set_mailbox_active(ALICE, True)
    await published(seeded, ALICE, description="Dr A. Martin, cardiologue", liste_rouge=True)
    await store.update_mailbox(ALICE, liste_rouge=False)
    await published(seeded, ALICE, liste_rouge=False)
    assert await public_telecoms(seeded, server, "Practitioner", ID_NAT_PS) == [ALICE]
    await store.delete_mailbox(ALICE)
    await withdrawn(seeded, ALICE)
    await drained(store)


async def test_org_mailboxes_go_on_their_organisation(
        operator: OperatorService, seeded: TrustSpace, server: RunningTrustSpace) -> None:
    store = store_of(operator)
    await store.create_mailbox(CARDIO, MailboxType.ORG, rules=RULES, responsible=["dr"],
                               service="Cardiologie", structure=ID_NAT_ST)
    await published(seeded, CARDIO, organisation=ID_NAT_ST, type=MailboxType.ORG,
                    service="Cardiologie", responsible="Dr Alice Martin")
    assert await public_telecoms(seeded, server, "Organization", ID_NAT_ST) == [CARDIO]
    await store.delete_mailbox(CARDIO)
    await withdrawn(seeded, CARDIO)
    await drained(store)


async def test_trust_space_down_then_up_loses_and_reorders_nothing(
        operator: OperatorService, seeded: TrustSpace, server: RunningTrustSpace) -> None:
    store = store_of(operator)
    await server.stop()
    other = f"secretariat@{DOMAIN}"
    await store.create_mailbox(ALICE, MailboxType.PER, rules=RULES, owner="dr",
                               description="v1")
    await store.create_mailbox(other, MailboxType.ORG, rules=RULES, responsible=["dr"],
                               structure=ID_NAT_ST)
    await store.update_mailbox(ALICE, description="v2")
    await store.set_mailbox_active(ALICE, False)
    await store.delete_mailbox(other)
    await store.set_mailbox_active(ALICE, True)
    await store.update_mailbox(ALICE, description="v3", service="Rythmologie")

    async def retried() -> bool:
        entries = await store.directory_entries()
        return bool(entries) and entries[0].attempts >= 2

    await eventually(retried, "retries while the trust space is down")
    entries = await store.directory_entries()
    assert [e.operation for e in entries if e.address == ALICE] == [
        "add", "add", "delete", "add", "add"]
    assert all(e.state == "pending" for e in entries)
    assert entries[0].last_error.startswith("ConnectError")
    assert await in_directory(seeded, ALICE) is None

    await server.start()  # the same port
    await drained(store)
    found = await in_directory(seeded, ALICE)
    assert found is not None and (found.description, found.service) == ("v3", "Rythmologie")
    assert await in_directory(seeded, other) is None
    assert await public_telecoms(seeded, server, "Practitioner", ID_NAT_PS) == [ALICE]
    assert await public_telecoms(seeded, server, "Organization", ID_NAT_ST) == []


async def test_pending_publications_survive_an_operator_restart(
        operator_config: OperatorConfig, seeded: TrustSpace,
        server: RunningTrustSpace) -> None:
    service = await start_operator(operator_config)
    try:
        store = store_of(service)
        await store.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin", rpps=RPPS)
        await server.stop()
        await store.create_mailbox(ALICE, MailboxType.PER, rules=RULES, owner="dr",
                                   description="before the restart")

        async def tried() -> bool:
            entries = await store.directory_entries()
            return bool(entries) and entries[0].attempts >= 1

        await eventually(tried, "a failed attempt")
    finally:
        await service.stop()
    # while the operator is down, an administrator changes the mailbox (the CLI)
    offline = await open_store(operator_config.database_url)
    try:
        await offline.update_mailbox(ALICE, description="while the operator was down")
        assert len(await offline.directory_entries()) == 2
    finally:
        await offline.close()
    await server.start()
    service = await start_operator(operator_config)
    try:
        await published(seeded, ALICE, description="while the operator was down")
        await drained(store_of(service))
        # a change made by another process reaches a running operator (it polls)
        cli = await asyncio.to_thread(CliRunner().invoke, app, [
            "operator", "mailbox", "set", ALICE, "--service", "Cardiologie",
            "-c", str(operator_config.path)])
        assert cli.exit_code == 0, cli.output
        await published(seeded, ALICE, service="Cardiologie")
        await drained(store_of(service))
    finally:
        await service.stop()
    assert await public_telecoms(seeded, server, "Practitioner", ID_NAT_PS) == [ALICE]


async def test_refusals_wait_with_their_reason_and_do_not_block(
        operator: OperatorService, seeded: TrustSpace, operator_config: OperatorConfig) -> None:
    """403 (a domain the whitelist does not bind to us) and 404 (a professional the
    directory does not know yet) are retried with their reason shown, without holding
    back other addresses; once the directory knows the professional, the mailbox is
    published by itself."""
    store = store_of(operator)
    elsewhere = "alice.martin@autre.mssante.fr"  # not a domain of our certificate
    unknown = f"nobody@{DOMAIN}"  # its owner's RPPS is not in the directory
    await store.create_mailbox(elsewhere, MailboxType.PER, rules=RULES, owner="dr")
    await store.create_mailbox(unknown, MailboxType.PER, rules=RULES, owner="ghost")
    await store.update_mailbox(elsewhere, description="later entry of a refused address")
    await store.create_mailbox(ALICE, MailboxType.PER, rules=RULES, owner="dr")
    await published(seeded, ALICE)  # refusals hold nothing back

    async def waiting() -> bool:
        entries = await store.directory_entries()
        return (len(entries) == 3 and all(e.state == "pending" for e in entries)
                and all(e.attempts >= 1 and e.last_error for e in entries
                        if e.address == unknown or e.id == min(x.id for x in entries)))

    await eventually(waiting, "two addresses waiting with their reason")
    cli = await asyncio.to_thread(CliRunner().invoke, app, [
        "operator", "directory", "status", "--json", "-c", str(operator_config.path)])
    assert cli.exit_code == 0, cli.output
    rows = sorted(json.loads(cli.output), key=lambda r: r["id"])
    assert [(r["address"], r["state"]) for r in rows] == [
        (elsewhere, "pending"), (unknown, "pending"), (elsewhere, "pending")]
    assert rows[0]["last_error"].startswith("HTTP 403: ") and elsewhere in rows[0]["last_error"]
    assert rows[1]["last_error"] == "HTTP 404: no Practitioner has the identifier given"
    assert rows[2]["attempts"] == 0  # in order: waits behind the first of its address
    assert await in_directory(seeded, elsewhere) is None

    # the directory learns the professional: the next retry publishes the mailbox
    directory = await open_directory(seeded.directory_database)
    try:
        await directory.add_practitioner(Practitioner(
            id_nat_ps="8" + UNKNOWN_RPPS, id_type="8", pp_id=UNKNOWN_RPPS,
            family_name="NOBODY"))
    finally:
        await directory.close()
    # (the backoff doubles from 2 s: the next retry comes within about 40 s)
    await published(seeded, unknown, practitioner="8" + UNKNOWN_RPPS, within=60.0)
    await eventually(lambda: _only_for(store, elsewhere), "nobody@ published")


async def _only_for(store: Store, address: str) -> bool:
    return {e.address for e in await store.directory_entries()} == {address}


async def test_a_stopped_publisher_gives_back_what_it_was_sending(
        seeded: TrustSpace, mta: IssuedCertificate, tmp_path: Path) -> None:
    """A send cut by stop() is due again at once (not after its lease)."""
    cert = seeded.https_cert

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # TLS is up, the request comes, no answer ever goes
        writer.close()

    silent = await asyncio.start_server(
        never_answer, "127.0.0.1", 0,
        ssl=server_context(cert.cert_file, cert.key_file, seeded.pki.root_cert_file,
                           client_cert="optional"))
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'op.sqlite3'}")
    try:
        await store.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin", rpps=RPPS)
        await store.create_mailbox(ALICE, MailboxType.PER, rules=RULES, owner="dr")
        client = DirectoryClient(f"https://127.0.0.1:{silent.sockets[0].getsockname()[1]}",
                                 ca_file=seeded.pki.root_cert_file, cert_file=mta.cert_file,
                                 key_file=mta.key_file, timeout=30)
        publisher = DirectoryPublisher(store, client, poll_interval=0.1, timeout=30)
        publisher.start()

        async def leased() -> bool:
            [entry] = await store.directory_entries()
            return entry.next_attempt_at > time.time() + 60

        await eventually(leased, "the entry leased by the publisher")
        await asyncio.sleep(0.3)  # the request is out, its answer awaited
        await publisher.stop()
        [entry] = await store.directory_entries()
        assert entry.attempts == 0 and entry.next_attempt_at <= time.time()
        assert store.on_directory_entry is None
    finally:
        silent.close()
        await silent.wait_closed()
        await store.close()
