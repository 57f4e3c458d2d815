"""Second factors and personal addresses in the store (store/logins.py), on both
engines: defaults, the TOTP step that cannot be used twice, one-time codes that are
single use, expire and run out of attempts; and migration 0006 over existing people."""

from __future__ import annotations

import hashlib

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from tests.store.conftest import RULES, Database, RowCounter

from mssante.database import create_engine, database_url
from mssante.domain.mailboxes import MailboxType, PersonKind
from mssante.errors import NotFound
from mssante.store import Store
from mssante.store.migrate import alembic_config, head_revision

PAT = "279035121518989@patient.mssante.fr"


def h(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def test_a_new_person_has_notices_and_code_on_no_address_no_totp(people: Store) -> None:
    contact = await people.logins.contact("pat")
    assert contact is not None
    assert (contact.kind, contact.personal_address, contact.notify_messages,
            contact.login_code, contact.totp_enrolled) == (PersonKind.PATIENT, None, True,
                                                           True, False)
    assert await people.logins.contact("nobody") is None


async def test_contact_is_changed_field_by_field(people: Store) -> None:
    changed = await people.logins.set_contact("pat", personal_address="eve@example.org")
    assert changed.personal_address == "eve@example.org" and changed.login_code
    changed = await people.logins.set_contact("pat", login_code=False)
    assert changed.personal_address == "eve@example.org" and not changed.login_code
    assert changed.notify_messages
    changed = await people.logins.set_contact("pat", notify_messages=False,
                                              personal_address=None)
    assert (changed.personal_address, changed.notify_messages, changed.login_code) == (
        None, False, False)
    assert await people.logins.contact("pat") == changed
    with pytest.raises(NotFound):
        await people.logins.set_contact("nobody", login_code=False)


async def test_the_owner_of_a_patient_mailbox_is_found(people: Store) -> None:
    await people.create_person(PAT, PersonKind.PATIENT, "Patient")
    await people.create_mailbox(PAT, MailboxType.PAT, rules=RULES, owner=PAT)
    await people.logins.set_contact(PAT, personal_address="p@example.org")
    contact = await people.logins.contact_of_mailbox(PAT.upper().replace("PATIENT", "patient"))
    assert contact is not None and contact.login == PAT
    assert contact.personal_address == "p@example.org"
    assert await people.logins.contact_of_mailbox("dr@ch-xyz.mssante.fr") is None
    assert await people.logins.contact_of_mailbox("290000000000000@patient.mssante.fr") is None


async def test_a_totp_step_is_used_once_and_never_an_earlier_one(people: Store) -> None:
    await people.logins.set_totp("sec", "v1:sealed")
    assert await people.logins.use_totp_step("sec", 100, "v1:sealed")
    assert not await people.logins.use_totp_step("sec", 100, "v1:sealed")  # replay
    assert not await people.logins.use_totp_step("sec", 99, "v1:sealed")
    assert await people.logins.use_totp_step("sec", 101, "v1:sealed")
    record = await people.logins.totp("sec")
    assert record is not None and record.last_step == 101
    # checked against a secret replaced meanwhile: not taken
    assert not await people.logins.use_totp_step("sec", 102, "v1:other")
    await people.logins.set_totp("sec", "v1:new")  # enrolling again forgets the steps
    record = await people.logins.totp("sec")
    assert record is not None and record.last_step is None
    await people.logins.set_totp("sec", None)
    assert await people.logins.totp("sec") is None
    assert not await people.logins.use_totp_step("sec", 200, "v1:new")
    with pytest.raises(NotFound):
        await people.logins.set_totp("nobody", "v1:x")


async def test_a_code_is_single_use(people: Store) -> None:
    await people.logins.put_code("pat", h("123456"), expires_at=1600.0, now=1000.0)
    assert await people.logins.check_code("pat", h("123456"), now=1001.0, max_attempts=5)
    assert not await people.logins.check_code("pat", h("123456"), now=1002.0, max_attempts=5)


async def test_a_code_runs_out_of_attempts(people: Store, count_rows: RowCounter) -> None:
    await people.logins.put_code("pat", h("123456"), expires_at=1600.0, now=1000.0)
    for _ in range(2):
        assert not await people.logins.check_code("pat", h("000000"), now=1001.0,
                                                  max_attempts=3)
    assert await count_rows("login_codes") == 1
    assert not await people.logins.check_code("pat", h("000000"), now=1001.0, max_attempts=3)
    assert await count_rows("login_codes") == 0  # the third wrong try used it up
    assert not await people.logins.check_code("pat", h("123456"), now=1001.0, max_attempts=3)


async def test_a_code_expires_and_a_new_one_replaces_the_last(people: Store) -> None:
    await people.logins.put_code("pat", h("111111"), expires_at=1600.0, now=1000.0)
    assert not await people.logins.check_code("pat", h("111111"), now=1600.0, max_attempts=5)
    await people.logins.put_code("pat", h("222222"), expires_at=2600.0, now=2000.0)
    await people.logins.put_code("pat", h("333333"), expires_at=2600.0, now=2001.0)
    assert not await people.logins.check_code("pat", h("222222"), now=2002.0, max_attempts=5)
    assert await people.logins.check_code("pat", h("333333"), now=2002.0, max_attempts=5)
    assert not await people.logins.check_code("nobody", h("333333"), now=2002.0,
                                              max_attempts=5)


async def test_codes_go_with_their_person_and_with_a_new_address(
        people: Store, count_rows: RowCounter) -> None:
    await people.logins.put_code("pat", h("123456"), expires_at=1600.0, now=1000.0)
    await people.logins.set_contact("pat", personal_address="new@example.org")
    assert await count_rows("login_codes") == 0  # sent to the old address: gone
    await people.logins.put_code("pat", h("123456"), expires_at=1600.0, now=1000.0)
    await people.delete_person("pat")
    assert await count_rows("login_codes") == 0


def _upgrade_to(revision: str):  # type: ignore[no-untyped-def]
    def run(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), revision)
    return run


async def test_migration_0006_gives_existing_people_the_defaults(database: Database) -> None:
    engine = create_engine(database_url(database.url), schema=database.schema)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to("0005"))
            await conn.execute(text(
                "INSERT INTO persons (login, kind, display_name, created_at) "
                "VALUES ('old', 'patient', 'Old Patient', 1.0)"))
    finally:
        await engine.dispose()
    store = await database.open()  # migrates to the head
    assert await store.schema_revision() == head_revision()
    contact = await store.logins.contact("old")
    assert contact is not None
    assert (contact.personal_address, contact.notify_messages, contact.login_code,
            contact.totp_enrolled) == (None, True, True, False)
