"""One certificate DN identifies one APP mailbox (domain.mailboxes.
check_certificate_binding), on SQLite and PostgreSQL: a second APP mailbox bound to the
same DN, however it is written, is refused by the store and by its unique index;
migration 0008d gives existing duplicates' binding to the mailbox certificate login
picked until then. Application password ids are never given again (0008d on SQLite)."""

from __future__ import annotations

import logging

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from tests.store.conftest import DOMAIN, RULES, Database

from mssante.database import create_engine, database_url
from mssante.domain.mailboxes import CertificateAlreadyBound, MailboxType, PersonKind
from mssante.errors import Conflict, PolicyViolation
from mssante.store import Store
from mssante.store.migrate import alembic_config, head_revision

DPI = f"compte_rendu_noreply@{DOMAIN}"
ALERTS = f"alertes@{DOMAIN}"
APP_DN = "CN=dpi.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,C=FR"
SAME_DN_WRITTEN_OTHERWISE = "cn=DPI.ch-xyz.mssante.fr, ou=318310021300028, o=ch xyz, c=FR"
OTHER_DN = "CN=alertes.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,C=FR"


async def app(store: Store, address: str, dn: str) -> None:
    await store.create_mailbox(address, MailboxType.APP, rules=RULES, responsible=["dr"],
                               cert_dn=dn)


async def test_one_certificate_cannot_log_in_to_two_app_mailboxes(people: Store) -> None:
    await app(people, DPI, APP_DN)
    with pytest.raises(CertificateAlreadyBound,
                       match=f"already identifies the APP mailbox {DPI}"):
        await app(people, ALERTS, SAME_DN_WRITTEN_OTHERWISE)
    assert await people.get_mailbox(ALERTS) is None  # nothing of it was written
    await people.set_mailbox_active(DPI, False)  # closed, it keeps its certificate
    with pytest.raises(CertificateAlreadyBound):
        await app(people, ALERTS, APP_DN)
    await people.set_mailbox_active(DPI, True)
    await app(people, ALERTS, OTHER_DN)  # a certificate of its own
    [dpi] = await people.mailboxes_for_certificate(SAME_DN_WRITTEN_OTHERWISE)
    [alerts] = await people.mailboxes_for_certificate(OTHER_DN)
    assert (dpi.address, alerts.address) == (DPI, ALERTS)
    await people.delete_mailbox(DPI)  # deleted, its certificate may be bound again
    await app(people, f"dpi2@{DOMAIN}", APP_DN)
    found = await people.mailbox_for_certificate(APP_DN)
    assert found is not None and found.address == f"dpi2@{DOMAIN}"


async def test_the_unique_index_refuses_what_a_check_would_miss(people: Store) -> None:
    """Two binding at once on PostgreSQL could both pass the check: the index refuses
    the second (here written past the store, as the race would leave it)."""
    await app(people, DPI, APP_DN)
    async with people.tx.engine.connect() as conn:
        key = (await conn.execute(text("SELECT cert_dn_key FROM mailboxes WHERE address "
                                       "= :a"), {"a": DPI})).scalar_one()
    with pytest.raises(Conflict, match="identifies another APP mailbox"):
        async with people.tx.write(conflict=f"the certificate {APP_DN} identifies another "
                                            "APP mailbox") as conn:
            await conn.execute(text(
                "INSERT INTO mailboxes (address, display_address, domain, type, description, "
                "organisation, service, cert_dn, cert_dn_key, active, uidvalidity, "
                "created_at) VALUES (:a, :a, :d, 'APP', '', '', '', :dn, :k, :yes, 1, 0)"),
                {"a": ALERTS, "d": DOMAIN, "dn": SAME_DN_WRITTEN_OTHERWISE, "k": key,
                 "yes": True})


async def test_a_certificate_dn_that_is_not_one_is_refused(people: Store) -> None:
    with pytest.raises(PolicyViolation, match="not a distinguished name"):
        await app(people, DPI, "dpi of the hospital")


