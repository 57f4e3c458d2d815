"""Application passwords at IMAP and submission, and the account password of a person
with a second factor refused there: a stolen password must not bypass TOTP through a
mail client's login. A fresh operator (real IMAP and submission listeners, its store on
SQLite and on PostgreSQL) next to the running environment; real imaplib and smtplib.
The web's side is in tests/web/test_app_passwords_web.py and
tests/web/test_app_passwords_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import smtplib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from tests.auth.side_operator import SideOperator, side_operator
from tests.auth.test_password_policy import imap_refusal, imaps, plain, submissions
from tests.conftest import POSTGRES_URL, RunningEnvironment, postgres_schema

from mssante.auth import apppasswords, totp
from mssante.auth.passwords import hash_password
from mssante.domain.logins import PasswordPolicy, SecondFactorPolicy
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.imap import session
from mssante.store import Store, open_store

HOSPITAL = "ch-xyz.mssante.fr"
ENROLLED = f"elise.totp@{HOSPITAL}"  # a professional enrolled in TOTP
PLAIN = f"paul.simple@{HOSPITAL}"  # a professional without a second factor
SECRETARY = "secretariat.totp"  # staff, whose kind must use TOTP (not enrolled)
PASSWORD = "correct horse battery staple"
NEEDS_APP_PASSWORD = {ENROLLED: "Your account has a second factor (TOTP)",
                      SECRETARY: "Your operator requires a second factor (TOTP) for staff"}


class Stores:
    """Opens stores on one database: the operator's, and others as another process
    (the command line) would."""

    def __init__(self, url: str, schema: str | None) -> None:
        self.url, self.schema = url, schema
        self.opened: list[Store] = []

    async def open(self) -> Store:
        store = await open_store(self.url, schema=self.schema)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "sqlite":
        found = Stores(f"sqlite+aiosqlite:///{tmp_path / 'operator.sqlite3'}", None)
        yield found
        for store in found.opened:
            await store.close()
        return
    async with postgres_schema() as schema:
        found = Stores(POSTGRES_URL, schema)
        try:
            yield found
        finally:
            for store in found.opened:
                await store.close()


@pytest.fixture
async def operator(environment: RunningEnvironment, tmp_path: Path,
                   stores: Stores) -> AsyncIterator[SideOperator]:
    """ch-xyz with ``[psc.second_factor] staff = "totp"``: a professional enrolled in
    TOTP, one without a second factor, and a secretary; the same password for all."""
    store = await stores.open()
    for login in (ENROLLED, PLAIN):
        await store.create_person(login, PersonKind.HEALTH, login,
                                  password_hash=hash_password(PASSWORD),
                                  rpps=str(uuid.uuid4().int)[:11])
        await store.create_mailbox(login, MailboxType.PER, rules=Rules(), owner=login)
    await store.create_person(SECRETARY, PersonKind.STAFF, "Secrétariat",
                              password_hash=hash_password(PASSWORD))
    key = totp.SealingKey.create(tmp_path / "totp.key")
    await totp.enrol(store.logins, key, ENROLLED, issuer=HOSPITAL)
    async with side_operator(environment, tmp_path, store=store, max_login_failures=4,
                             second_factors=SecondFactorPolicy(frozenset({PersonKind.STAFF}))
                             ) as side:
        yield side


# Revocation tests: IMAP sessions read their application password's state every second
# instead of every APP_PASSWORD_CHECK_SECONDS (5 s), and the tests wait that long.
CHECK_SECONDS = 1.0


@pytest.fixture
def checked_every_second(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(session, "APP_PASSWORD_CHECK_SECONDS", CHECK_SECONDS)
    return CHECK_SECONDS


def submission_refusal(env: RunningEnvironment, op: SideOperator, mechanism: str,
                       login: str, password: str) -> smtplib.SMTPAuthenticationError:
    with submissions(env, op) as smtp:
        smtp.user, smtp.password = login, password
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"),
                      initial_response_ok=True)
        assert smtp.noop()[0] == 250  # the connection stays usable
        return refused.value


ImapAttempt = Callable[[imaplib.IMAP4], object]


def password_attempts(login: str, password: str) -> list[ImapAttempt]:
    return [lambda c: c.login(login, password),
            lambda c: c.authenticate("PLAIN", lambda _: plain(login, password))]


async def test_stolen_password_does_not_bypass_totp_at_imap(
        environment: RunningEnvironment, operator: SideOperator) -> None:
    """The right account password of a person enrolled in TOTP, or of a kind that must
    use it, does not open IMAP (LOGIN, AUTHENTICATE PLAIN): NO [AUTHENTICATIONFAILED]
    telling them to create an application password."""
    def clients() -> None:
        for login in (ENROLLED, SECRETARY):
            for attempt in password_attempts(login, PASSWORD):
                text = imap_refusal(environment, operator, attempt)
                assert "[AUTHENTICATIONFAILED]" in text and NEEDS_APP_PASSWORD[login] in text
                assert "Create an application password" in text
                assert "Mots de passe d'application" in text and text.isascii()

    await asyncio.to_thread(clients)


async def test_stolen_password_does_not_bypass_totp_at_submission(
        environment: RunningEnvironment, operator: SideOperator) -> None:
    """At submission (PLAIN, LOGIN): 535 5.7.8, RFC 4954 §6 "insufficient
    credentials" (not 534 5.7.9: the mechanism is fine, with an application password)."""
    def clients() -> None:
        for login in (ENROLLED, SECRETARY):
            for mechanism in ("PLAIN", "LOGIN"):
                refused = submission_refusal(environment, operator, mechanism, login,
                                             PASSWORD)
                assert refused.smtp_code == 535
                assert refused.smtp_error.startswith(
                    b"5.7.8 " + NEEDS_APP_PASSWORD[login].encode())
                assert b"Create an application password" in refused.smtp_error

    await asyncio.to_thread(clients)


