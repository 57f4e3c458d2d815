"""Mail between and within operators, and the trust space's sending rules."""

from __future__ import annotations

import base64
import email.policy
import json
import smtplib
import stat

import pytest

from tests.e2e.mail import message, send, submission, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"
APP = "compte_rendu_patient_noreply@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
SECRETARY = "marie.bernard"


def test_environment_json_has_the_promised_keys(environment) -> None:
    path = environment.env.data_dir / "environment.json"
    data = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds passwords
    assert set(data) >= {"ca_file", "trust_space", "operators", "accounts", "applications"}
    assert data["trust_space"]["url"].startswith("https://127.0.0.1:")
    domains = [o["domain"] for o in data["operators"]]
    assert domains == ["ch-xyz.mssante.fr", "medecin.mssante.fr", "patient.mssante.fr"]
    for op in data["operators"]:
        assert op["smtp"]["tls"] == "starttls" and op["submissions"]["tls"] == "implicit"
        assert op["submission"]["port"] > 0
    dupont = environment.account(DUPONT)
    assert dupont["kind"] == "professional"
    assert sorted(dupont["mailboxes"]) == [CARDIO, DUPONT]
    assert environment.account(SECRETARY)["mailboxes"] == [CARDIO]
    assert environment.account("279035121518989@patient.mssante.fr")["kind"] == "patient"
    assert data["applications"][0]["mailbox"] == APP


def test_message_crosses_between_operators(environment) -> None:
    subject = unique("Compte rendu de consultation")
    refused = send(environment, DUPONT, message(DUPONT, MARTIN, subject))
    assert refused == {}
    stored = environment.wait_message(MARTIN, subject)
    assert stored.from_header == DUPONT
    body = environment.runner.call(_body(environment, MARTIN, stored.body_sha256))
    # one Received header per operator: submission at ch-xyz, then the MTA at medecin
    assert body.count(b"Received:") == 2
    assert b"by mta.medecin.mssante.fr" in body and b"with ESMTPS" in body


async def _body(env, address: str, sha: str) -> bytes:
    from mssante.store import open_store

    store = await open_store(env.service(address.rpartition("@")[2]).config.database_url)
    try:
        return await store.get_body(sha)
    finally:
        await store.close()


def test_same_operator_recipient_needs_no_network_hop(environment) -> None:
    subject = unique("Avis cardiologique")
    send(environment, DUPONT, message(DUPONT, CARDIO, subject))
    # delivered in the submission transaction itself: already there
    assert [m.subject for m in environment.messages(CARDIO) if m.subject == subject] == [subject]


