"""Every change of a person's ways in leaves its audit entry, written in the transaction
of the change, on SQLite and PostgreSQL: TOTP enrolled and disabled, the personal
address and its settings, application passwords created and revoked, a new account
password (which revokes the application passwords). Who, from where, which person and
their mailbox, what changed; never a password, a TOTP secret or a hash. The log still
verifies after them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.store.conftest import DOMAIN, RowCounter

from mssante.audit.checkpoint import Signer
from mssante.audit.events import acting
from mssante.auth import apppasswords, totp
from mssante.auth.passwords import hash_password
from mssante.errors import NotFound
from mssante.store import Store
from mssante.store.audit import Entry
from mssante.store.sessions import StoredSession

ORIGIN = f"{DOMAIN}/audit"
HOME = f"alice.martin@{DOMAIN}"  # dr's home mailbox (the ``mailboxes`` fixture)
ACTOR, SOURCE = "cli:root", "cli host.example"


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(ORIGIN, tmp_path / "key.pem")


@pytest.fixture(autouse=True)
def by_the_command_line() -> Iterator[None]:
    with acting(ACTOR, SOURCE):
        yield


async def person_entries(store: Store) -> list[Entry]:
    return [e for e in await store.audit_entries()
            if e.event.action.startswith("admin.person.")
            and e.event.action != "admin.person.create"]


def assert_no_secret(entries: list[Entry], *secrets: str) -> None:
    for entry in entries:
        for value in entry.as_json().values():
            for secret in secrets:
                assert secret not in str(value), (entry, "holds a secret")


async def assert_verifies(store: Store, signer: Signer) -> None:
    while await store.audit_seal(signer, ORIGIN) is not None:
        pass
    verdict = await store.audit_verify(signer.verifier, ORIGIN)
    assert verdict.ok and verdict.pending == 0, verdict.problem


async def test_totp_enrolment_and_disabling_are_recorded(
        mailboxes: Store, signer: Signer, tmp_path: Path) -> None:
    key = totp.SealingKey.create(tmp_path / "totp.key")
    first = await totp.enrol(mailboxes.logins, key, "dr", issuer=DOMAIN)
    second = await totp.enrol(mailboxes.logins, key, "dr", issuer=DOMAIN)
    sealed = await mailboxes.logins.totp("dr")
    assert sealed is not None
    await mailboxes.logins.set_totp("dr", None)
    await mailboxes.logins.set_totp("dr", None)
    entries = await person_entries(mailboxes)
    assert [(e.event.action, e.event.detail) for e in entries] == [
        ("admin.person.totp.enrol", "dr: a new TOTP secret"),
        ("admin.person.totp.enrol", "dr: a new TOTP secret, replacing the one enrolled"),
        ("admin.person.totp.disable", "dr: TOTP secret forgotten"),
        ("admin.person.totp.disable", "dr: none was enrolled")]
    assert {(e.event.actor, e.event.source, e.event.mailbox) for e in entries} == {
        (ACTOR, SOURCE, HOME)}
    assert_no_secret(entries, first.secret, second.secret, sealed.sealed)
    await assert_verifies(mailboxes, signer)


async def test_contact_changes_are_recorded(mailboxes: Store, signer: Signer) -> None:
    await mailboxes.logins.set_contact("dr", personal_address="alice@example.org",
                                       notify_messages=False)
    await mailboxes.logins.set_contact("dr", personal_address=None, login_code=False)
    await mailboxes.logins.set_contact("dr")  # nothing changed: nothing recorded
    await mailboxes.logins.set_contact("pat", notify_messages=True)  # pat has no mailbox
    entries = await person_entries(mailboxes)
    assert [(e.event.action, e.event.mailbox, e.event.detail) for e in entries] == [
        ("admin.person.contact", HOME,
         "dr: personal address alice@example.org, new-message notices off"),
        ("admin.person.contact", HOME,
         "dr: personal address removed, one-time login code off"),
        ("admin.person.contact", "", "pat: new-message notices on")]
    assert {(e.event.actor, e.event.source) for e in entries} == {(ACTOR, SOURCE)}
    await assert_verifies(mailboxes, signer)


async def test_app_password_creation_and_revocation_are_recorded_without_the_password(
        mailboxes: Store, signer: Signer) -> None:
    created = await apppasswords.create(mailboxes.logins, "dr", "Thunderbird du cabinet")
    [stored] = await mailboxes.logins.app_password_hashes("dr")
    assert not await mailboxes.logins.revoke_app_password("dr2", created.entry.id)  # not theirs
    assert await mailboxes.logins.revoke_app_password("dr", created.entry.id)
    assert not await mailboxes.logins.revoke_app_password("dr", created.entry.id)  # gone
    entries = await person_entries(mailboxes)
    number = created.entry.id
    assert [(e.event.action, e.event.actor, e.event.source, e.event.mailbox, e.event.detail)
            for e in entries] == [
        ("admin.person.app-password.create", ACTOR, SOURCE, HOME,
         f"dr: application password {number} (Thunderbird du cabinet)"),
        ("admin.person.app-password.revoke", ACTOR, SOURCE, HOME,
         f"dr: application password {number} (Thunderbird du cabinet)")]
    password = created.password
    assert_no_secret(entries, password, password.replace(" ", ""), stored.password_hash)
    await assert_verifies(mailboxes, signer)


async def test_password_change_revokes_application_passwords(
        mailboxes: Store, signer: Signer, count_rows: RowCounter) -> None:
    """A stolen account password suggests its mail clients' passwords may be taken too:
    a new account password revokes them all, in its transaction, and says which."""
    kept_elsewhere = await apppasswords.create(mailboxes.logins, "dr2", "Téléphone")
    first = await apppasswords.create(mailboxes.logins, "dr", "Thunderbird")
    second = await apppasswords.create(mailboxes.logins, "dr", "Téléphone")
    new_hash = hash_password("a new password, long enough")
    await mailboxes.set_password_hash("dr", new_hash)
    assert await mailboxes.logins.app_passwords("dr") == []
    assert await mailboxes.logins.app_passwords("dr2") == [kept_elsewhere.entry]
    assert await count_rows("app_passwords") == 1
    await mailboxes.set_password_hash("dr", hash_password("another new password"))
    changes = [e for e in await person_entries(mailboxes)
               if e.event.action == "admin.person.password"]
    assert [(e.event.actor, e.event.source, e.event.mailbox, e.event.detail)
            for e in changes] == [
        (ACTOR, SOURCE, HOME, f"dr: new account password; application passwords revoked: "
                              f"{first.entry.id}, {second.entry.id}"),
        (ACTOR, SOURCE, HOME, "dr: new account password")]
    assert_no_secret(changes, new_hash, "a new password", first.password, second.password)
    await assert_verifies(mailboxes, signer)


async def test_a_stolen_password_session_ends_with_the_password_change(
        mailboxes: Store) -> None:
    """Whoever logged in to the web with a stolen password loses that session when the
    password is changed; another person's session is kept."""
    def opened(login: str) -> StoredSession:
        return StoredSession(login=login, kind="pro", app=None, psc_subject=None,
                             psc_sid="", psc_issued_at=0.0, csrf="c", created_at=time.time(),
                             seen_at=time.time(), mailbox=None, notice="")
    for cookie, login in (("thief", "dr"), ("owner", "dr"), ("colleague", "dr2")):
        await mailboxes.sessions.open(cookie, opened(login), now=time.time(), idle=3600,
                                      max_age=86400, max_sessions=100)
    await mailboxes.set_password_hash("dr", hash_password("a new password, long enough"))
    assert await mailboxes.sessions.get("thief") is None
    assert await mailboxes.sessions.get("owner") is None
    assert await mailboxes.sessions.get("colleague") is not None
    change = [e for e in await person_entries(mailboxes)
              if e.event.action == "admin.person.password"][-1]
    assert change.event.detail == "dr: new account password; web sessions ended: 2"


