"""Sending from the webmail over real HTTPS (httpx): the message goes through the one
acceptance path (operator/sending.py), lands in the recipient's INBOX and the sender's
Sent, and every refusal is shown in the form, naming the address, before anything is
sent."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mssante.pki.tls import client_context
from tests.conftest import RunningEnvironment
from tests.web.test_web_login import SECRETARY, account, hidden, log_in, web

CARDIO = "cardiologie@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"


@pytest.fixture
def secretary(environment: RunningEnvironment) -> Iterator[httpx.Client]:
    base = web(environment)
    with httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                      timeout=30, headers={"Origin": base}) as client:
        assert log_in(client, SECRETARY,
                      account(environment, SECRETARY)["password"]).status_code == 303
        yield client


def compose(client: httpx.Client) -> str:
    page = client.get(f"/courrier/{CARDIO}/nouveau")
    assert page.status_code == 200
    for label in ('<label for="a">À</label>', '<label for="objet">Objet</label>',
                  '<label for="message">Message</label>', ">Envoyer</button>"):
        assert label in page.text
    return hidden(page.text, "csrf")


def stored(environment: RunningEnvironment, address: str, folder: str,
           subject: str) -> list[email.message.EmailMessage]:
    domain = address.rpartition("@")[2]
    store = environment.service(domain).store
    found = []
    for message in environment.runner.call(store.list_messages(address, folder)):
        body = environment.runner.call(store.get_body(message.body_sha256))
        parsed = email.message_from_bytes(body, policy=email.policy.default)
        if parsed["Subject"] == subject:
            found.append(parsed)
    return found


def test_the_secretary_sends_from_the_service_mailbox(environment: RunningEnvironment,
                                                      secretary: httpx.Client) -> None:
    subject = f"Compte rendu {uuid.uuid4().hex[:8]}"
    response = secretary.post(
        f"/courrier/{CARDIO}/envoyer",
        data={"csrf": compose(secretary), "a": MARTIN, "objet": subject,
              "message": "Bonjour,\nvoici le compte rendu.\n", "accuse_lecture": "1"},
        files={"pieces": ("CR.pdf", b"%PDF-1.4 test", "application/pdf")})
    assert response.status_code == 303
    page = secretary.get(response.headers["location"])
    assert 'role="status"' in page.text and "Message envoyé" in page.text
    sent = stored(environment, CARDIO, "Sent", subject)
    assert len(sent) == 1
    message = sent[0]
    assert message["From"].addresses[0].addr_spec == CARDIO
    assert message["Disposition-Notification-To"] == CARDIO
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "CR.pdf"
    assert attachment.get_content() == b"%PDF-1.4 test"
    environment.wait_for(lambda: stored(environment, MARTIN, "INBOX", subject), timeout=30)


@pytest.mark.parametrize("address,reason", [
    ("someone@gmail.com", "outside the MSSanté trust space"),
    ("nobody-here@ch-xyz.mssante.fr", ""),
    ("not an address", "illisible"),
])
def test_a_refused_address_is_named_in_an_alert(environment: RunningEnvironment,
                                                secretary: httpx.Client, address: str,
                                                reason: str) -> None:
    subject = f"Refus {uuid.uuid4().hex[:8]}"
    response = secretary.post(f"/courrier/{CARDIO}/envoyer",
                              data={"csrf": compose(secretary), "a": f"{MARTIN}, {address}",
                                    "objet": subject, "message": "x"})
    assert response.status_code == 400
    assert 'role="alert"' in response.text and address in response.text
    assert reason in response.text
    assert not stored(environment, CARDIO, "Sent", subject)  # nothing was sent


def test_a_mailbox_she_may_not_use_is_not_hers_to_send_from(
        environment: RunningEnvironment, secretary: httpx.Client) -> None:
    """marie.bernard is authorised on cardiologie@ only: Dr Dupont's mailbox is not
    shown to her, and a forged form posting as it is refused."""
    dupont = "dupont@ch-xyz.mssante.fr"
    assert secretary.get(f"/courrier/{dupont}/nouveau").status_code == 404
    response = secretary.post(f"/courrier/{dupont}/envoyer",
                              data={"csrf": compose(secretary), "a": MARTIN,
                                    "objet": "x", "message": "x"})
    assert response.status_code == 404


def test_a_form_without_the_sessions_token_sends_nothing(
        environment: RunningEnvironment, secretary: httpx.Client) -> None:
    subject = f"CSRF {uuid.uuid4().hex[:8]}"
    response = secretary.post(f"/courrier/{CARDIO}/envoyer",
                              data={"csrf": "forged", "a": MARTIN, "objet": subject,
                                    "message": "x"})
    assert response.status_code == 400
    assert not stored(environment, CARDIO, "Sent", subject)