async def test_a_wrong_password_of_a_totp_person_learns_nothing(
        environment: RunningEnvironment, operator: SideOperator) -> None:
    """Only the right password hears of application passwords; a guess gets what an
    unknown login gets."""
    def clients() -> None:
        texts = {imap_refusal(environment, operator, lambda c, login=login, guess=guess:
                              c.login(login, guess))
                 for login in (ENROLLED, f"nobody@{HOSPITAL}")
                 for guess in ("guess", "abcd efgh ijkl mnop")}
        assert len(texts) == 1 and "application" not in texts.pop()
        refused = submission_refusal(environment, operator, "PLAIN", ENROLLED, "guess")
        assert refused.smtp_code == 535 and b"application" not in refused.smtp_error

    await asyncio.to_thread(clients)


def sent_to_self(env: RunningEnvironment, op: SideOperator, login: str, password: str,
                 subject: str) -> None:
    """Log in at submission with ``password``, send to one's own mailbox, and read it
    there over IMAP with the same password."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = login, login, subject
    message.set_content("Bonjour.")
    with submissions(env, op) as smtp:
        assert smtp.login(login, password)[0] == 235
        smtp.send_message(message)
    with imaps(env, op) as client:
        assert client.login(login, password)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
        found = client.search(None, "SUBJECT", f'"{subject}"')[1][0].split()
        assert len(found) == 1


async def test_an_app_password_opens_imap_and_submission(
        environment: RunningEnvironment, operator: SideOperator) -> None:
    """Typed as shown (four groups), without spaces, or in capitals, it logs in; its
    last use is recorded with the client's address."""
    created = await apppasswords.create(operator.store.logins, ENROLLED, "Thunderbird")
    staff = await apppasswords.create(operator.store.logins, SECRETARY, "Poste d'accueil")
    before = time.time() - 1

    def clients() -> None:
        sent_to_self(environment, operator, ENROLLED, created.password, "par mot de passe "
                     "d'application")
        compact = created.password.replace(" ", "")
        for typed in (compact, compact.upper()):
            for attempt in password_attempts(ENROLLED, typed):
                with imaps(environment, operator) as client:
                    assert attempt(client) is not None
                    assert client.select("INBOX")[0] == "OK"
        with imaps(environment, operator) as client:
            assert client.login(SECRETARY, staff.password)[0] == "OK"
        with submissions(environment, operator) as smtp:
            assert smtp.login(SECRETARY, staff.password)[0] == 235

    await asyncio.to_thread(clients)
    (entry,) = await operator.store.logins.app_passwords(ENROLLED)
    assert entry.last_used_at is not None and entry.last_used_at >= before
    assert entry.last_used_from == "127.0.0.1"