def test_address_outside_the_trust_space_is_refused(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        smtp.mail(DUPONT)
        code, text = smtp.rcpt("confrere@gmail.com")
    assert code == 550
    assert b"5.7.1" in text
    assert b"confrere@gmail.com is outside the MSSante trust space" in text


def test_unknown_mssante_domain_is_refused(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        smtp.mail(DUPONT)
        code, text = smtp.rcpt("x@inconnu.mssante.fr")
    assert code == 550 and b"not on the MSSante whitelist" in text


def test_sending_as_someone_elses_mailbox_is_refused(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        code, text = smtp.mail(MARTIN)
        assert code == 550 and b"not allowed to send as" in text
        # envelope correct, From header forged: refused at the end of DATA
        smtp.rset()
        msg = message(MARTIN, CARDIO, "forged")
        with pytest.raises(smtplib.SMTPDataError) as info:
            smtp.send_message(msg, from_addr=DUPONT)
    assert info.value.smtp_code == 550 and b"From header" in info.value.smtp_error


def test_secretary_may_send_as_the_service_not_as_the_doctor(environment) -> None:
    subject = unique("RDV cardiologie")
    assert send(environment, SECRETARY, message(CARDIO, MARTIN, subject),
                domain="ch-xyz.mssante.fr") == {}
    environment.wait_message(MARTIN, subject)
    with submission(environment, "ch-xyz.mssante.fr", SECRETARY) as smtp:
        code, text = smtp.mail(DUPONT)
    assert code == 550 and b"marie.bernard is not allowed to send as dupont@" in text


def test_wrong_password_is_refused_and_connection_closed_after_three(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr") as smtp:
        smtp.user, smtp.password = DUPONT, "wrong"
        for _ in range(2):
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                smtp.auth("PLAIN", smtp.auth_plain)
            assert info.value.smtp_code == 535
        code, text = smtp.docmd("AUTH", "PLAIN " + _plain(DUPONT, "wrong"))
        assert code == 421 and b"Too many authentication failures" in text
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()


def _plain(login: str, password: str) -> str:
    import base64

    return base64.b64encode(f"\0{login}\0{password}".encode()).decode()


def test_no_auth_before_tls(environment) -> None:
    op = environment.operator("ch-xyz.mssante.fr")["submission"]
    with smtplib.SMTP(op["host"], op["port"], timeout=10) as smtp:
        smtp.ehlo("client.test")
        assert not smtp.has_extn("auth")
        code, _ = smtp.mail(DUPONT)
        assert code == 530


def test_implicit_tls_submission(environment) -> None:
    subject = unique("via 465")
    with submission(environment, "ch-xyz.mssante.fr", DUPONT, implicit=True) as smtp:
        assert smtp.has_extn("pipelining") and smtp.has_extn("dsn")
        smtp.send_message(message(DUPONT, CARDIO, subject))
    assert any(m.subject == subject for m in environment.messages(CARDIO))


def test_application_mailbox_authenticates_with_its_certificate(environment) -> None:
    app = environment.description["applications"][0]
    subject = unique("CR automatique")
    with submission(environment, "ch-xyz.mssante.fr",
                    cert=(app["cert_file"], app["key_file"])) as smtp:
        code, text = smtp.docmd("AUTH", "EXTERNAL =")
        assert code == 235, text
        smtp.send_message(message(APP, MARTIN, subject))
    environment.wait_message(MARTIN, subject)
    # a person cannot send as the APP mailbox, not even its responsible
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        code, _ = smtp.mail(APP)
    assert code == 550


def test_external_without_certificate_is_refused(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr") as smtp:
        code, text = smtp.docmd("AUTH", "EXTERNAL =")
    assert code == 535 and b"client certificate" in text


def test_dsn_success_when_asked(environment) -> None:
    subject = unique("avec accusé")
    envid = f"env-{subject.rsplit(' ', 1)[1]}"
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        smtp.send_message(message(DUPONT, MARTIN, subject), mail_options=["RET=HDRS",
                                                                         f"ENVID={envid}"],
                          rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    environment.wait_message(MARTIN, subject)
    found: list[bytes] = []

    def reported() -> bool:  # this message's report (other tests ask for some too)
        for m in environment.messages(DUPONT):
            if m.subject == "Successful Mail Delivery Report / Message distribué":
                body = environment.runner.call(_body(environment, DUPONT, m.body_sha256))
                if f"Original-Envelope-Id: {envid}".encode() in body:
                    found.append(body)
                    return True
        return False

    environment.wait_for(reported, timeout=20)
    body = found[0]
    assert b"Action: delivered" in body
    assert b"Final-Recipient: rfc822; jean.martin@medecin.mssante.fr" in body
    # delivered by the operator itself: its own diagnostic, no remote server (RFC 3464 §2.3.6)
    assert b"Diagnostic-Code: X-mssante; delivered to mailbox" in body
    assert b"Remote-MTA" not in body


def test_permanent_failure_returns_a_dsn(environment) -> None:
    subject = unique("vers une adresse inconnue")
    send(environment, DUPONT, message(DUPONT, "inconnu@medecin.mssante.fr", subject))
    bounces = "Undelivered Mail Returned to Sender / Message non distribué"

    def bounced() -> bool:
        for m in environment.messages(DUPONT):
            if m.subject == bounces:
                body = environment.runner.call(_body(environment, DUPONT, m.body_sha256))
                if subject.encode() in body:
                    assert b"Action: failed" in body and b"Status: 5.1.1" in body
                    assert b"inconnu@medecin.mssante.fr" in body
                    return True
        return False

    environment.wait_for(bounced, what="a failure DSN")


def test_oversized_message_is_refused(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        code, text = smtp.mail(DUPONT, ["SIZE=30000000"])
        assert code == 552 and b"exceeds" in text
        smtp.rset()
        big = message(DUPONT, CARDIO, "trop gros", "x" * 80 + "\n")
        big.add_attachment(b"\0" * (26 * 1024 * 1024), maintype="application",
                           subtype="octet-stream", filename="scan.bin")
        smtp.mail(DUPONT)  # no SIZE announced: the limit applies to the data itself
        smtp.rcpt(CARDIO)
        code, text = smtp.data(big.as_bytes(policy=email.policy.SMTP))
    assert code == 552
    assert not any(m.subject == "trop gros" for m in environment.messages(CARDIO))


def test_closed_mailbox_is_refused_with_a_reason(environment, monkeypatch) -> None:
    from mssante.operator import runtime as context
    from mssante.store import open_store

    monkeypatch.setattr(context, "MAILBOX_CACHE_SECONDS", 0.0)  # see the change at once
    url = environment.service("ch-xyz.mssante.fr").config.database_url

    async def set_active(active: bool) -> None:
        store = await open_store(url)
        try:
            await store.set_mailbox_active(CARDIO, active)
        finally:
            await store.close()

    import asyncio

    asyncio.run(set_active(False))
    try:
        with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
            smtp.mail(DUPONT)
            code, text = smtp.rcpt(CARDIO)
        assert code == 550 and b"5.2.1" in text and b"closed" in text
    finally:
        asyncio.run(set_active(True))
    # Opened again, it receives at once: a refusal is never served from the cache (a
    # sender's message refused in the seconds after the opening would be lost to it).
    monkeypatch.undo()
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        smtp.mail(DUPONT)
        assert smtp.rcpt(CARDIO)[0] == 250


def test_one_message_good_and_bad_recipients_at_the_next_hop(environment) -> None:
    subject = unique("deux destinataires")
    refused = send(environment, DUPONT, message(DUPONT, [MARTIN, "absent@medecin.mssante.fr"],
                                                 subject))
    assert refused == {}  # both are in the trust space: accepted at submission
    environment.wait_message(MARTIN, subject)

    def bounced() -> bool:
        for m in environment.messages(DUPONT):
            if m.subject and m.subject.startswith("Undelivered"):
                body = environment.runner.call(_body(environment, DUPONT, m.body_sha256))
                if subject.split()[-1].encode() in body:
                    assert b"absent@medecin.mssante.fr" in body
                    assert b"Final-Recipient: rfc822; jean.martin" not in body
                    return True
        return False

    environment.wait_for(bounced, what="a DSN for the absent recipient only")


def test_a_professional_card_logs_in_to_submission(environment, tmp_path) -> None:
    """A CPS card certificate (persons CA, idNatPs "8" + RPPS in the serialNumber)
    logs its holder in with their own rights, as over IMAP."""
    pki = environment.env.trust_space.pki
    card = pki.issue_person("Paul Dupont", given_name="Paul", surname="Dupont",
                            id_nat_ps="810102727017", out_dir=tmp_path, name="cps")
    subject = unique("envoyé avec la carte")
    with submission(environment, "ch-xyz.mssante.fr",
                    cert=(str(card.cert_file), str(card.key_file))) as smtp:
        code, text = smtp.docmd("AUTH", "EXTERNAL =")
        assert code == 235, text
        smtp.send_message(message(DUPONT, MARTIN, subject))
        code, _ = smtp.mail(APP)  # still not the APP mailbox
        assert code == 550
    environment.wait_message(MARTIN, subject)
    # an authorisation identity (RFC 4422 Appendix A) must name the card's holder
    for authzid, expected in ((DUPONT, 235), (MARTIN, 535)):
        with submission(environment, "ch-xyz.mssante.fr",
                        cert=(str(card.cert_file), str(card.key_file))) as smtp:
            code, text = smtp.docmd("AUTH", "EXTERNAL " + base64.b64encode(
                authzid.encode()).decode())
        assert code == expected, text


def test_external_with_a_certificate_of_no_one_here(environment, tmp_path) -> None:
    pki = environment.env.trust_space.pki
    stranger = pki.issue_person("Dr Inconnu", given_name="Jean", surname="Inconnu",
                                id_nat_ps="899999999999", out_dir=tmp_path, name="cps")
    unbound = pki.issue_organisation("DPI sans boite", organisation="CLINIQUE SANS BOITE",
                                     out_dir=tmp_path, name="unbound")
    for cert, reason in ((stranger, b"No account for the card holder 899999999999"),
                         (unbound, b"No applicative mailbox")):
        with submission(environment, "ch-xyz.mssante.fr",
                        cert=(str(cert.cert_file), str(cert.key_file))) as smtp:
            code, text = smtp.docmd("AUTH", "EXTERNAL =")
        assert code == 535 and reason in text, text


def test_utf8_headers_cross_with_smtputf8(environment) -> None:
    subject = unique("Échographie cardiaque — résultat")
    data = (f"From: Dr Dupont <{DUPONT}>\r\nTo: <{MARTIN}>\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nCœur normal.\r\n").encode()
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        assert smtp.has_extn("smtputf8")
        smtp.sendmail(DUPONT, [MARTIN], data, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    stored = environment.wait_message(MARTIN, subject)
    body = environment.runner.call(_body(environment, MARTIN, stored.body_sha256))
    assert subject.encode() in body and "Cœur normal.".encode() in body