async def test_a_revoked_app_password_id_is_never_given_again(people: Store) -> None:
    """A session remembers the id of the application password it logged in with and
    ends once that id is gone: a new password given the same id would keep it open."""
    first = await people.logins.add_app_password("dr", "Thunderbird", "h1", now=1.0)
    newest = await people.logins.add_app_password("dr", "Téléphone", "h2", now=2.0)
    assert await people.logins.revoke_app_password("dr", newest.id)
    again = await people.logins.add_app_password("dr", "Téléphone neuf", "h3", now=3.0)
    assert again.id > newest.id > first.id
    assert not await people.logins.app_password_live(newest.id)


def _upgrade_to(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def test_migration_keeps_the_binding_certificate_login_used(
        database: Database, caplog: pytest.LogCaptureFixture) -> None:
    """A database of the previous release with three APP mailboxes bound to one DN
    (written two ways; the first by address closed) and one of their own: the first
    open one by address keeps the binding, the others log in with nothing; the
    application passwords are kept."""
    engine = create_engine(database_url(database.url), schema=database.schema)
    boxes = ((f"aa@{DOMAIN}", APP_DN, False), (f"bb@{DOMAIN}", SAME_DN_WRITTEN_OTHERWISE, True),
             (f"cc@{DOMAIN}", APP_DN, True), (ALERTS, OTHER_DN, True),
             (f"odd@{DOMAIN}", "not a DN", True))
    try:
        async with engine.begin() as conn:
            if database.schema is not None:
                await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"')
            await conn.run_sync(_upgrade_to, "0007a")
            person = (await conn.execute(text(
                "INSERT INTO persons (login, kind, display_name, created_at) "
                "VALUES ('dr', 'professional', 'Dr', 0) RETURNING id"))).scalar_one()
            await conn.execute(text(
                "INSERT INTO app_passwords (person_id, label, password_hash, created_at) "
                "VALUES (:p, 'Thunderbird', 'h', 1.0)"), {"p": person})
            for address, dn, active in boxes:
                await conn.execute(text(
                    "INSERT INTO mailboxes (address, display_address, domain, type, "
                    "description, organisation, service, cert_dn, active, uidvalidity, "
                    "created_at) VALUES (:a, :a, :d, 'APP', '', '', '', :dn, :on, 1, 0)"),
                    {"a": address, "d": DOMAIN, "dn": dn, "on": active})
    finally:
        await engine.dispose()
    with caplog.at_level(logging.WARNING, logger="mssante.store.migrations"):
        store = await database.open()
    assert await store.schema_revision() == head_revision()
    [warning] = [r.getMessage() for r in caplog.records
                 if r.name == "mssante.store.migrations"]
    assert f"bb@{DOMAIN} keeps it" in warning and f"aa@{DOMAIN}, cc@{DOMAIN}" in warning
    assert [m.address for m in await store.mailboxes_for_certificate(APP_DN)] == [
        f"bb@{DOMAIN}"]
    assert [m.address for m in await store.mailboxes_for_certificate(OTHER_DN)] == [ALERTS]
    await store.set_mailbox_active(f"aa@{DOMAIN}", True)  # opened: still no certificate
    assert [m.address for m in await store.mailboxes_for_certificate(APP_DN)] == [
        f"bb@{DOMAIN}"]
    await store.create_person("dr2", PersonKind.HEALTH, "Dr Bruno Petit")
    with pytest.raises(CertificateAlreadyBound, match=f"bb@{DOMAIN}"):
        await store.create_mailbox(f"dd@{DOMAIN}", MailboxType.APP, rules=RULES,
                                   responsible=["dr2"], cert_dn=APP_DN)
    [kept] = await store.logins.app_passwords("dr")
    assert kept.label == "Thunderbird"
    assert (await store.logins.add_app_password("dr", "x", "h", now=2.0)).id > kept.id
