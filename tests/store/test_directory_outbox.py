"""The directory outbox: entries written with each change, in order per address,
backed off on retry, kept when refused for good; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mssante.database import create_engine, database_url
from mssante.directory.contact import METADATA_URL
from mssante.domain.mailboxes import MailboxType, PersonKind, Role, Rules
from mssante.errors import Conflict, NotFound, PolicyViolation
from mssante.store import Store
from mssante.store.migrate import alembic_config, head_revision
from mssante.store.models import DirectoryEntry
from mssante.store.outbox import backoff

DOMAIN = "ch-xyz.mssante.fr"
RULES = Rules()
PER = f"alice.martin@{DOMAIN}"
ORG = f"cardiologie@{DOMAIN}"
DR_ID = "810101010101"  # "8" + dr's RPPS (tests/store/conftest.py)
FINESS_ST = "1750000001"
LEASE = 60.0


def later(seconds: float = 0.0) -> float:
    return time.time() + seconds


def metadata(entry: DirectoryEntry) -> dict[str, Any]:
    """The mailbox metadata extension of an add, as {name: value}."""
    assert entry.body is not None
    point = json.loads(entry.body)
    [ext] = [e for e in point["extension"] if e["url"] == METADATA_URL]
    out: dict[str, Any] = {}
    for part in ext["extension"]:
        value = next(v for k, v in part.items() if k.startswith("value"))
        out[part["url"]] = value["coding"][0]["code"] if part["url"] == "type" else value
    return out


async def entries(store: Store) -> list[tuple[str, str, str, str]]:
    return [(e.address, e.operation, e.resource, e.identifier)
            for e in await store.directory_entries()]


# ------------------------------------------------------ what gets published

async def test_a_per_mailbox_is_published_on_its_owners_rpps(people: Store) -> None:
    mailbox = await people.create_mailbox("Alice.Martin@" + DOMAIN, MailboxType.PER,
                                          rules=RULES, owner="dr", description="Dr Martin",
                                          service="Cardiologie")
    assert mailbox.directory_id == DR_ID and not mailbox.liste_rouge
    assert (await people.get_mailbox(PER)) == mailbox
    [entry] = await people.directory_entries()
    assert (entry.address, entry.resource, entry.identifier, entry.operation) == (
        PER, "Practitioner", DR_ID, "add")
    assert (entry.state, entry.attempts, entry.last_error) == ("pending", 0, "")
    assert entry.next_attempt_at == entry.created_at
    assert json.loads(entry.body or "")["value"] == PER  # the lower-case key
    assert metadata(entry) == {"type": "PER", "description": "Dr Martin",
                               "service": "Cardiologie", "digitization": False,
                               "listeRouge": False}


async def test_what_is_not_published(people: Store) -> None:
    # a professional without an RPPS, a patient, an ORG without its structure
    await people.create_mailbox(f"bruno.petit@{DOMAIN}", MailboxType.PER, rules=RULES,
                                owner="dr2")
    await people.create_mailbox(f"279035121518989@{DOMAIN}", MailboxType.PAT, rules=RULES,
                                owner="pat")
    org = await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES, responsible=["dr"])
    assert org.directory_id is None
    assert await people.directory_entries() == []
    await people.update_mailbox(ORG, description="Cardiologie")
    await people.set_mailbox_active(ORG, False)
    await people.delete_mailbox(ORG)
    assert await people.directory_entries() == []
    assert await people.next_directory_due() is None


async def test_org_app_and_cab_identifiers(people: Store) -> None:
    await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES, responsible=["dr", "dr2"],
                                structure=FINESS_ST, liste_rouge=True)
    await people.create_mailbox(f"dpi@{DOMAIN}", MailboxType.APP, rules=RULES,
                                responsible=["dr"], structure="32A0000012",
                                cert_dn="CN=dpi,O=CH XYZ,C=FR")
    # CAB: the first responsible professional having an RPPS (dr2 has none)
    await people.create_mailbox(f"cabinet@{DOMAIN}", MailboxType.CAB, rules=RULES,
                                responsible=["dr2", "dr"], digitization=True)
    got = await people.directory_entries()
    assert [(e.address, e.resource, e.identifier) for e in got] == [
        (ORG, "Organization", FINESS_ST),
        (f"dpi@{DOMAIN}", "Organization", "32A0000012"),
        (f"cabinet@{DOMAIN}", "Practitioner", DR_ID)]
    assert metadata(got[0]) == {"type": "ORG", "responsible": "Dr Alice Martin, Dr Bruno Petit",
                                "digitization": False, "listeRouge": True}
    assert metadata(got[2])["digitization"] is True
    assert (await people.get_mailbox(f"cabinet@{DOMAIN}")).digitization  # type: ignore[union-attr]


async def test_a_structure_is_only_for_org_and_app(people: Store, count_rows) -> None:
    with pytest.raises(PolicyViolation, match="only ORG and APP"):
        await people.create_mailbox(PER, MailboxType.PER, rules=RULES, owner="dr",
                                    structure=FINESS_ST)
    with pytest.raises(ValueError, match="idNatSt"):
        await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES, responsible=["dr"],
                                    structure="1750000001' or 1=1")
    assert await count_rows("mailboxes") == 0


# ------------------------------------------------- written with the change

async def test_a_refused_change_writes_no_entry(mailboxes: Store, count_rows) -> None:
    before = await count_rows("directory_outbox")
    assert before == 1  # Alice.Martin@'s creation (cardiologie@ has no structure)
    with pytest.raises(Conflict):  # the address exists: the whole transaction goes
        await mailboxes.create_mailbox(PER, MailboxType.PER, rules=RULES, owner="dr")
    with pytest.raises(PolicyViolation):  # a staff member may not hold a PER mailbox
        await mailboxes.create_mailbox(f"sec@{DOMAIN}", MailboxType.PER, rules=RULES,
                                       owner="sec")
    with pytest.raises(NotFound):
        await mailboxes.delete_mailbox(f"nobody@{DOMAIN}")
    with pytest.raises(NotFound):
        await mailboxes.update_mailbox(f"nobody@{DOMAIN}", description="x")
    with pytest.raises(NotFound):
        await mailboxes.set_mailbox_active(f"nobody@{DOMAIN}", False)
    with pytest.raises(Conflict):  # the last responsible stays
        await mailboxes.revoke(ORG, "dr")
    assert await count_rows("directory_outbox") == before


async def test_changes_close_reopen_delete(mailboxes: Store) -> None:
    updated = await mailboxes.update_mailbox(PER, description="Dr Alice Martin",
                                             liste_rouge=True)
    assert updated.description == "Dr Alice Martin" and updated.liste_rouge
    assert await mailboxes.get_mailbox(PER) == updated
    await mailboxes.update_mailbox(PER, description="Dr Alice Martin")  # no change: nothing
    await mailboxes.set_mailbox_active(PER, False)
    await mailboxes.set_mailbox_active(PER, False)  # already closed: nothing
    await mailboxes.update_mailbox(PER, service="Cardiologie")  # closed: kept, not published
    await mailboxes.set_mailbox_active(PER, True)
    await mailboxes.set_mailbox_active(PER, False)
    await mailboxes.delete_mailbox(PER)  # closed: withdrawn already
    got = await mailboxes.directory_entries()
    assert [e.operation for e in got] == ["add", "add", "delete", "add", "delete"]
    assert all(e.address == PER and e.identifier == DR_ID for e in got)
    assert metadata(got[1])["listeRouge"] is True
    assert metadata(got[3]) == {"type": "PER", "description": "Dr Alice Martin",
                                "service": "Cardiologie", "digitization": False,
                                "listeRouge": True}
    assert got[2].body is None and got[4].body is None
    assert [e.id for e in got] == sorted(e.id for e in got)


async def test_deleting_an_open_mailbox_withdraws_it(mailboxes: Store) -> None:
    await mailboxes.delete_mailbox(PER)
    assert [e.operation for e in await mailboxes.directory_entries()] == ["add", "delete"]


async def test_responsible_changes_are_published(people: Store) -> None:
    await people.create_person("dr3", PersonKind.HEALTH, "Dr Claire Durand", rpps="10303030303")
    await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES, responsible=["dr"],
                                structure=FINESS_ST)
    await people.grant(ORG, "sec", Role.AUTHORISED, rules=RULES)  # not published: nothing
    await people.grant(ORG, "dr3", Role.RESPONSIBLE, rules=RULES)
    await people.grant(ORG, "dr3", Role.RESPONSIBLE, rights="r", rules=RULES)  # same role
    await people.revoke(ORG, "sec")
    await people.revoke(ORG, "dr")
    await people.grant(ORG, "dr", Role.RESPONSIBLE, rules=RULES)
    await people.delete_person("dr3")
    got = await people.directory_entries()
    assert [metadata(e).get("responsible") for e in got] == [
        "Dr Alice Martin", "Dr Alice Martin, Dr Claire Durand", "Dr Claire Durand",
        "Dr Alice Martin, Dr Claire Durand", "Dr Alice Martin"]


async def test_the_store_signals_new_entries_after_commit(people: Store) -> None:
    seen: list[int] = []
    people.on_directory_entry = lambda: seen.append(1)
    await people.create_mailbox(f"bruno.petit@{DOMAIN}", MailboxType.PER, rules=RULES,
                                owner="dr2")  # not published: no signal
    assert seen == []
    await people.create_mailbox(PER, MailboxType.PER, rules=RULES, owner="dr")
    await people.update_mailbox(PER, service="Cardiologie")
    assert len(seen) == 2
    assert len(await people.directory_entries()) == 2  # committed when signalled


# --------------------------------------------------------- claims and order

async def test_claims_follow_each_address_in_order(mailboxes: Store) -> None:
    await mailboxes.update_mailbox(PER, service="Cardiologie")
    await mailboxes.create_mailbox(f"soins@{DOMAIN}", MailboxType.ORG, rules=RULES,
                                   responsible=["dr"], structure=FINESS_ST)
    await mailboxes.set_mailbox_active(PER, False)
    first, second, other, third = await mailboxes.directory_entries()
    now = later(1)
    claimed = await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    assert [e.id for e in claimed] == [first.id, other.id]  # one head per address
    assert all(e.next_attempt_at == now + LEASE for e in claimed)
    assert await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE) == []
    await mailboxes.directory_done(first.id)
    [claimed_second] = await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    assert claimed_second.id == second.id
    await mailboxes.directory_done(second.id)
    await mailboxes.directory_done(other.id)
    [claimed_third] = await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    assert (claimed_third.id, claimed_third.operation) == (third.id, "delete")
    await mailboxes.directory_done(third.id)
    await mailboxes.directory_done(third.id)  # again: nothing to do
    assert await mailboxes.directory_entries() == []


async def test_a_dead_publishers_lease_ends_and_a_clean_stop_releases(
        mailboxes: Store) -> None:
    [entry] = await mailboxes.directory_entries()
    now = later(1)
    await mailboxes.claim_directory_entries(now=now, limit=1, lease=LEASE)
    assert await mailboxes.next_directory_due() == now + LEASE
    assert await mailboxes.claim_directory_entries(now=now + LEASE - 1, limit=1,
                                                   lease=LEASE) == []
    [again] = await mailboxes.claim_directory_entries(now=now + LEASE, limit=1, lease=LEASE)
    assert again.id == entry.id and again.attempts == 0
    await mailboxes.release_directory_claims([entry.id], now=now + LEASE + 1)
    [released] = await mailboxes.directory_entries()
    assert released.next_attempt_at == now + LEASE + 1 and released.attempts == 0
    await mailboxes.release_directory_claims([], now=now)


async def test_retries_back_off_exponentially_up_to_five_minutes(mailboxes: Store) -> None:
    assert len(await mailboxes.directory_entries()) == 1
    now = later(1)
    waits = []
    for _ in range(10):
        [claimed] = await mailboxes.claim_directory_entries(now=now, limit=1, lease=LEASE)
        when = await mailboxes.directory_retry(claimed.id, error="connection refused", now=now)
        assert when is not None
        waits.append(when - now)
        assert await mailboxes.claim_directory_entries(now=when - 0.5, limit=1,
                                                       lease=LEASE) == []
        assert await mailboxes.next_directory_due() == when
        now = when
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    [stored] = await mailboxes.directory_entries()
    assert (stored.attempts, stored.last_error, stored.state) == (10, "connection refused",
                                                                  "pending")
    assert [backoff(n) for n in (0, 1, 2, 9, 1000)] == [0.0, 2.0, 4.0, 300.0, 300.0]
    assert backoff(3, first=0.1, cap=0.3) == 0.3


async def test_a_waiting_head_holds_back_its_address_only(mailboxes: Store) -> None:
    await mailboxes.update_mailbox(PER, service="Cardiologie")  # due now, behind the head
    head, _ = await mailboxes.directory_entries()
    now = later(1)
    await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    when = await mailboxes.directory_retry(head.id, error="503 busy", now=now)
    # the second entry is due already, but it is not the head: the next due is the retry
    assert await mailboxes.next_directory_due() == when
    assert await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE) == []


async def test_a_refused_entry_is_kept_and_the_address_goes_on(mailboxes: Store) -> None:
    await mailboxes.update_mailbox(PER, service="Cardiologie")
    await mailboxes.update_mailbox(PER, service="Rythmologie")
    first, second, third = await mailboxes.directory_entries()
    now = later(1)
    await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    await mailboxes.directory_failed(first.id, error="404 no Practitioner 810101010101",
                                     now=now)
    [claimed] = await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    assert claimed.id == second.id
    await mailboxes.directory_failed(second.id, error="422 bad patch", now=now)
    # a failed entry neither retries nor is claimed again
    assert await mailboxes.directory_retry(second.id, error="x", now=now) is None
    failed = await mailboxes.directory_entries(state="failed")
    assert [(e.id, e.attempts, e.last_error) for e in failed] == [
        (first.id, 1, "404 no Practitioner 810101010101"), (second.id, 1, "422 bad patch")]
    assert [e.id for e in await mailboxes.directory_entries(state="pending")] == [third.id]
    [claimed] = await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    assert claimed.id == third.id
    # the later success states the whole current state: the refusals are superseded
    await mailboxes.directory_done(third.id)
    assert await mailboxes.directory_entries() == []
    with pytest.raises(ValueError, match="state"):
        await mailboxes.directory_entries(state="sent")


async def test_a_success_supersedes_refusals_on_its_resource_only(mailboxes: Store) -> None:
    await mailboxes.create_person("dr3", PersonKind.HEALTH, "Dr Claire Durand",
                                  rpps="10303030303")
    await mailboxes.delete_mailbox(PER)
    await mailboxes.create_mailbox(PER, MailboxType.PER, rules=RULES, owner="dr3")
    first_add, delete, second_add = await mailboxes.directory_entries()
    assert (delete.identifier, second_add.identifier) == (DR_ID, "810303030303")
    now = later(1)
    for entry in (first_add, delete):
        await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
        await mailboxes.directory_failed(entry.id, error="HTTP 503", now=now)
    await mailboxes.claim_directory_entries(now=now, limit=10, lease=LEASE)
    await mailboxes.directory_done(second_add.id)
    # the refused withdrawal from dr's Practitioner still matters: it stays
    assert [e.id for e in await mailboxes.directory_entries()] == [first_add.id, delete.id]


async def test_two_stores_never_claim_the_same_entry(database, people: Store) -> None:
    other = await database.open()
    for n in range(30):
        await people.create_mailbox(f"s{n:02}@{DOMAIN}", MailboxType.ORG, rules=RULES,
                                    responsible=["dr"], structure=FINESS_ST)
    now = later(1)
    claims: list[DirectoryEntry] = []

    async def publisher(store: Store) -> None:
        while batch := await store.claim_directory_entries(now=now, limit=3, lease=LEASE):
            claims.extend(batch)
            await asyncio.sleep(0)

    await asyncio.gather(*(publisher(s) for s in (people, other, people, other)))
    ids = [e.id for e in claims]
    assert len(ids) == len(set(ids)) == 30


# ---------------------------------------------------------------- republish

async def test_republish_all_or_one(mailboxes: Store) -> None:
    await mailboxes.create_mailbox(f"soins@{DOMAIN}", MailboxType.ORG, rules=RULES,
                                   responsible=["dr"], structure=FINESS_ST)
    await mailboxes.create_mailbox(f"closed@{DOMAIN}", MailboxType.ORG, rules=RULES,
                                   responsible=["dr"], structure=FINESS_ST)
    await mailboxes.set_mailbox_active(f"closed@{DOMAIN}", False)
    before = len(await mailboxes.directory_entries())
    assert await mailboxes.republish() == 2  # PER and soins@; not closed@ nor cardiologie@
    assert await mailboxes.republish(PER.upper()) == 1
    assert await mailboxes.republish(ORG) == 0  # not published (no structure)
    with pytest.raises(NotFound):
        await mailboxes.republish(f"nobody@{DOMAIN}")
    got = (await entries(mailboxes))[before:]
    assert got == [(PER, "add", "Practitioner", DR_ID),
                   (f"soins@{DOMAIN}", "add", "Organization", FINESS_ST),
                   (PER, "add", "Practitioner", DR_ID)]


# ----------------------------------------------------------------- migration

def _upgrade_to_0001(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "0001")


async def test_migration_gives_existing_mailboxes_their_directory_id(database) -> None:
    engine = create_engine(database_url(database.url), schema=database.schema)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to_0001)
            for pid, login, rpps in ((1, "dr", "10101010101"), (2, "dr2", None),
                                     (3, "dr3", "10303030303")):
                await conn.execute(text(
                    "INSERT INTO persons (id, login, kind, display_name, rpps, created_at) "
                    "VALUES (:id, :login, 'professional', :login, :rpps, 0)"),
                    {"id": pid, "login": login, "rpps": rpps})
            boxes = ((1, "a@x.mssante.fr", "PER", [(1, "owner")]),
                     (2, "b@x.mssante.fr", "PER", [(2, "owner")]),
                     (3, "c@x.mssante.fr", "CAB", [(2, "responsible"), (3, "responsible"),
                                                   (1, "authorised")]),
                     (4, "d@x.mssante.fr", "ORG", [(1, "responsible")]))
            for mid, address, kind, roles in boxes:
                await conn.execute(text(
                    "INSERT INTO mailboxes (id, address, display_address, domain, type, "
                    "description, organisation, service, active, uidvalidity, uidnext, "
                    "created_at) VALUES (:id, :a, :a, 'x.mssante.fr', :t, '', '', '', "
                    ":active, 1, 1, 0)"), {"id": mid, "a": address, "t": kind, "active": True})
                for person, role in roles:
                    await conn.execute(text(
                        "INSERT INTO mailbox_roles (mailbox_id, person_id, role, rights) "
                        "VALUES (:m, :p, :r, 'rw')"), {"m": mid, "p": person, "r": role})
    finally:
        await engine.dispose()
    store = await database.open()
    assert await store.schema_revision() == head_revision()
    found = {m.address: (m.directory_id, m.liste_rouge, m.digitization)
             for m in await store.list_mailboxes()}
    assert found == {"a@x.mssante.fr": (DR_ID, False, False),
                     "b@x.mssante.fr": (None, False, False),
                     "c@x.mssante.fr": ("810303030303", False, False),
                     "d@x.mssante.fr": (None, False, False)}
    assert await store.directory_entries() == []  # nothing queued: republish does that
    assert await store.republish() == 2