async def test_a_change_refused_leaves_no_entry(mailboxes: Store) -> None:
    """The entry is written in the change's transaction: no change, no entry."""
    before = len(await mailboxes.audit_entries())
    with pytest.raises(NotFound):
        await mailboxes.logins.set_totp("nobody", None)
    with pytest.raises(NotFound):
        await mailboxes.logins.set_contact("nobody", login_code=False)
    with pytest.raises(NotFound):
        await apppasswords.create(mailboxes.logins, "nobody", "Thunderbird")
    with pytest.raises(NotFound):
        await mailboxes.set_password_hash("nobody", hash_password("x" * 20))
    assert len(await mailboxes.audit_entries()) == before


async def test_changes_are_recorded_as_the_page_or_command_says(mailboxes: Store) -> None:
    """``acting`` names who acts for what runs inside it, then gives the previous back."""
    with acting("dr psc:810101010101", "HTTPS 192.0.2.7"):
        await mailboxes.logins.set_contact("dr", notify_messages=False)
    await mailboxes.logins.set_contact("dr", notify_messages=True)
    first, second = await person_entries(mailboxes)
    assert (first.event.actor, first.event.source) == ("dr psc:810101010101",
                                                       "HTTPS 192.0.2.7")
    assert (second.event.actor, second.event.source) == (ACTOR, SOURCE)
