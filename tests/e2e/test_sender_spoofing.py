"""Who a message says it is from: the From the rules check is the From every reader shows,
a revoked delegate stops sending at once, an operator vouches only for its own domains.

Each test drives the running environment with smtplib (and imaplib where the reader is
the point), as the attacks of issue 9 §2 were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import smtplib
from collections.abc import Iterator
from typing import Any

import pytest

from mssante.domain.mailboxes import Role, Rules
from mssante.store import open_store
from tests.e2e.mail import client_tls, submission, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
SECRETARY = "marie.bernard"
CH_XYZ = "ch-xyz.mssante.fr"
MEDECIN = "medecin.mssante.fr"


def _data(from_field: bytes | None, subject: str, *, extra: bytes = b"") -> bytes:
    head = b"" if from_field is None else b"From:" + from_field + b"\r\n"
    msgid = subject.replace(" ", ".")
    return head + extra + (f"To: <{MARTIN}>\r\nSubject: {subject}\r\n"
                           f"Message-ID: <{msgid}@ch-xyz.mssante.fr>\r\n"
                           "\r\nBonjour\r\n").encode()


def _submit(env: Any, login: str, sender: str, data: bytes) -> tuple[int, bytes]:
    with submission(env, CH_XYZ, login) as smtp:
        code, text = smtp.mail(sender)
        assert code == 250, text
        code, text = smtp.rcpt(MARTIN)
        assert code == 250, text
        return smtp.data(data)


@contextlib.contextmanager
def _mta(env: Any, to_domain: str, as_domain: str) -> Iterator[smtplib.SMTP]:
    """A session with ``to_domain``'s MTA under ``as_domain``'s operator certificate."""
    ep = env.operator(to_domain)["smtp"]
    cfg = env.service(as_domain).config
    with smtplib.SMTP(ep["host"], ep["port"], timeout=30) as smtp:
        smtp.starttls(context=client_tls(env.ca_file, (str(cfg.tls.cert_file),
                                                       str(cfg.tls.key_file))))
        smtp.ehlo("peer.test")
        yield smtp


def _relay(env: Any, to_domain: str, as_domain: str, sender: str, rcpt: str,
           data: bytes) -> tuple[int, bytes]:
    with _mta(env, to_domain, as_domain) as smtp:
        code, text = smtp.mail(sender)
        assert code == 250, text
        code, text = smtp.rcpt(rcpt)
        assert code == 250, text
        return smtp.data(data)


# --- 1. From spoofing through two address parsers ----------------------------------------

SPOOFS = [
    b" [ cardiologie@ch-xyz.mssante.fr(]<dupont@ch-xyz.mssante.fr>",
    b" <@dupont@ch-xyz.mssante.fr>,<cardiologie@ch-xyz.mssante.fr>,",
    b" <cardiologie@ch-xyz.mssante.fr>, <dupont@ch-xyz.mssante.fr>",
    b' "cardiologie@ch-xyz.mssante.fr" <cardiologie@ch-xyz.mssante.fr> dupont@ch-xyz.mssante.fr',
]


@pytest.mark.parametrize("from_field", SPOOFS)
def test_from_spoofing_through_two_address_parsers_is_refused_at_submission(
        environment, from_field: bytes) -> None:
    code, text = _submit(environment, SECRETARY, CARDIO,
                         _data(from_field, unique("usurpation")))
    assert code == 550 and b"5.6.0" in text and b"From header" in text, text


@pytest.mark.parametrize("from_field", SPOOFS)
def test_from_spoofing_through_two_address_parsers_is_refused_at_the_mta(
        environment, from_field: bytes) -> None:
    code, text = _relay(environment, MEDECIN, CH_XYZ, CARDIO, MARTIN,
                        _data(from_field, unique("usurpation")))
    assert code == 550 and b"5.6.0" in text and b"From header" in text, text


def test_the_from_the_rules_checked_is_the_from_imap_shows(environment) -> None:
    """A legitimate From with a quoted name, a nested comment and an encoded word: the
    secretary may send it as the service, and Dr Martin's ENVELOPE names the service."""
    subject = unique("RDV cardiologie")
    from_field = (b' "Service de cardiologie (Dr Dupont)" (dupont@ch-xyz.mssante.fr (sic))'
                  b" <cardiologie@ch-xyz.mssante.fr>")
    code, text = _submit(environment, SECRETARY, CARDIO, _data(from_field, subject))
    assert code == 250, text
    environment.wait_message(MARTIN, subject)
    imaps = environment.operator(MEDECIN)["imaps"]
    with imaplib.IMAP4_SSL(imaps["host"], imaps["port"],
                           ssl_context=client_tls(environment.ca_file)) as imap:
        imap.login(MARTIN, environment.password(MARTIN))
        imap.select("INBOX", readonly=True)
        status, found = imap.uid("SEARCH", "SUBJECT", f'"{subject}"')
        assert status == "OK" and found[0], found
        uid = found[0].split()[-1].decode()
        status, data = imap.uid("FETCH", uid, "(ENVELOPE)")
        assert status == "OK"
        envelope = data[0] if isinstance(data[0], bytes) else data[0][0]
        status, by_from = imap.uid("SEARCH", "FROM", "cardiologie@ch-xyz")
        status, by_dupont = imap.uid("SEARCH", "FROM", "dupont@ch-xyz")
    sender = (b'(("Service de cardiologie (Dr Dupont)" NIL "cardiologie" '
              b'"ch-xyz.mssante.fr"))')
    assert envelope.count(sender) == 3, envelope  # from, sender, reply-to
    assert uid.encode() in by_from[0].split()
    assert uid.encode() not in by_dupont[0].split()  # the comment is no address


