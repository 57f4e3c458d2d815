"""Clinical documents from the web over real HTTPS (httpx), against the running
environment: Dr Dupont attaches a CDA and its PDF in the webmail's form, and the
message that reaches Dr Martin's INBOX carries the IHE_XDM.ZIP that ``xdm.check``
accepts, the ``XDM/1.0/DDM+`` subject, ``X-MSS-CODECDA`` and ``X-MSS-INS``; a hostile
CDA is refused with its reason and nothing is sent. The REST path
(``POST /api/v1/mailboxes/{address}/documents``) with the web session and with a Pro
Santé Connect access token from the trust space's provider, and its refusals."""

from __future__ import annotations

import email
import email.policy
import hashlib
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from mssante.content.xdm import check
from mssante.pki.tls import client_context
from tests.auth.test_psc_tokens import access_token
from tests.conftest import RunningEnvironment
from tests.content.xdmtools import BIOLOGY_N1, CONSULTATION, CONSULTATION_PDF
from tests.web.test_web_compose import stored
from tests.web.test_web_login import DUPONT, SECRETARY, account, hidden, log_in, web

MARTIN = "jean.martin@medecin.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"
APP = "compte_rendu_patient_noreply@ch-xyz.mssante.fr"
API = "/api/v1/mailboxes/{}/documents"
PATIENT_LINE = "PAT-TROIS DOMINIQUE 28/03/1979"
XXE = CONSULTATION.replace(
    b"<?xml-stylesheet",
    b'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b"<?xml-stylesheet", 1).replace(b"<title>", b"<title>&x;", 1)


def https(environment: RunningEnvironment, **options: object) -> httpx.Client:
    return httpx.Client(base_url=web(environment),
                        verify=client_context(Path(environment.ca_file)), timeout=60,
                        **options)  # type: ignore[arg-type]


@pytest.fixture
def doctor(environment: RunningEnvironment) -> Iterator[httpx.Client]:
    """Dr Dupont's browser, logged in with his password (his PER mailbox)."""
    with https(environment, headers={"Origin": web(environment)}) as client:
        assert log_in(client, DUPONT, account(environment, DUPONT)["password"]
                      ).status_code == 303
        yield client


def form_token(client: httpx.Client, address: str = DUPONT) -> str:
    page = client.get(f"/courrier/{address}/nouveau")
    assert page.status_code == 200
    assert '<label for="cda">Documents cliniques (CDA)</label>' in page.text
    assert '<label for="pdf">Rendus PDF des documents</label>' in page.text
    return hidden(page.text, "csrf")


def received(environment: RunningEnvironment, address: str, message_id: str
             ) -> EmailMessage:
    """The message ``message_id`` once in ``address``'s INBOX, parsed."""
    domain = address.rpartition("@")[2]
    store = environment.service(domain).store
    found: list[EmailMessage] = []

    def arrived() -> bool:
        for summary in environment.runner.call(store.list_messages(address, "INBOX")):
            if summary.message_id == message_id:
                body = environment.runner.call(store.get_body(summary.body_sha256))
                parsed = email.message_from_bytes(body, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                found.append(parsed)
                return True
        return False

    environment.wait_for(arrived, 30, f"{message_id} in {address}")
    return found[0]


def archive_of(message: EmailMessage) -> bytes:
    zipped = next(p for p in message.iter_attachments()
                  if p.get_filename() == "IHE_XDM.ZIP")
    assert zipped.get_content_type() == "application/zip"
    data = zipped.get_content()
    assert isinstance(data, bytes)
    return data


def test_the_doctor_sends_a_cda_and_its_pdf_from_the_webmail(
        environment: RunningEnvironment, doctor: httpx.Client) -> None:
    label = f"Compte rendu {uuid.uuid4().hex[:8]}"
    response = doctor.post(
        f"/courrier/{DUPONT}/envoyer",
        data={"csrf": form_token(doctor), "a": MARTIN, "objet": label,
              "message": "Cher confrère,\nvoici le compte rendu.\n"},
        files=[("cda", ("CR.xml", CONSULTATION, "text/xml")),
               ("pdf", ("CR.pdf", CONSULTATION_PDF, "application/pdf"))])
    assert response.status_code == 303, response.text
    subject = f"XDM/1.0/DDM+{label} {PATIENT_LINE}"
    sent = stored(environment, DUPONT, "Sent", subject)
    assert len(sent) == 1
    message = received(environment, MARTIN, str(sent[0]["Message-ID"]))
    assert message["Subject"] == subject
    assert message["X-MSS-CODECDA"] == "11488-4"
    assert message["X-MSS-INS"] == "O"
    assert message.get_body(("plain",)).get_content().startswith("Cher confrère,")  # type: ignore[union-attr]
    checked = check(archive_of(message))
    assert checked.patient_ins == "279035121518989"
    assert [(d.mime_type, d.sha1) for d in checked.documents] == [
        ("text/xml", hashlib.sha1(CONSULTATION).hexdigest()),
        ("application/pdf", hashlib.sha1(CONSULTATION_PDF).hexdigest())]
    rendering = next(p for p in message.iter_attachments()
                     if p.get_content_type() == "application/pdf")
    assert rendering.get_content() == CONSULTATION_PDF


def test_an_xxe_cda_is_refused_in_the_form_and_nothing_is_sent(
        environment: RunningEnvironment, doctor: httpx.Client) -> None:
    label = f"XXE {uuid.uuid4().hex[:8]}"
    response = doctor.post(
        f"/courrier/{DUPONT}/envoyer",
        data={"csrf": form_token(doctor), "a": MARTIN, "objet": label,
              "message": "texte tapé"},
        files=[("cda", ("piege.xml", XXE, "text/xml"))])
    assert response.status_code == 400
    page = response.text
    assert 'role="alert"' in page and "Documents cliniques refusés" in page
    assert "piege.xml: a document type declaration (DTD) is not allowed" in page
    assert "root:" not in page  # /etc/passwd was never read
    assert f'value="{MARTIN}"' in page and f'value="{label}"' in page  # the input kept
    assert "texte tapé</textarea>" in page
    assert 'id="cda" name="cda"' in page and 'aria-invalid="true"' in page
    assert not [m for m in environment.messages(DUPONT) if label in (m.subject or "")]


def test_two_patients_in_one_message_are_refused(environment: RunningEnvironment,
                                                 doctor: httpx.Client) -> None:
    response = doctor.post(
        f"/courrier/{DUPONT}/envoyer",
        data={"csrf": form_token(doctor), "a": MARTIN, "objet": "Deux patients"},
        files=[("cda", ("un.xml", CONSULTATION, "text/xml")),
               ("cda", ("deux.xml", BIOLOGY_N1, "text/xml"))])
    assert response.status_code == 400
    assert "deux.xml: patient" in response.text and "one patient" in response.text


# -- the REST path ----------------------------------------------------------------------

def documents(*cdas: tuple[str, bytes], pdfs: tuple[tuple[str, bytes], ...] = ()
              ) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [*(("cda", (name, data, "text/xml")) for name, data in cdas),
            *(("pdf", (name, data, "application/pdf")) for name, data in pdfs)]


def test_rest_with_the_web_session(environment: RunningEnvironment,
                                   doctor: httpx.Client) -> None:
    label = f"API session {uuid.uuid4().hex[:8]}"
    response = doctor.post(
        API.format(DUPONT),
        data={"csrf": form_token(doctor), "to": MARTIN, "subject": label,
              "body": "Bonjour"},
        files=documents(("CR.xml", CONSULTATION), pdfs=(("CR.pdf", CONSULTATION_PDF),)))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["recipients"] == [MARTIN]
    assert answer["documents"] == [
        {"name": "CR.xml", "sha1": hashlib.sha1(CONSULTATION).hexdigest(),
         "size": len(CONSULTATION)},
        {"name": "CR.pdf", "sha1": hashlib.sha1(CONSULTATION_PDF).hexdigest(),
         "size": len(CONSULTATION_PDF)}]
    message = received(environment, MARTIN, answer["message_id"])
    assert message["Subject"] == f"XDM/1.0/DDM+{label} {PATIENT_LINE}"
    assert len(check(archive_of(message)).documents) == 2


def test_rest_with_the_session_needs_its_csrf_token(environment: RunningEnvironment,
                                                    doctor: httpx.Client) -> None:
    response = doctor.post(API.format(DUPONT), data={"to": MARTIN, "csrf": "forged"},
                           files=documents(("CR.xml", CONSULTATION)))
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    cross_site = doctor.post(API.format(DUPONT), data={"to": MARTIN},
                             headers={"Origin": "https://evil.example"},
                             files=documents(("CR.xml", CONSULTATION)))
    assert cross_site.status_code == 403  # security.py, before any route


def test_rest_with_a_psc_access_token(environment: RunningEnvironment) -> None:
    token = access_token(environment)
    with https(environment, headers={"Authorization": f"Bearer {token}"}) as program:
        response = program.post(
            API.format(DUPONT), data={"to": [MARTIN, CARDIO]},
            files=documents(("scan.xml", CONSULTATION), pdfs=(("a.pdf", CONSULTATION_PDF),)))
        assert response.status_code == 201, response.text
        answer = response.json()
        assert answer["recipients"] == [MARTIN, CARDIO]
        message = received(environment, CARDIO, answer["message_id"])
        assert message["X-MSS-CODECDA"] == "11488-4"
        assert message["Subject"].startswith("XDM/1.0/DDM+Compte rendu de consultation")
        assert [d.mime_type for d in check(archive_of(message)).documents] == [
            "text/xml", "application/pdf"]
        # a mailbox the token's professional may not send as: an APP mailbox
        forbidden = program.post(API.format(APP), data={"to": MARTIN},
                                 files=documents(("CR.xml", CONSULTATION)))
        assert forbidden.status_code == 403
        assert forbidden.json()["error"].startswith(APP)
        # refused documents and recipients: every reason, nothing sent
        hostile = program.post(API.format(DUPONT),
                               data={"to": MARTIN, "subject": "xxe-rest"},
                               files=documents(("a.xml", XXE), ("b.xml", b"<not xml")))
        assert hostile.status_code == 400
        reasons = hostile.json()["reasons"]
        assert any(r.startswith("a.xml: a document type declaration") for r in reasons)
        assert any(r.startswith("b.xml: not well-formed") for r in reasons)
        outside = program.post(API.format(DUPONT), data={"to": "docteur@gmail.com"},
                               files=documents(("CR.xml", CONSULTATION)))
        assert outside.status_code == 400
        assert outside.json()["reasons"][0].startswith("docteur@gmail.com:")
        assert "trust space" in outside.json()["reasons"][0]
    assert not [m for m in environment.messages(DUPONT) if "xxe-rest" in (m.subject or "")]


def test_rest_without_credentials_or_with_a_forged_token(
        environment: RunningEnvironment) -> None:
    with https(environment) as anonymous:
        response = anonymous.post(API.format(DUPONT), data={"to": MARTIN},
                                  files=documents(("CR.xml", CONSULTATION)))
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        token = access_token(environment)
        head, claims, signature = token.split(".")
        forged = anonymous.post(
            API.format(DUPONT), data={"to": MARTIN},
            headers={"Authorization": f"Bearer {head}.{claims}.{signature[::-1]}"},
            files=documents(("CR.xml", CONSULTATION)))
        assert forged.status_code == 401
        assert 'error="invalid_token"' in forged.headers["www-authenticate"]
        basic = anonymous.post(API.format(DUPONT), data={"to": MARTIN},
                               headers={"Authorization": "Basic ZHVwb250OngK"},
                               files=documents(("CR.xml", CONSULTATION)))
        assert basic.status_code == 401


def test_rest_refuses_a_mailbox_the_session_may_not_send_as(
        environment: RunningEnvironment) -> None:
    with https(environment, headers={"Origin": web(environment)}) as secretary:
        assert log_in(secretary, SECRETARY, account(environment, SECRETARY)["password"]
                      ).status_code == 303
        token = form_token(secretary, CARDIO)
        response = secretary.post(API.format(DUPONT), data={"to": MARTIN, "csrf": token},
                                  files=documents(("CR.xml", CONSULTATION)))
        assert response.status_code == 403
        assert response.json()["error"].startswith(DUPONT)
