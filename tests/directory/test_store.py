"""The directory store on SQLite and PostgreSQL: import, export, the referential,
publication by operators (telecom patches) and the search index's feed.

PostgreSQL: ``MSSANTE_TEST_POSTGRES_URL`` (default the local trust-auth server); each
test gets a fresh schema, dropped afterwards. When the server cannot be reached the
PostgreSQL cases skip, unless ``MSSANTE_REQUIRE_POSTGRES`` is set: then they fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from mssante.database import database_url
from mssante.directory import schema
from mssante.directory import store as store_module
from mssante.directory.extract import ExtractRow
from mssante.directory.generate import generate_rows
from mssante.directory.model import (
    Mailbox,
    Organisation,
    Practitioner,
    ResourceKind,
    TelecomDelete,
    TelecomInsert,
    TelecomOp,
    TelecomReplace,
)
from mssante.directory.store import (
    SCHEMA_VERSION,
    DirectoryStore,
    ImportReport,
    open_directory,
    row_hash,
    search_text,
)
from mssante.directory.text import spaced, words
from mssante.domain.mailboxes import MailboxType
from mssante.errors import Conflict, NotFound, PolicyViolation, StoreError
from tests.conftest import POSTGRES_URL, postgres_schema

COUNT = 1500
ROWS = list(generate_rows(COUNT, seed=7))
PER_ROW = next(r for r in ROWS if r.mailbox_type is MailboxType.PER and r.structure_id
               and r.skill_label)
ORG_ROW = next(r for r in ROWS if r.mailbox_type is MailboxType.ORG)
OTHER_PER = next(r for r in ROWS if r.mailbox_type is MailboxType.PER
                 and r.pp_national_id != PER_ROW.pp_national_id)

DN = "CN=mta.ch-test.mssante.fr,O=CH Test"
DOMAIN = "ch-test.mssante.fr"
DOMAINS = frozenset({DOMAIN})

DR = Practitioner("810000000017", "8", "10000000017", civility="DR", family_name="Lefèvre",
                  given_name="Irène", profession_category="C",
                  profession_category_label="Civil", profession_code="10",
                  profession_label="Médecin", skill_code="SM04",
                  skill_label="Cardiologie")
CLINIC = Organisation("1690000001", "1", legal_name="CLINIQUE DU PARC", street_number="12",
                      street_type="R", street_name="des Lilas",
                      routing_line="69003 LYON", postal_code="69003", department="69",
                      country="FRANCE")
HOSPITAL = Organisation("1750000002", "1", legal_name="HÔPITAL SAINT-LOUIS",
                        routing_line="75010 PARIS", postal_code="75010", department="75")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def directory(request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[DirectoryStore]:
    if request.param == "sqlite":
        store = await open_directory(f"sqlite:///{tmp_path / 'directory.sqlite3'}")
        yield store
        await store.close()
        return
    async with postgres_schema() as name:
        store = await open_directory(POSTGRES_URL, schema=name)
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture
async def loaded(directory: DirectoryStore) -> DirectoryStore:
    await directory.import_extract(ROWS)
    return directory


@pytest.fixture
async def seeded(directory: DirectoryStore) -> DirectoryStore:
    """A small referential: one professional, two organisations, no mailbox."""
    await directory.add_practitioner(DR)
    await directory.add_organisation(CLINIC)
    await directory.add_organisation(HOSPITAL)
    return directory


def per(local: str, **kwargs: object) -> Mailbox:
    return Mailbox(f"{local}@{DOMAIN}", MailboxType.PER, **kwargs)  # type: ignore[arg-type]


async def patch(store: DirectoryStore, *ops: TelecomOp,
                kind: ResourceKind = ResourceKind.PRACTITIONER,
                resource: str = DR.id_nat_ps) -> None:
    await store.patch_telecom(kind, resource, ops, publisher=DN, allowed_domains=DOMAINS)


async def scalar(store: DirectoryStore, statement: object) -> object:
    async with store.engine.connect() as conn:
        return (await conn.execute(statement)).scalar()  # type: ignore[call-overload]


async def documents(store: DirectoryStore) -> dict[int, tuple[str, str]]:
    return {i: (text, family) async for i, text, family in store.search_documents()}


async def exported(store: DirectoryStore) -> list[ExtractRow]:
    return [row async for row in store.export_rows()]


# Text and digests -------------------------------------------------------------------


def test_search_text_and_row_hash() -> None:
    row = replace(PER_ROW, family_name="Lefèvre", given_name="Irène", skill_label="Néphrologie",
                  routing_line="14000 CAEN", postal_code="14000", department="14",
                  legal_name="", trade_name="", service="", address="irene.lefevre-x@a.mssante.fr")
    # The distinct words, in order; the address's local part last (its domain is not).
    assert search_text(row) == spaced(dict.fromkeys(
        ["lefevre", "irene", *words(row.profession_label), "nephrologie", "14000", "caen",
         "14", "x"]))
    assert search_text(replace(row, family_name="D'Almeida", given_name="ÉLODIE")).startswith(
        " d almeida elodie ")
    assert row_hash(row) == hashlib.blake2b("\x1f".join(row.values()).encode(),
                                            digest_size=16).hexdigest()
    assert row_hash(row) != row_hash(replace(row, digitization=not row.digitization))


# Import --------------------------------------------------------------------------


async def test_import_then_count_get_and_referential(directory: DirectoryStore) -> None:
    assert directory.dialect in ("sqlite", "postgresql")
    assert await directory.state() == (0, 0)
    seen: list[int] = []
    report = await directory.import_extract(ROWS, progress=seen.append, batch=400)
    assert report == ImportReport(created=COUNT, changed=0, removed=0, unchanged=0)
    assert seen == [400, 800, 1200, COUNT]
    assert await directory.count() == COUNT
    assert await directory.state() == (1, 0)
    for row in (ROWS[0], ROWS[777], PER_ROW, ORG_ROW):
        assert await directory.get(row.address) == row
    assert await directory.get(PER_ROW.address.upper()) == PER_ROW
    assert await directory.get("nobody@medecin.mssante.fr") is None
    assert await directory.get_mailbox(PER_ROW.address) == Mailbox(
        PER_ROW.address, MailboxType.PER, practitioner=PER_ROW.pp_national_id,
        organisation=PER_ROW.structure_id, service=PER_ROW.service,
        digitization=PER_ROW.digitization)
    assert await directory.get_practitioner(PER_ROW.pp_national_id) == Practitioner(
        PER_ROW.pp_national_id, PER_ROW.pp_id_type, PER_ROW.pp_id, PER_ROW.civility,
        PER_ROW.family_name, PER_ROW.given_name, PER_ROW.profession_category,
        PER_ROW.profession_category_label, PER_ROW.profession_code,
        PER_ROW.profession_label, PER_ROW.skill_code, PER_ROW.skill_label)
    organisation = await directory.get_organisation(ORG_ROW.structure_id)
    assert organisation is not None and organisation.legal_name == ORG_ROW.legal_name
    assert organisation.routing_line == ORG_ROW.routing_line
    assert await directory.get_practitioner("899999999999") is None
    assert await directory.get_organisation("1999999999") is None
    # Counts of the referential, the roles (PER/CAB rows naming both), the links.
    expected_pp = {r.pp_national_id for r in ROWS if r.pp_national_id}
    expected_st = {r.structure_id for r in ROWS if r.structure_id}
    expected_roles = {(r.pp_national_id, r.structure_id) for r in ROWS
                      if r.pp_national_id and r.structure_id
                      and r.mailbox_type in (MailboxType.PER, MailboxType.CAB)}
    m, p, o, r = schema.mailboxes, schema.practitioners, schema.organisations, schema.roles
    assert await scalar(directory, select(func.count()).select_from(p)) == len(expected_pp)
    assert await scalar(directory, select(func.count()).select_from(o)) == len(expected_st)
    assert await scalar(directory, select(func.count()).select_from(r)) == len(expected_roles)
    linked = (select(p.c.id_nat_ps).select_from(m.join(p, p.c.id == m.c.practitioner_id))
              .where(m.c.address == PER_ROW.address))
    assert await scalar(directory, linked) == PER_ROW.pp_national_id
    linked = (select(o.c.id_nat_st).select_from(m.join(o, o.c.id == m.c.organisation_id))
              .where(m.c.address == ORG_ROW.address))
    assert await scalar(directory, linked) == ORG_ROW.structure_id
    family = await scalar(directory, select(p.c.family_norm).where(
        p.c.id_nat_ps == PER_ROW.pp_national_id))
    assert family == " ".join(words(PER_ROW.family_name))
    city = await scalar(directory, select(o.c.city_norm).where(
        o.c.id_nat_st == ORG_ROW.structure_id))
    assert city == " ".join(words(ORG_ROW.routing_line.split(" ", 1)[1]))
    # Every id was chosen by the store: a writer relying on the serial still can insert.
    async with directory.engine.begin() as conn:
        await conn.execute(insert(p).values(
            id_nat_ps="800000000001", id_type="8", pp_id="00000000001", civility="",
            family_name="", given_name="", profession_category="",
            profession_category_label="", profession_code="", profession_label="",
            skill_code="", skill_label="", family_norm="", given_norm=""))


async def test_second_day_applies_the_difference(loaded: DirectoryStore) -> None:
    changed = [replace(row, given_name=row.given_name + "-Marie",
                       digitization=not row.digitization) for row in ROWS[10:40]]
    added = list(generate_rows(COUNT + 25, seed=7))[COUNT:]
    day2 = ROWS[:10] + changed + ROWS[40:1400] + added
    seen: list[int] = []
    report = await loaded.import_extract(day2, progress=seen.append)
    assert report == ImportReport(created=25, changed=30, removed=COUNT - 1400,
                                  unchanged=1370)
    assert seen == [len(day2)]
    assert await loaded.count() == len(day2)
    assert await loaded.get(ROWS[15].address) == changed[5]
    assert await loaded.get(ROWS[1450].address) is None
    assert await loaded.get(added[0].address) == added[0]
    assert sorted(await exported(loaded), key=lambda r: r.address) == sorted(
        day2, key=lambda r: r.address)
    # The referential follows the rows and keeps who lost their mailboxes.
    if changed[5].pp_national_id:
        found = await loaded.get_practitioner(changed[5].pp_national_id)
        assert found is not None and found.given_name == changed[5].given_name
    gone = next(r for r in ROWS[1400:] if r.pp_national_id)
    assert await loaded.get_practitioner(gone.pp_national_id) is not None
    assert (await loaded.state())[0] == 2
    # The same file again changes nothing.
    assert (await loaded.import_extract(day2)
            == ImportReport(created=0, changed=0, removed=0, unchanged=len(day2)))


async def test_the_last_row_of_a_professional_wins(directory: DirectoryStore) -> None:
    first = replace(PER_ROW, address=f"a@{DOMAIN}")
    second = replace(PER_ROW, address=f"b@{DOMAIN}", family_name="Nouveau-Nom")
    # Across batches (batch=1) and within one batch.
    for batch in (1, 10):
        await directory.import_extract([first, second], batch=batch)
        found = await directory.get_practitioner(PER_ROW.pp_national_id)
        assert found is not None and found.family_name == "Nouveau-Nom"
        await directory.import_extract([second, first], batch=batch)
        found = await directory.get_practitioner(PER_ROW.pp_national_id)
        assert found is not None and found.family_name == PER_ROW.family_name


async def test_duplicate_address_changes_nothing(loaded: DirectoryStore,
                                                 tmp_path: Path) -> None:
    before = await loaded.state()
    with pytest.raises(ValueError, match="duplicate"):
        await loaded.import_extract([*ROWS[:500], ROWS[3]], batch=100)
    assert await loaded.count() == COUNT
    assert await loaded.state() == before


async def test_failed_first_import_leaves_an_empty_directory(
        directory: DirectoryStore) -> None:
    # Several batches were written (and SQLite's secondary indexes dropped) before the
    # duplicate: all of it is rolled back.
    with pytest.raises(ValueError, match="duplicate"):
        await directory.import_extract([*ROWS, ROWS[0]], batch=200)
    assert await directory.count() == 0
    assert await directory.get_practitioner(PER_ROW.pp_national_id) is None
    assert await directory.import_extract(ROWS[:300]) == ImportReport(300, 0, 0, 0)
    if directory.dialect == "sqlite":
        async with directory.engine.connect() as conn:
            names = set((await conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
        expected = {index.name for table in schema.metadata.tables.values()
                    for index in table.indexes}
        assert expected <= names


async def test_import_then_export_round_trip(loaded: DirectoryStore) -> None:
    rows = await exported(loaded)
    assert rows == sorted(ROWS, key=lambda r: r.address)
    assert [r.address for r in rows] == sorted(r.address for r in rows)


async def test_import_takes_over_published_mailboxes_and_keeps_others(
        loaded: DirectoryStore) -> None:
    await loaded.add_practitioner(DR)
    await patch(loaded, TelecomInsert(per("dr.lefevre", liste_rouge=True)),
                TelecomInsert(per("dr.lefevre2", description="second")))
    # The national file now holds dr.lefevre2 (published here): it becomes imported.
    national = replace(PER_ROW, address=f"dr.lefevre2@{DOMAIN}")
    report = await loaded.import_extract([*ROWS, national])
    assert report == ImportReport(created=0, changed=1, removed=0, unchanged=COUNT)
    assert await loaded.get(national.address) == national
    taken = await loaded.get_mailbox(national.address)
    assert taken is not None and taken.publisher == "" and taken.description == ""
    # dr.lefevre, published and absent from the file, is kept.
    kept = await loaded.get_mailbox(f"dr.lefevre@{DOMAIN}")
    assert kept is not None and kept.publisher == DN and kept.liste_rouge
    report = await loaded.import_extract(ROWS)  # dr.lefevre2 is imported now: removed
    assert report == ImportReport(created=0, changed=0, removed=1, unchanged=COUNT)
    assert await loaded.get_mailbox(f"dr.lefevre@{DOMAIN}") is not None
    assert await loaded.count() == COUNT + 1


# The referential --------------------------------------------------------------------


async def test_referential_upserts(seeded: DirectoryStore) -> None:
    assert await seeded.get_practitioner(DR.id_nat_ps) == DR
    assert await seeded.get_organisation(CLINIC.id_nat_st) == CLINIC
    await seeded.add_practitioner(replace(DR, family_name="Lefèvre-Martin"))
    found = await seeded.get_practitioner(DR.id_nat_ps)
    assert found is not None and found.family_name == "Lefèvre-Martin"
    await seeded.add_organisation(replace(CLINIC, trade_name="Le Parc"))
    clinic = await seeded.get_organisation(CLINIC.id_nat_st)
    assert clinic is not None and clinic.trade_name == "Le Parc"
    p = schema.practitioners
    assert await scalar(seeded, select(func.count()).select_from(p)) == 1
    assert await scalar(seeded, select(p.c.family_norm)) == "lefevre martin"
    assert await seeded.organisations_of(DR.id_nat_ps) == []
    await seeded.add_role(DR.id_nat_ps, CLINIC.id_nat_st)
    await seeded.add_role(DR.id_nat_ps, CLINIC.id_nat_st)  # once
    assert await scalar(seeded, select(func.count()).select_from(schema.roles)) == 1
    assert await seeded.organisations_of(DR.id_nat_ps) == [replace(CLINIC, trade_name="Le Parc")]
    assert await seeded.organisations_of("899") == []
    # Ids are chosen by the store: a writer relying on the serial still can insert.
    async with seeded.engine.begin() as conn:
        await conn.execute(insert(schema.roles).values(practitioner_id=1, organisation_id=2))
    with pytest.raises(NotFound, match="Practitioner/899"):
        await seeded.add_role("899", CLINIC.id_nat_st)
    with pytest.raises(NotFound, match="Organization/199"):
        await seeded.add_role(DR.id_nat_ps, "199")


# Publication --------------------------------------------------------------------------


async def test_insert_fills_the_row_from_the_referential(seeded: DirectoryStore) -> None:
    await seeded.add_role(DR.id_nat_ps, CLINIC.id_nat_st)  # the referential: he practises there
    await patch(seeded, TelecomInsert(per("irene.lefevre", organisation=CLINIC.id_nat_st,
                                           service="Cardiologie", digitization=True,
                                           description="Consultations")))
    row = await seeded.get(f"irene.lefevre@{DOMAIN}")
    assert row is not None
    assert (row.mailbox_type, row.pp_national_id, row.pp_id, row.pp_id_type) == (
        MailboxType.PER, DR.id_nat_ps, DR.pp_id, DR.id_type)
    assert (row.family_name, row.given_name, row.skill_label) == (
        "Lefèvre", "Irène", "Cardiologie")
    assert (row.structure_id, row.structure_id_type, row.legal_name, row.routing_line) == (
        CLINIC.id_nat_st, "1", "CLINIQUE DU PARC", "69003 LYON")
    assert (row.service, row.digitization) == ("Cardiologie", True)
    mailbox = await seeded.get_mailbox(row.address)
    assert mailbox is not None and mailbox.publisher == DN
    assert mailbox.description == "Consultations" and not mailbox.liste_rouge
    # A publication creates no practice role: an unknown structure, or one where the
    # referential does not place him, is refused.
    for elsewhere in ("1000000000", HOSPITAL.id_nat_st):
        with pytest.raises(Conflict, match="no practice role"):
            await patch(seeded, TelecomInsert(per("irene.lefevre2", organisation=elsewhere,
                                                  liste_rouge=True)))
    assert await scalar(seeded, select(func.count()).select_from(schema.roles)) == 1
    assert await seeded.get(f"irene.lefevre2@{DOMAIN}") is None
    # A change that names no structure keeps the mailbox's own.
    await patch(seeded, TelecomInsert(per("irene.lefevre", description="Téléconsultations")))
    row = await seeded.get(f"irene.lefevre@{DOMAIN}")
    assert row is not None and row.structure_id == CLINIC.id_nat_st
    # An organisation's mailbox: structure columns, no PP columns.
    await patch(seeded, TelecomInsert(Mailbox(f"accueil@{DOMAIN}", MailboxType.ORG,
                                              practitioner=DR.id_nat_ps,
                                              responsible="Dr Lefèvre")),
                kind=ResourceKind.ORGANIZATION, resource=HOSPITAL.id_nat_st)
    row = await seeded.get(f"accueil@{DOMAIN}")
    assert row is not None and row.pp_national_id == "" and row.family_name == ""
    assert row.legal_name == "HÔPITAL SAINT-LOUIS" and row.structure_id == HOSPITAL.id_nat_st
    mailbox = await seeded.get_mailbox(row.address)
    assert mailbox is not None and mailbox.responsible == "Dr Lefèvre"
    assert mailbox.organisation == HOSPITAL.id_nat_st and mailbox.practitioner == ""


async def test_insert_is_idempotent_and_allocates_ids(loaded: DirectoryStore) -> None:
    await loaded.add_practitioner(DR)
    m = schema.mailboxes
    top = await scalar(loaded, select(func.max(m.c.id)))
    op = TelecomInsert(per("retry"))
    await patch(loaded, op)
    await patch(loaded, op)  # a retried request: a replace
    assert await loaded.count() == COUNT + 1
    assert await scalar(loaded, select(m.c.id).where(m.c.address == f"retry@{DOMAIN}")) == (
        top + 1)  # type: ignore[operator]
    await patch(loaded, TelecomInsert(per("retry", service="Urgences")))
    row = await loaded.get(f"retry@{DOMAIN}")
    assert row is not None and row.service == "Urgences"


async def test_concurrent_publications_get_distinct_ids(seeded: DirectoryStore) -> None:
    await asyncio.gather(*(patch(seeded, TelecomInsert(per(f"box{n}"))) for n in range(6)))
    m = schema.mailboxes
    assert await scalar(seeded, select(func.count(m.c.id.distinct()))) == 6
    assert await scalar(seeded, select(func.max(m.c.id))) == 6


async def test_unknown_resource_is_not_found(seeded: DirectoryStore) -> None:
    with pytest.raises(NotFound, match="Practitioner/899"):
        await patch(seeded, TelecomInsert(per("x")), resource="899")
    with pytest.raises(NotFound, match="Organization/199"):
        await patch(seeded, TelecomDelete(f"x@{DOMAIN}"), kind=ResourceKind.ORGANIZATION,
                    resource="199")


async def test_other_domains_are_refused_all_or_nothing(seeded: DirectoryStore) -> None:
    with pytest.raises(PolicyViolation, match=r"x@medecin\.mssante\.fr"):
        await patch(seeded, TelecomInsert(per("ok")),
                    TelecomInsert(Mailbox("x@medecin.mssante.fr", MailboxType.PER)))
    assert await seeded.count() == 0
    assert await seeded.state() == (0, 0)
    for op in (TelecomReplace("x@medecin.mssante.fr",
                              Mailbox("x@medecin.mssante.fr", MailboxType.PER)),
               TelecomDelete("x@medecin.mssante.fr")):
        with pytest.raises(PolicyViolation):
            await patch(seeded, op)
    # Domains compare case-insensitively.
    await seeded.patch_telecom(ResourceKind.PRACTITIONER, DR.id_nat_ps,
                               [TelecomInsert(per("Mixed.Case"))], publisher=DN,
                               allowed_domains=frozenset({DOMAIN.upper()}))
    assert await seeded.get(f"mixed.case@{DOMAIN}") is not None


async def test_type_must_be_held_by_the_resource(seeded: DirectoryStore) -> None:
    with pytest.raises(Conflict, match="ORG"):
        await patch(seeded, TelecomInsert(Mailbox(f"org@{DOMAIN}", MailboxType.ORG)))
    with pytest.raises(Conflict, match="PER"):
        await patch(seeded, TelecomInsert(per("per")), kind=ResourceKind.ORGANIZATION,
                    resource=CLINIC.id_nat_st)
    await patch(seeded, TelecomInsert(Mailbox(f"cab@{DOMAIN}", MailboxType.CAB)))
    await patch(seeded, TelecomInsert(Mailbox(f"app@{DOMAIN}", MailboxType.APP)),
                kind=ResourceKind.ORGANIZATION, resource=CLINIC.id_nat_st)
    assert await seeded.count() == 2


async def test_addresses_of_other_resources_are_conflicts(seeded: DirectoryStore) -> None:
    other = replace(DR, id_nat_ps="810000000025", pp_id="10000000025")
    await seeded.add_practitioner(other)
    await patch(seeded, TelecomInsert(per("theirs")), resource=other.id_nat_ps)
    await patch(seeded, TelecomInsert(Mailbox(f"accueil@{DOMAIN}", MailboxType.ORG)),
                kind=ResourceKind.ORGANIZATION, resource=CLINIC.id_nat_st)
    for op in (TelecomInsert(per("theirs")),
               TelecomReplace(f"theirs@{DOMAIN}", per("theirs")),
               TelecomDelete(f"theirs@{DOMAIN}")):
        with pytest.raises(Conflict, match="theirs"):
            await patch(seeded, op)
    with pytest.raises(Conflict):
        await patch(seeded, TelecomDelete(f"accueil@{DOMAIN}"), kind=ResourceKind.ORGANIZATION,
                    resource=HOSPITAL.id_nat_st)
    mailbox = await seeded.get_mailbox(f"theirs@{DOMAIN}")
    assert mailbox is not None and mailbox.practitioner == other.id_nat_ps


async def test_replace_rules(seeded: DirectoryStore) -> None:
    await seeded.add_role(DR.id_nat_ps, CLINIC.id_nat_st)
    with pytest.raises(Conflict, match="not a mailbox of Practitioner"):
        await patch(seeded, TelecomReplace(f"absent@{DOMAIN}", per("absent")))
    await patch(seeded, TelecomInsert(per("mine")))
    with pytest.raises(Conflict, match="address never changes"):
        await patch(seeded, TelecomReplace(f"mine@{DOMAIN}", per("renamed")))
    with pytest.raises(Conflict, match="type never changes"):
        await patch(seeded, TelecomReplace(f"mine@{DOMAIN}",
                                           Mailbox(f"mine@{DOMAIN}", MailboxType.CAB)))
    with pytest.raises(Conflict, match="type never changes"):
        await patch(seeded, TelecomInsert(Mailbox(f"mine@{DOMAIN}", MailboxType.CAB)))
    await patch(seeded, TelecomReplace(f"MINE@{DOMAIN}", per("mine", liste_rouge=True,
                                                          organisation=CLINIC.id_nat_st)))
    mailbox = await seeded.get_mailbox(f"mine@{DOMAIN}")
    assert mailbox is not None and mailbox.liste_rouge
    assert mailbox.organisation == CLINIC.id_nat_st


async def test_values_the_extract_cannot_hold_are_refused(seeded: DirectoryStore) -> None:
    for mailbox in (per("bar", service="A|B"), per("eol", service="A\nB")):
        with pytest.raises(Conflict, match="line end"):
            await patch(seeded, TelecomInsert(mailbox))
    assert await seeded.count() == 0


async def test_delete(seeded: DirectoryStore) -> None:
    await patch(seeded, TelecomDelete(f"absent@{DOMAIN}"))  # a no-op
    assert await seeded.state() == (0, 0)
    await patch(seeded, TelecomInsert(per("mine")), TelecomInsert(per("other")))
    await patch(seeded, TelecomDelete(f"mine@{DOMAIN}"))
    assert await seeded.get(f"mine@{DOMAIN}") is None
    assert await seeded.count() == 1


# Liste rouge and the search index's feed ------------------------------------------


async def test_liste_rouge_is_never_public(loaded: DirectoryStore) -> None:
    await loaded.add_practitioner(DR)
    await patch(loaded, TelecomInsert(per("hidden", liste_rouge=True)),
                TelecomInsert(per("shown")))
    hidden = await loaded.get(f"hidden@{DOMAIN}")
    shown = await loaded.get(f"shown@{DOMAIN}")
    assert hidden is not None and shown is not None  # get: whatever the liste rouge
    assert await loaded.count() == COUNT + 2
    m = schema.mailboxes
    hidden_id = await scalar(loaded, select(m.c.id).where(m.c.address == hidden.address))
    shown_id = await scalar(loaded, select(m.c.id).where(m.c.address == shown.address))
    assert isinstance(hidden_id, int) and isinstance(shown_id, int)
    addresses = {row.address for row in await exported(loaded)}
    assert shown.address in addresses and hidden.address not in addresses
    assert len(addresses) == COUNT + 1
    docs = await documents(loaded)
    assert shown_id in docs and hidden_id not in docs and len(docs) == COUNT + 1
    assert dict(await loaded.hits([hidden_id, shown_id, 10**9])) == {shown_id: shown}
    assert await loaded.address_hits(hidden.address, 10) == []
    assert await loaded.address_hits(shown.address, 10) == [(shown_id, shown)]
    changes = await loaded.changes_since(0)
    assert [(c[1], c[2] is None) for c in changes] == [(hidden_id, True), (shown_id, False)]
    # Leaving the liste rouge makes it public again.
    await patch(loaded, TelecomReplace(hidden.address, per("hidden")))
    assert hidden_id in await documents(loaded)
    assert (await loaded.changes_since(changes[-1][0]))[0][1:] == (
        hidden_id, search_text(hidden), spaced(words(DR.family_name)))


async def test_address_hits_are_a_prefix_in_address_order(loaded: DirectoryStore) -> None:
    addresses = sorted(row.address for row in ROWS)
    by_address = {row.address: row for row in ROWS}
    for prefix in (addresses[0][:1], addresses[0].partition("@")[0] + "@", addresses[-1]):
        expected = [a for a in addresses if a.startswith(prefix)][:7]
        found = await loaded.address_hits(prefix, 7)
        assert [row.address for _, row in found] == expected
        assert all(by_address[row.address] == row for _, row in found)
    assert await loaded.address_hits("", 7) == []
    assert await loaded.address_hits(addresses[0], 0) == []
    assert await loaded.address_hits("~", 7) == []
    assert await loaded.address_hits("%", 7) == []  # no wildcard: a range of the index


async def test_search_documents_and_hits(loaded: DirectoryStore) -> None:
    docs = await documents(loaded)
    assert len(docs) == COUNT and list(docs) == sorted(docs)
    by_address = {row.address: row for row in ROWS}
    found = dict(await loaded.hits(list(docs)[:50]))
    assert len(found) == 50
    for doc_id, row in found.items():
        assert by_address[row.address] == row
        assert docs[doc_id] == (search_text(row), spaced(words(row.family_name)))
    assert await loaded.hits([]) == []
    assert len(await loaded.hits(list(docs))) == COUNT  # more ids than one IN (...)


async def test_change_feed(seeded: DirectoryStore) -> None:
    await patch(seeded, TelecomInsert(per("a")), TelecomInsert(per("b")))
    await patch(seeded, TelecomReplace(f"a@{DOMAIN}", per("a", service="X")),
                TelecomDelete(f"b@{DOMAIN}"))
    epoch, last = await seeded.state()
    assert epoch == 0 and last == 4
    changes = await seeded.changes_since(0)
    assert [c[0] for c in changes] == [1, 2, 3, 4]
    a_id, b_id = changes[0][1], changes[1][1]
    assert [c[1] for c in changes] == [a_id, b_id, a_id, b_id]
    assert changes[2][2] is not None and " x " in changes[2][2]
    assert changes[3][2:] == (None, None) and changes[1][2:] == (None, None)  # b is gone
    assert await seeded.changes_since(last) == []
    assert [c[0] for c in await seeded.changes_since(2)] == [3, 4]
    # An import starts a new epoch, drops the older changes, and the sequence goes on.
    await seeded.import_extract(ROWS[:10])
    assert await seeded.state() == (1, 4)
    assert [c[0] for c in await seeded.changes_since(0)] == [4]
    await patch(seeded, TelecomDelete(f"a@{DOMAIN}"))
    assert await seeded.state() == (1, 5)
    assert await seeded.changes_since(4) == [(5, a_id, None, None)]


# Schema ---------------------------------------------------------------------------------


async def test_reopen_keeps_the_content(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'again.sqlite3'}"
    store = await open_directory(url)
    await store.import_extract(ROWS[:20])
    await store.close()
    store = await open_directory(url)
    try:
        assert await store.count() == 20
        assert await store.state() == (1, 0)
    finally:
        await store.close()


async def test_reopen_creates_indexes_added_since(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite3"
    store = await open_directory(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as db:  # as if the index had been added to schema later
        db.execute("DROP INDEX ix_dir_organisations_city_norm")
    db.close()
    store = await open_directory(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as db:
        names = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert "ix_dir_organisations_city_norm" in names


@pytest.mark.parametrize("version", [1, SCHEMA_VERSION + 1])
async def test_other_schema_versions_are_refused(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE directory_schema_version (version INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO directory_schema_version VALUES (?)", (version,))
        db.execute("CREATE TABLE directory_entries (id INTEGER PRIMARY KEY)")
    db.close()
    expected = "delete the directory database and import" if version == 1 else "upgrade"
    with pytest.raises(StoreError, match=expected):
        await open_directory(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:  # left as it was
        tables = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert tables == {"directory_schema_version", "directory_entries"}


async def test_an_import_never_lifts_the_liste_rouge(seeded: DirectoryStore) -> None:
    """An older national file names a mailbox its operator has hidden since: it stays
    hidden."""
    await patch(seeded, TelecomInsert(per("hidden", liste_rouge=True)))
    address = f"hidden@{DOMAIN}"
    row = await seeded.get(address)
    assert row is not None
    await seeded.import_extract([replace(row, service="Consultations")])
    mailbox = await seeded.get_mailbox(address)
    assert mailbox is not None and mailbox.liste_rouge
    assert [r.address async for r in seeded.export_rows()] == []
    assert await seeded.hits([doc_id async for doc_id, _, _ in seeded.search_documents()]) == []


async def test_an_import_removing_too_much_is_refused(loaded: DirectoryStore) -> None:
    before = await loaded.count()
    rows = [r async for r in loaded.export_rows()]
    with pytest.raises(Conflict, match="truncated"):
        await loaded.import_extract(rows[:len(rows) // 2], max_removed=0.05)
    assert await loaded.count() == before  # rolled back
    kept = {rows[-1].address}
    report = await loaded.import_extract(rows[:-1], max_removed=0.05, keep=kept)
    assert report.removed == 0 and await loaded.count() == before


# Search structures: trigram tables and indexes, statistics, connection settings ----------


async def trigrams_in_step(store: DirectoryStore) -> None:
    """SQLite: the trigram tables hold exactly the addresses and the names of their
    source tables (PostgreSQL's trigram indexes need no care)."""
    if store.dialect != "sqlite":
        return
    m, o = schema.mailboxes, schema.organisations
    mt, ot = schema.mailbox_trigrams, schema.organisation_trigrams
    names = o.c.name_norm + schema.NAMES_SEPARATOR + o.c.trade_norm
    async with store.engine.connect() as conn:
        for trigrams, source in ((select(mt.c.rowid, mt.c.address), select(m.c.id, m.c.address)),
                                 (select(ot.c.rowid, ot.c.names), select(o.c.id, names))):
            held = {tuple(row) for row in await conn.execute(trigrams)}
            assert held == {tuple(row) for row in await conn.execute(source)}
            assert held


async def test_trigram_tables_follow_every_write(directory: DirectoryStore) -> None:
    await directory.import_extract(ROWS[:800], batch=300)
    await trigrams_in_step(directory)
    # Removed, created and changed mailboxes; organisations renamed (the last row wins).
    renamed = [replace(r, legal_name=r.legal_name + " NORD", trade_name="Étoile")
               for r in ROWS[300:340] if r.structure_id]
    await directory.import_extract([*ROWS[100:300], *ROWS[340:900], *renamed], batch=300)
    await trigrams_in_step(directory)
    await directory.add_practitioner(DR)
    await directory.add_organisation(CLINIC)
    await directory.add_organisation(replace(CLINIC, trade_name="Clinique Étoile"))
    await patch(directory, TelecomInsert(per("kept")), TelecomInsert(per("gone")))
    await patch(directory, TelecomDelete(f"gone@{DOMAIN}"))
    await trigrams_in_step(directory)
    with pytest.raises(ValueError, match="duplicate"):
        await directory.import_extract([*ROWS[:500], ROWS[0]], batch=100)
    await trigrams_in_step(directory)
    o = schema.organisations
    assert await scalar(directory, select(o.c.trade_norm).where(
        o.c.id_nat_st == CLINIC.id_nat_st)) == "clinique etoile"


async def test_connection_settings_and_statistics(directory: DirectoryStore) -> None:
    await directory.import_extract(ROWS[:300])
    async with directory.engine.connect() as conn:
        if directory.dialect == "sqlite":
            assert (await conn.exec_driver_sql("PRAGMA cache_size")).scalar() == (
                store_module._SQLITE_READ_CACHE)
            assert (await conn.exec_driver_sql("PRAGMA mmap_size")).scalar() == (
                store_module._SQLITE_MMAP)
            return
        # Set for the session: a transaction rolled back does not undo it.
        await conn.rollback()
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == (
            "force_custom_plan")
        # The import analysed the tables, and rebuilt the trigram indexes it dropped.
        analysed = await conn.execute(text(
            "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()"))
        assert {"dir_mailboxes", "dir_practitioners", "dir_organisations",
                "dir_roles"} <= set(analysed.scalars())
        indexes = await conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexdef LIKE '%gin_trgm_ops%'"))
        assert sorted(indexes.scalars()) == sorted(
            name for name, _, _ in store_module._TRIGRAM_INDEXES)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres",
                                                           marks=pytest.mark.postgres)])