# --- 2. Unparseable From gets a second From -------------------------------------------------


@pytest.mark.parametrize("from_field", [
    b" x<@dupont@ch-xyz.mssante.fr>",
    b"",
    b"   ",
    b" (Dr Dupont <cardiologie@ch-xyz.mssante.fr>",
    b' "Dr Dupont <cardiologie@ch-xyz.mssante.fr>',
    b" Dr Dupont",
])
def test_unparseable_from_is_refused_rather_than_given_a_second_from(
        environment, from_field: bytes) -> None:
    code, text = _submit(environment, SECRETARY, CARDIO,
                         _data(from_field, unique("sans auteur")))
    assert code == 550 and b"5.6.0" in text and b"From header" in text, text


def test_a_message_without_from_gets_exactly_one(environment) -> None:
    subject = unique("sans From")
    code, text = _submit(environment, SECRETARY, CARDIO, _data(None, subject))
    assert code == 250, text
    stored = environment.wait_message(MARTIN, subject)
    assert stored.from_header == CARDIO
    body = environment.runner.call(_body(environment, MARTIN, stored.body_sha256))
    head = body.partition(b"\r\n\r\n")[0]
    assert [line for line in head.split(b"\r\n") if line.lower().startswith(b"from:")] == [
        b"From: <cardiologie@ch-xyz.mssante.fr>"]


def test_a_leading_continuation_line_cannot_add_an_author_to_the_added_from(
        environment) -> None:
    """Without a From, submission adds one above the client's data: a first line that
    continues a field would have continued that From in the stored message (a second
    author the rules never saw), while the rules read it as part of Received."""
    data = b' , "Dr Dupont" <dupont@ch-xyz.mssante.fr>\r\n' + _data(None, unique("suite"))
    code, text = _submit(environment, SECRETARY, CARDIO, data)
    assert code == 550 and b"5.6.0" in text and b"continuation line" in text, text
    code, text = _relay(environment, MEDECIN, CH_XYZ, CARDIO, MARTIN,
                        b" (continued)\r\n" + _data(b" <cardiologie@ch-xyz.mssante.fr>",
                                                     unique("suite")))
    assert code == 550 and b"5.6.0" in text and b"continuation line" in text, text