async def test_revoked_app_password_is_refused_at_once_despite_the_verification_cache(
        environment: RunningEnvironment, operator: SideOperator, stores: Stores) -> None:
    """Logins are remembered five minutes (passwords.VerifiedLogins), but which hashes
    may open a session is read from the store at each login: revoked by another process
    (the command line, here another store on the same database), the password opens
    nothing from the very next login, and the other application passwords go on."""
    revoked = await apppasswords.create(operator.store.logins, ENROLLED, "Téléphone perdu")
    kept = await apppasswords.create(operator.store.logins, ENROLLED, "Thunderbird")

    def log_in(password: str) -> str:
        with imaps(environment, operator) as client:
            return str(client.login(ENROLLED, password)[0])

    assert await asyncio.to_thread(log_in, revoked.password) == "OK"  # now remembered
    assert await asyncio.to_thread(log_in, revoked.password) == "OK"
    other_process = await stores.open()
    assert await other_process.logins.revoke_app_password(ENROLLED, revoked.entry.id)

    def clients() -> None:
        text = imap_refusal(environment, operator, lambda c: c.login(ENROLLED,
                                                                     revoked.password))
        assert "[AUTHENTICATIONFAILED] Authentication failed" in text
        refused = submission_refusal(environment, operator, "PLAIN", ENROLLED,
                                     revoked.password)
        assert refused.smtp_code == 535
        assert log_in(kept.password) == "OK"

    await asyncio.to_thread(clients)


async def test_a_wrong_app_password_is_throttled_like_any_password(
        environment: RunningEnvironment, operator: SideOperator) -> None:
    """Wrong guesses of the application password's shape count per login (4 here):
    then even the right one is not checked, at IMAP and at submission."""
    created = await apppasswords.create(operator.store.logins, ENROLLED, "Thunderbird")

    def clients() -> None:
        for n in range(4):
            text = imap_refusal(environment, operator, lambda c, n=n: c.login(
                ENROLLED, f"abcd efgh ijkl mno{'pqrs'[n]}"))
            assert "[AUTHENTICATIONFAILED]" in text
        text = imap_refusal(environment, operator, lambda c: c.login(ENROLLED,
                                                                     created.password))
        assert "[UNAVAILABLE] Too many failed logins for this login" in text
        with submissions(environment, operator) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.login(ENROLLED, created.password)
            assert refused.value.smtp_code == 454

    await asyncio.to_thread(clients)


async def test_without_totp_the_account_password_still_opens_imap_and_submission(
        environment: RunningEnvironment, operator: SideOperator) -> None:
    """Nothing changes for a person without a second factor; an application password
    of theirs works beside their password."""
    created = await apppasswords.create(operator.store.logins, PLAIN, "Téléphone")

    def clients() -> None:
        sent_to_self(environment, operator, PLAIN, PASSWORD, "par mot de passe de compte")
        with imaps(environment, operator) as client:
            assert client.login(PLAIN, created.password)[0] == "OK"

    await asyncio.to_thread(clients)


async def test_a_disabled_kind_cannot_use_app_passwords_either(
        environment: RunningEnvironment, tmp_path: Path, stores: Stores) -> None:
    """``[psc.passwords] professional = "disabled"`` disables every password of theirs,
    application passwords included: PSC or the card."""
    store = await stores.open()
    await store.create_person(ENROLLED, PersonKind.HEALTH, "Dr", rpps="10101010101",
                              password_hash=hash_password(PASSWORD))
    created = await apppasswords.create(store.logins, ENROLLED, "Thunderbird")
    async with side_operator(environment, tmp_path, store=store, passwords=PasswordPolicy(
            frozenset({PersonKind.HEALTH}))) as strict:
        def clients() -> None:
            text = imap_refusal(environment, strict, lambda c: c.login(ENROLLED,
                                                                       created.password))
            assert "Passwords are disabled here for health professionals" in text
            refused = submission_refusal(environment, strict, "PLAIN", ENROLLED,
                                         created.password)
            assert refused.smtp_code == 534

        await asyncio.to_thread(clients)


