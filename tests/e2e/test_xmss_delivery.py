"""XMSS-DELIVERY from a client's side: where it is offered, and a retry that repeats
some recipients of a stored transaction and adds others."""

from __future__ import annotations

import asyncio
import smtplib

from mssante.store import open_store
from tests.e2e.mail import client_tls, message, submission, unique
from tests.e2e.test_mta_mutual_tls import mta

JEAN = "jean.martin@medecin.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"


def medecin_cert(environment) -> tuple[str, str]:
    cfg = environment.service("medecin.mssante.fr").config
    return str(cfg.tls.cert_file), str(cfg.tls.key_file)


def operator_session(environment) -> smtplib.SMTP:
    """The medecin.mssante.fr operator at ch-xyz.mssante.fr's MTA, after STARTTLS."""
    smtp = mta(environment, "ch-xyz.mssante.fr")
    smtp.starttls(context=client_tls(environment.ca_file, medecin_cert(environment)))
    smtp.ehlo("mta.medecin.mssante.fr")
    return smtp


def test_offered_by_the_mta_after_starttls_only(environment) -> None:
    with mta(environment, "ch-xyz.mssante.fr") as smtp:
        smtp.ehlo("mta.medecin.mssante.fr")
        assert not smtp.has_extn("xmss-delivery")
    with operator_session(environment) as smtp:
        assert smtp.has_extn("xmss-delivery")
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        assert not smtp.has_extn("xmss-delivery")
        assert smtp.mail(DUPONT)[0] == 250
        code, _ = smtp.rcpt(JEAN, options=["XMSS-DELIVERY=1.a"])
        assert code == 555  # RFC 5321 §4.1.1.11: a parameter not offered


def transaction(smtp: smtplib.SMTP, subject: str, recipients: dict[str, str]
                ) -> tuple[int, bytes]:
    assert smtp.mail(JEAN)[0] == 250
    for recipient, ident in recipients.items():
        assert smtp.rcpt(recipient, options=[f"XMSS-DELIVERY={ident}"])[0] == 250
    return smtp.data(message(JEAN, list(recipients), subject).as_bytes())


def test_a_retry_is_stored_only_for_the_recipients_not_stored_before(environment) -> None:
    subject = unique("nouvelle tentative")
    ids = {DUPONT: f"{subject.split()[-1]}.1", CARDIO: f"{subject.split()[-1]}.2"}

    def copies(address: str) -> int:
        return sum(1 for m in environment.messages(address) if m.subject == subject)

    with operator_session(environment) as smtp:
        assert transaction(smtp, subject, {DUPONT: ids[DUPONT]})[0] == 250
        # the retry of a group: one recipient stored before, one not
        assert transaction(smtp, subject, ids)[0] == 250
        assert (copies(DUPONT), copies(CARDIO)) == (1, 1)
        # and again: nothing left to store
        code, text = transaction(smtp, subject, ids)
        assert code == 250 and b"already accepted" in text
        # an identifier is its entry's only: another one is another message
        assert transaction(smtp, subject, {DUPONT: ids[DUPONT] + "+2Bnew"})[0] == 250
    assert (copies(DUPONT), copies(CARDIO)) == (2, 1)


def test_a_malformed_identifier_is_refused(environment) -> None:
    with operator_session(environment) as smtp:
        assert smtp.mail(JEAN)[0] == 250
        assert smtp.rcpt(DUPONT, options=["XMSS-DELIVERY="])[0] == 501
        assert smtp.rcpt(DUPONT, options=["XMSS-DELIVERY=a+20b"])[0] == 501  # a space
        assert smtp.rcpt(DUPONT, options=["XMSS-DELIVERY=" + "x" * 101])[0] == 501
        assert smtp.rcpt(DUPONT, options=["XMSS-DELIVERY=ok.1"])[0] == 250


def _set_active(environment, address: str, active: bool) -> None:
    """Close or reopen ``address`` at ch-xyz, as `mssante operator mailbox close` does:
    through the store, from outside the running operator."""
    url = environment.service("ch-xyz.mssante.fr").config.database_url

    async def change() -> None:
        store = await open_store(url)
        try:
            await store.set_mailbox_active(address, active)
        finally:
            await store.close()

    asyncio.run(change())


def _rcpt_cached(smtp: smtplib.SMTP, ident: str) -> bool:
    """Whether RCPT still answers 250 for the just-closed mailbox (from its cache);
    the transaction is reset either way."""
    assert smtp.mail(JEAN)[0] == 250
    code = smtp.rcpt(CARDIO, options=[f"XMSS-DELIVERY={ident}+2Bprobe"])[0]
    smtp.rset()
    assert code in (250, 550)
    return code == 250


def test_a_retry_is_answered_250_even_when_its_mailbox_was_closed_since(environment) -> None:
    """The retry of a transaction stored before is recognised even when a check would
    now refuse it (here the mailbox closed between the retry's RCPT and its DATA): a
    bounce would tell the sender that a stored message was not delivered."""
    subject = unique("fermée depuis")
    ident = {CARDIO: f"{subject.split()[-1]}.1"}
    with operator_session(environment) as smtp:
        assert transaction(smtp, subject, ident)[0] == 250
        assert smtp.mail(JEAN)[0] == 250
        assert smtp.rcpt(CARDIO, options=[f"XMSS-DELIVERY={ident[CARDIO]}"])[0] == 250
        _set_active(environment, CARDIO, False)
        try:
            code, text = smtp.data(message(JEAN, [CARDIO], subject).as_bytes())
            assert code == 250 and b"already accepted" in text, text
            # a new message to the closed mailbox is refused: the 250 was the retry's
            # (at RCPT, or at DATA while RCPT's cache of open mailboxes holds it)
            code, text = transaction(smtp, subject, {CARDIO: ident[CARDIO] + "+2Bnew"}) \
                if _rcpt_cached(smtp, ident[CARDIO]) else (550, b"at RCPT")
            assert code == 550, text
        finally:
            _set_active(environment, CARDIO, True)
    assert sum(1 for m in environment.messages(CARDIO) if m.subject == subject) == 1