def test_a_field_name_readers_disagree_on_is_refused(environment) -> None:
    """A no-break space before "From" made the rules see a From that IMAP did not."""
    data = "\u00a0From: <cardiologie@ch-xyz.mssante.fr>\r\n".encode() + _data(
        None, unique("espace"))
    code, text = _submit(environment, SECRETARY, CARDIO, data)
    assert code == 550 and b"5.6.0" in text and b"not a header field" in text, text


def test_a_message_without_from_is_refused_between_operators(environment) -> None:
    code, text = _relay(environment, MEDECIN, CH_XYZ, CARDIO, MARTIN,
                        _data(None, unique("sans From")))
    assert code == 550 and b"5.6.0" in text and b"no From" in text, text


async def _body(env: Any, address: str, sha: str) -> bytes:
    store = await open_store(env.service(address.rpartition("@")[2]).config.database_url)
    try:
        return await store.get_body(sha)
    finally:
        await store.close()


# --- 3. A revoked delegate keeps sending -----------------------------------------------------


def _set_delegate(env: Any, authorised: bool) -> None:
    """Revoke or grant the secretary on cardiologie@, as `mssante operator mailbox
    revoke|grant` do: through the store, from outside the running operator."""
    url = env.service(CH_XYZ).config.database_url

    async def change() -> None:
        store = await open_store(url)
        try:
            if authorised:
                await store.grant(CARDIO, SECRETARY, Role.AUTHORISED, rules=Rules())
            else:
                await store.revoke(CARDIO, SECRETARY)
        finally:
            await store.close()

    asyncio.run(change())


def test_a_revoked_delegate_cannot_send_on_the_connection_she_kept(environment) -> None:
    try:
        with submission(environment, CH_XYZ, SECRETARY) as smtp:
            code, text = smtp.mail(CARDIO)
            assert code == 250, text
            smtp.rset()
            _set_delegate(environment, authorised=False)
            code, text = smtp.mail(CARDIO)
        assert code == 550 and b"5.7.1" in text and b"not allowed to send as" in text, text
    finally:
        _set_delegate(environment, authorised=True)


def test_a_delegate_revoked_between_rcpt_and_data_is_refused_at_data(environment) -> None:
    subject = unique("révoquée en cours")
    try:
        with submission(environment, CH_XYZ, SECRETARY) as smtp:
            assert smtp.mail(CARDIO)[0] == 250
            assert smtp.rcpt(MARTIN)[0] == 250
            _set_delegate(environment, authorised=False)
            code, text = smtp.data(_data(b" <cardiologie@ch-xyz.mssante.fr>", subject))
        assert code == 550 and b"5.7.1" in text and b"not allowed to send as" in text, text
    finally:
        _set_delegate(environment, authorised=True)
    # granted again, the same secretary sends again: the refusal was the revocation
    code, text = _submit(environment, SECRETARY, CARDIO,
                         _data(b" <cardiologie@ch-xyz.mssante.fr>", unique("de nouveau")))
    assert code == 250, text


# --- 4. The From domain is not bound to the sending operator --------------------------------


@pytest.mark.parametrize(("header", "what"), [
    (b"From: <cardiologie@ch-xyz.mssante.fr>\r\n", b"From header domain ch-xyz.mssante.fr"),
    (b"From: <jean.martin@medecin.mssante.fr>\r\nSender: <dupont@ch-xyz.mssante.fr>\r\n",
     b"Sender header domain ch-xyz.mssante.fr"),
])
def test_an_operator_cannot_vouch_for_another_operators_from(
        environment, header: bytes, what: bytes) -> None:
    """With medecin's certificate, a MAIL FROM of medecin's own domain, and a From or
    Sender of ch-xyz's: refused, as a MAIL FROM of ch-xyz's domain is."""
    subject = unique("usurpation entre opérateurs")
    data = header + (f"To: <{DUPONT}>\r\nSubject: {subject}\r\n\r\nBonjour\r\n").encode()
    code, text = _relay(environment, CH_XYZ, MEDECIN, MARTIN, DUPONT, data)
    assert code == 550 and b"5.7.1" in text and what in text, text
    assert b"not served by certificate" in text