async def test_a_session_opened_with_a_revoked_app_password_ends(
        environment: RunningEnvironment, operator: SideOperator, stores: Stores,
        checked_every_second: float) -> None:
    """Revoked while its sessions are open: the IMAP session gets ``* BYE`` at its next
    command past ``APP_PASSWORD_CHECK_SECONDS`` (here one second), the submission
    session ``421`` at its next MAIL; a session of another application password goes on."""
    revoked = await apppasswords.create(operator.store.logins, ENROLLED, "Téléphone perdu")
    kept = await apppasswords.create(operator.store.logins, ENROLLED, "Thunderbird")
    with contextlib.ExitStack() as opened:
        def open_sessions() -> tuple[imaplib.IMAP4, imaplib.IMAP4, smtplib.SMTP]:
            imap = opened.enter_context(imaps(environment, operator))
            assert imap.login(ENROLLED, revoked.password)[0] == "OK"
            assert imap.select("INBOX")[0] == "OK"
            other = opened.enter_context(imaps(environment, operator))
            assert other.login(ENROLLED, kept.password)[0] == "OK"
            smtp = opened.enter_context(submissions(environment, operator))
            assert smtp.login(ENROLLED, revoked.password)[0] == 235
            return imap, other, smtp

        imap, other, smtp = await asyncio.to_thread(open_sessions)
        other_process = await stores.open()
        assert await other_process.logins.revoke_app_password(ENROLLED, revoked.entry.id)
        await asyncio.sleep(checked_every_second + 0.5)

        def next_commands() -> None:
            with pytest.raises(imaplib.IMAP4.abort, match="application password was revoked"):
                imap.noop()
            assert other.noop()[0] == "OK"
            code, text = smtp.mail(ENROLLED)
            assert code == 421 and b"application password was revoked" in text
            other.logout()

        await asyncio.to_thread(next_commands)


async def test_password_change_revokes_application_passwords(
        environment: RunningEnvironment, operator: SideOperator, stores: Stores,
        checked_every_second: float) -> None:
    """A stolen account password suggests the mail clients' passwords may be taken as
    well: a new account password, set by another process, revokes every application
    password of the person. Their open sessions end as at a revocation (IMAP ``* BYE``,
    submission ``421``) and they open nothing more."""
    stolen = await apppasswords.create(operator.store.logins, ENROLLED, "Téléphone volé")
    with contextlib.ExitStack() as opened:
        def open_sessions() -> tuple[imaplib.IMAP4, smtplib.SMTP]:
            imap = opened.enter_context(imaps(environment, operator))
            assert imap.login(ENROLLED, stolen.password)[0] == "OK"
            assert imap.select("INBOX")[0] == "OK"
            smtp = opened.enter_context(submissions(environment, operator))
            assert smtp.login(ENROLLED, stolen.password)[0] == 235
            return imap, smtp

        imap, smtp = await asyncio.to_thread(open_sessions)
        other_process = await stores.open()
        await other_process.set_password_hash(ENROLLED, hash_password("a brand new password"))
        await asyncio.sleep(checked_every_second + 0.5)

        def next_commands() -> None:
            with pytest.raises(imaplib.IMAP4.abort, match="application password was revoked"):
                imap.noop()
            code, text = smtp.mail(ENROLLED)
            assert code == 421 and b"application password was revoked" in text
            with imaps(environment, operator) as again, pytest.raises(imaplib.IMAP4.error):
                again.login(ENROLLED, stolen.password)

        await asyncio.to_thread(next_commands)
    assert await operator.store.logins.app_passwords(ENROLLED) == []


async def test_a_new_app_password_does_not_keep_a_revoked_ones_session_open(
        environment: RunningEnvironment, operator: SideOperator, stores: Stores,
        checked_every_second: float) -> None:
    """The newest application password revoked, the next one created at once: it gets
    an id of its own (SQLite would give the revoked one's again), so that the session
    the revoked one opened still ends."""
    lost = await apppasswords.create(operator.store.logins, ENROLLED, "Téléphone perdu")
    with contextlib.ExitStack() as opened:
        def open_session() -> imaplib.IMAP4:
            imap = opened.enter_context(imaps(environment, operator))
            assert imap.login(ENROLLED, lost.password)[0] == "OK"
            return imap

        imap = await asyncio.to_thread(open_session)
        other_process = await stores.open()
        assert await other_process.logins.revoke_app_password(ENROLLED, lost.entry.id)
        new = await apppasswords.create(other_process.logins, ENROLLED, "Téléphone neuf")
        assert new.entry.id != lost.entry.id
        await asyncio.sleep(checked_every_second + 0.5)
        with pytest.raises(imaplib.IMAP4.abort, match="application password was revoked"):
            await asyncio.to_thread(imap.noop)