async def test_a_first_version_2_database_opens(engine: str, tmp_path: Path) -> None:
    """A database made before ``trade_norm``, the trigram tables and the indexes on the
    mailboxes' holders gets them when opened, filled from what it holds."""
    etoile = replace(ORG_ROW, address=f"etoile@{DOMAIN}", trade_name="Étoile du Sud")
    rows = [*ROWS[:200], etoile]
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'first.sqlite3'}"
        await _open_older(url, None, rows)
        return
    async with postgres_schema() as name:
        await _open_older(POSTGRES_URL, name, rows)


async def _open_older(url: str, schema_name: str | None, rows: list[ExtractRow]) -> None:
    store = await open_directory(url, schema=schema_name)
    await store.import_extract(rows)
    await store.close()
    # Back to the first version 2 schema.
    older = [
        "DROP INDEX ix_dir_organisations_trade_norm", "DROP INDEX ix_dir_organisations_names",
        "DROP INDEX ix_dir_mailboxes_practitioner_type",
        "ALTER TABLE dir_organisations DROP COLUMN trade_norm",
        "CREATE INDEX ix_dir_organisations_name_norm ON dir_organisations (name_norm)",
        "CREATE INDEX ix_dir_mailboxes_practitioner ON dir_mailboxes (practitioner_id)",
    ]
    if schema_name is None:
        older += ["DROP TABLE dir_mailbox_trigrams", "DROP TABLE dir_organisation_trigrams"]
    else:
        older += [f"DROP INDEX {name}" for name, table, _ in store_module._TRIGRAM_INDEXES
                  if table != "dir_organisations"]
    connect_args = {"server_settings": {"search_path": schema_name}} if schema_name else {}
    engine = create_async_engine(database_url(url), connect_args=connect_args)
    async with engine.begin() as conn:
        for statement in older:
            await conn.exec_driver_sql(statement)
    await engine.dispose()
    store = await open_directory(url, schema=schema_name)
    try:
        o = schema.organisations
        assert await scalar(store, select(o.c.trade_norm).where(
            o.c.id_nat_st == ORG_ROW.structure_id)) == "etoile du sud"
        async with store.engine.connect() as conn:
            if store.dialect == "sqlite":
                found = await conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index'")
            else:
                found = await conn.execute(text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"))
            names = set(found.scalars())
        assert {index.name for table in schema.metadata.tables.values()
                for index in table.indexes} <= names
        assert not names & set(schema.REPLACED_INDEXES)
        if store.dialect != "sqlite":
            assert {name for name, _, _ in store_module._TRIGRAM_INDEXES} <= names
        await trigrams_in_step(store)
        assert await store.import_extract(rows) == ImportReport(0, 0, 0, len(rows))
    finally:
        await store.close()
