"""The operator's password policy per kind of person (``[psc.passwords]``): an operator
that disables passwords for professionals lets them in only with Pro Santé Connect or
their card. A fresh operator (its own store, real IMAP and submission listeners) next
to the running environment, whose provider and PKI it uses; real imaplib and smtplib.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import smtplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from tests.auth.side_operator import SideOperator, side_operator
from tests.auth.test_psc_tokens import DUPONT_ID, access_token, xoauth2
from tests.conftest import RunningEnvironment
from tests.imap.conftest import tls_context

from mssante.auth.passwords import hash_password
from mssante.domain.logins import PasswordPolicy
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules

DUPONT = "dupont@ch-xyz.mssante.fr"
SECRETARY = "secretariat.cardio"
SOCIAL = "assistante.sociale"
PASSWORD = "correct horse battery staple"
DISABLED = "Passwords are disabled here for health professionals"


@pytest.fixture
async def strict_operator(environment: RunningEnvironment,
                          tmp_path: Path) -> AsyncIterator[SideOperator]:
    """ch-xyz as an operator with ``[psc.passwords] professional = "disabled"``: Dr Dupont
    (a professional, idNatPs 810102727017), a secretary and a social worker, all with
    the same password."""
    async with side_operator(environment, tmp_path, passwords=PasswordPolicy(
            frozenset({PersonKind.HEALTH}))) as operator:
        store = operator.store
        await store.create_person(DUPONT, PersonKind.HEALTH, "Dr Dupont",
                                  password_hash=hash_password(PASSWORD), rpps=DUPONT_ID[1:])
        await store.create_mailbox(DUPONT, MailboxType.PER, rules=Rules(), owner=DUPONT)
        await store.create_person(SECRETARY, PersonKind.STAFF, "Secrétariat",
                                  password_hash=hash_password(PASSWORD))
        await store.create_person(SOCIAL, PersonKind.SOCIAL, "Assistante sociale",
                                  password_hash=hash_password(PASSWORD))
        yield operator


def imaps(env: RunningEnvironment, op: SideOperator) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL("127.0.0.1", op.imaps, ssl_context=tls_context(env), timeout=30)


def submissions(env: RunningEnvironment, op: SideOperator) -> smtplib.SMTP_SSL:
    smtp = smtplib.SMTP_SSL("127.0.0.1", op.submissions, context=tls_context(env), timeout=30)
    smtp.ehlo("client.test")
    return smtp


def imap_refusal(env: RunningEnvironment, op: SideOperator,
                 attempt: Callable[[imaplib.IMAP4], object]) -> str:
    with imaps(env, op) as client:
        with pytest.raises(imaplib.IMAP4.error) as refused:
            attempt(client)
        assert client.noop()[0] == "OK"  # the connection stays usable
        return str(refused.value)


def plain(login: str, password: str) -> bytes:
    return f"\0{login}\0{password}".encode()


async def test_a_stolen_professional_password_does_not_open_the_mailbox(
        environment: RunningEnvironment, strict_operator: SideOperator) -> None:
    """Right password, professional, passwords disabled: refused at IMAP (LOGIN and
    AUTHENTICATE PLAIN) and submission (PLAIN and LOGIN), with what to use instead."""
    def clients() -> None:
        for attempt in (lambda c: c.login(DUPONT, PASSWORD),
                        lambda c: c.authenticate("PLAIN", lambda _: plain(DUPONT, PASSWORD))):
            text = imap_refusal(environment, strict_operator, attempt)
            assert "[AUTHENTICATIONFAILED]" in text and DISABLED in text
            assert "Pro Sante Connect" in text and "EXTERNAL" in text
        for mechanism in ("PLAIN", "LOGIN"):
            with submissions(environment, strict_operator) as smtp:
                smtp.user, smtp.password = DUPONT, PASSWORD
                authobject = getattr(smtp, f"auth_{mechanism.lower()}")
                with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                    smtp.auth(mechanism, authobject, initial_response_ok=True)
                assert refused.value.smtp_code == 534  # RFC 4954 §6: mechanism too weak
                assert refused.value.smtp_error.startswith(b"5.7.9 " + DISABLED.encode())

    await asyncio.to_thread(clients)


async def test_a_wrong_password_tells_nothing_about_the_policy(
        environment: RunningEnvironment, strict_operator: SideOperator) -> None:
    """A guess is refused as for an unknown login: the refusal naming the policy goes
    only to whoever knows the password."""
    def clients() -> None:
        texts = {imap_refusal(environment, strict_operator,
                              lambda c, login=login: c.login(login, "guess"))
                 for login in (DUPONT, "nobody@ch-xyz.mssante.fr")}
        assert len(texts) == 1 and "disabled" not in texts.pop()
        with submissions(environment, strict_operator) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.login(DUPONT, "guess")
            assert refused.value.smtp_code == 535

    await asyncio.to_thread(clients)


async def test_other_kinds_keep_their_passwords(environment: RunningEnvironment,
                                                strict_operator: SideOperator) -> None:
    def clients() -> None:
        for login in (SECRETARY, SOCIAL):
            with imaps(environment, strict_operator) as client:
                assert client.login(login, PASSWORD)[0] == "OK"
            with submissions(environment, strict_operator) as smtp:
                assert smtp.login(login, PASSWORD)[0] == 235

    await asyncio.to_thread(clients)


async def test_the_professional_logs_in_with_pro_sante_connect(
        environment: RunningEnvironment, strict_operator: SideOperator) -> None:
    token = await asyncio.to_thread(access_token, environment)

    def clients() -> None:
        with imaps(environment, strict_operator) as client:
            assert client.authenticate("XOAUTH2", lambda _: xoauth2(DUPONT, token))[0] == "OK"
            assert client.select("INBOX")[0] == "OK"
        with submissions(environment, strict_operator) as smtp:
            code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(
                xoauth2(DUPONT, token)).decode())
            assert code == 235

    await asyncio.to_thread(clients)


async def test_the_professional_logs_in_with_the_card(environment: RunningEnvironment,
                                                      strict_operator: SideOperator,
                                                      tmp_path: Path) -> None:
    card = environment.env.trust_space.pki.issue_person(
        "Dr Dupont", given_name="Jean", surname="Dupont", id_nat_ps=DUPONT_ID,
        out_dir=tmp_path, name="card")

    def clients() -> None:
        with imaplib.IMAP4_SSL("127.0.0.1", strict_operator.imaps, timeout=30,
                               ssl_context=tls_context(
                                   environment, (str(card.cert_file), str(card.key_file)))
                               ) as client:
            assert client.authenticate("EXTERNAL", lambda _: b"")[0] == "OK"

    await asyncio.to_thread(clients)
