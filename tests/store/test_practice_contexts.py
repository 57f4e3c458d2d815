"""Several practice contexts: a professional with several PER mailboxes keeps one home
(issue 9 §5), on both engines."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from tests.store.conftest import Database, RowCounter

from mssante.database import create_engine, database_url
from mssante.domain.mailboxes import MailboxType, PersonKind, Role, Rules
from mssante.store import Store
from mssante.store.migrate import alembic_config, head_revision

DOMAIN = "ch-xyz.mssante.fr"
RULES = Rules()
DUPONT = f"dupont@{DOMAIN}"
CONSULT = f"dupont.consult@{DOMAIN}"  # sorts before dupont@: "." < "@"
CARDIO = f"cardiologie@{DOMAIN}"


async def _dupont(store: Store) -> None:
    await store.create_person(DUPONT, PersonKind.HEALTH, "Dr Paul Dupont", rpps="10102727017")
    await store.create_mailbox(DUPONT, MailboxType.PER, rules=RULES, owner=DUPONT)


async def _shared(store: Store, login: str) -> list[str]:
    """The addresses the login sees beside its home, as IMAP lists them."""
    from mssante.imap.namespace import shared_mailboxes

    return [a for a, _ in shared_mailboxes(login, await store.folders.access(login))]


async def test_a_second_per_mailbox_leaves_the_home_where_it_was(store: Store) -> None:
    await _dupont(store)
    await store.create_mailbox(CARDIO, MailboxType.ORG, rules=RULES, responsible=[DUPONT])
    assert await store.home_mailbox(DUPONT) == DUPONT
    await store.create_mailbox(CONSULT, MailboxType.PER, rules=RULES, owner=DUPONT)
    assert await store.home_mailbox(DUPONT) == DUPONT
    assert await _shared(store, DUPONT) == [CARDIO, CONSULT]
    assert await store.usable_mailboxes(DUPONT) == {DUPONT, CONSULT, CARDIO}


async def test_a_mailbox_named_like_the_login_given_later_does_not_take_the_home(
        store: Store) -> None:
    await store.create_person(DUPONT, PersonKind.HEALTH, "Dr Paul Dupont")
    await store.create_mailbox(CONSULT, MailboxType.PER, rules=RULES, owner=DUPONT)
    await store.create_mailbox(DUPONT, MailboxType.PER, rules=RULES, owner=DUPONT)
    assert await store.home_mailbox(DUPONT) == CONSULT
    assert await _shared(store, DUPONT) == [DUPONT]


async def test_a_login_that_is_not_an_address_keeps_its_first_mailbox(store: Store) -> None:
    await store.create_person("pdupont", PersonKind.HEALTH, "Dr Paul Dupont")
    await store.create_mailbox(f"zz.dupont@{DOMAIN}", MailboxType.PER, rules=RULES,
                               owner="pdupont")
    for local in ("aa.dupont", "mm.dupont"):
        await store.create_mailbox(f"{local}@{DOMAIN}", MailboxType.PER, rules=RULES,
                                   owner="pdupont")
    assert await store.home_mailbox("pdupont") == f"zz.dupont@{DOMAIN}"
    assert await _shared(store, "pdupont") == [f"aa.dupont@{DOMAIN}", f"mm.dupont@{DOMAIN}"]


async def test_a_closed_home_is_not_replaced_and_a_deleted_one_is(store: Store) -> None:
    await _dupont(store)
    await store.create_mailbox(CONSULT, MailboxType.PER, rules=RULES, owner=DUPONT)
    await store.set_mailbox_active(DUPONT, False)
    assert await store.home_mailbox(DUPONT) is None  # no INBOX while closed, not CONSULT's
    assert await store.usable_mailboxes(DUPONT) == {CONSULT}
    await store.set_mailbox_active(DUPONT, True)
    assert await store.home_mailbox(DUPONT) == DUPONT
    await store.delete_mailbox(DUPONT)
    assert await store.home_mailbox(DUPONT) == CONSULT
    # recorded at the deletion: a mailbox named like the login, given later, stays beside
    await store.create_mailbox(DUPONT, MailboxType.PER, rules=RULES, owner=DUPONT)
    assert await store.home_mailbox(DUPONT) == CONSULT
    assert await _shared(store, DUPONT) == [DUPONT]


async def test_concurrent_mailboxes_for_one_person_record_one_home(
        store: Store, count_rows: RowCounter) -> None:
    await store.create_person(DUPONT, PersonKind.HEALTH, "Dr Paul Dupont")
    addresses = [f"site{n}.dupont@{DOMAIN}" for n in range(4)]
    await asyncio.gather(*(store.create_mailbox(a, MailboxType.PER, rules=RULES, owner=DUPONT)
                           for a in addresses))
    home = await store.home_mailbox(DUPONT)
    assert home in addresses
    assert sorted([home, *await _shared(store, DUPONT)]) == addresses
    assert await count_rows("mailbox_roles WHERE home") == 1


async def test_roles_other_than_owner_never_make_a_home(store: Store) -> None:
    await _dupont(store)
    await store.create_person("marie.bernard", PersonKind.STAFF, "Marie Bernard")
    await store.create_mailbox(CARDIO, MailboxType.ORG, rules=RULES, responsible=[DUPONT])
    await store.grant(CARDIO, "marie.bernard", Role.AUTHORISED, rules=RULES)
    assert await store.home_mailbox("marie.bernard") is None
    assert await _shared(store, "marie.bernard") == [CARDIO]


def _upgrade_to(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def test_migration_records_the_home_of_existing_people(database: Database) -> None:
    """A database of the previous release: the home of each person is the mailbox
    named like the login, else the first they were given; opening it migrates."""
    engine = create_engine(database_url(database.url), schema=database.schema)
    try:
        async with engine.begin() as conn:
            if database.schema is not None:
                await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"')
            await conn.run_sync(_upgrade_to, "0004")
            person: dict[str, int] = {}
            for login in (DUPONT, "pdupont", "marie.bernard"):
                person[login] = (await conn.execute(text(
                    "INSERT INTO persons (login, kind, display_name, created_at) "
                    "VALUES (:login, 'professional', 'x', 0) RETURNING id"),
                    {"login": login})).scalar_one()
            box: dict[str, int] = {}  # created in this order: ids ascending
            for address, kind in ((CONSULT, "PER"), (DUPONT, "PER"), (f"zz@{DOMAIN}", "PER"),
                                  (f"aa@{DOMAIN}", "PER"), (CARDIO, "ORG")):
                box[address] = (await conn.execute(text(
                    "INSERT INTO mailboxes (address, display_address, domain, type, "
                    "description, organisation, service, active, uidvalidity, created_at) "
                    "VALUES (:a, :a, :d, :t, '', '', '', :yes, 1, 0) RETURNING id"),
                    {"a": address, "d": DOMAIN, "t": kind, "yes": True})).scalar_one()
            roles = [(CONSULT, DUPONT, "owner"), (DUPONT, DUPONT, "owner"),
                     (f"zz@{DOMAIN}", "pdupont", "owner"), (f"aa@{DOMAIN}", "pdupont", "owner"),
                     (CARDIO, DUPONT, "responsible"), (CARDIO, "marie.bernard", "authorised")]
            for address, login, role in roles:
                await conn.execute(text(
                    "INSERT INTO mailbox_roles (mailbox_id, person_id, role, rights) "
                    "VALUES (:m, :p, :r, 'rw')"), {"m": box[address], "p": person[login],
                                                   "r": role})
    finally:
        await engine.dispose()
    store = await database.open()
    assert await store.schema_revision() == head_revision()
    assert await store.home_mailbox(DUPONT) == DUPONT
    assert await store.home_mailbox("pdupont") == f"zz@{DOMAIN}"
    assert await store.home_mailbox("marie.bernard") is None
    await store.create_mailbox(f"a@{DOMAIN}", MailboxType.PER, rules=RULES, owner="pdupont")
    assert await store.home_mailbox("pdupont") == f"zz@{DOMAIN}"
