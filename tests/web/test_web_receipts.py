"""Read receipts and a sent message's timeline in the webmail, over real HTTPS (httpx),
between the environment's operators: Dr Dupont (ch-xyz.mssante.fr) asks Dr Martin
(medecin.mssante.fr) for a read receipt; Martin is asked, sends it, and Dupont's
**Suivi de l'envoi** shows the message read; a patient cannot refuse one and sends it
once; a receipt declined or sent already is not offered again; an integration receipt
with an error code shows as an integration failure."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from mssante.content.integration import Decision, integration_mdn, read_message
from mssante.operator.accept import receipt_notes
from mssante.pki.tls import client_context
from mssante.store.models import MessageSummary
from tests.conftest import RunningEnvironment
from tests.web.test_web_login import account, hidden, log_in, web

HOSPITAL = "ch-xyz.mssante.fr"
PRACTICE = "medecin.mssante.fr"
PATIENTS = "patient.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"
APP = "compte_rendu_patient_noreply@ch-xyz.mssante.fr"
OFFER = "Envoyer l'accusé de lecture"  # the button
MDN_SENT = "$MDNSent"


LoginAs = Callable[[str, str], httpx.Client]


@pytest.fixture
def login_as(environment: RunningEnvironment) -> Iterator[LoginAs]:
    """``login_as(login, domain)``: a client logged in to that operator's webmail."""
    opened: list[httpx.Client] = []

    def open_client(login: str, domain: str) -> httpx.Client:
        base = web(environment, domain)
        client = httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                              timeout=30, headers={"Origin": base})
        opened.append(client)
        assert log_in(client, login, account(environment, login)["password"]
                      ).status_code == 303
        return client

    yield open_client
    for client in opened:
        client.close()


def unique(subject: str) -> str:
    return f"{subject} {uuid.uuid4().hex[:8]}"


def folder_id(environment: RunningEnvironment, address: str, name: str) -> int:
    store = environment.service(address.rpartition("@")[2]).store
    folder = environment.runner.call(store.folders.get(address, name))
    assert folder is not None
    return int(folder.id)


def message_url(client: httpx.Client, environment: RunningEnvironment, address: str,
                subject: str, folder: str = "INBOX") -> str:
    listed = f"/courrier/{address}/dossiers/{folder_id(environment, address, folder)}"
    page = client.get(listed, params={"q": subject})
    found = re.search(r'<a href="([^"]+/messages/\d+)">\s*<span class="subject" dir="auto">'
                      r'(?:<span class="visually-hidden">Non lu : </span>)?'
                      + re.escape(html.escape(subject, quote=False)), page.text)
    assert found is not None, f"{subject!r} is not listed in {address} {folder}"
    return found.group(1)


def send_from_web(client: httpx.Client, sender: str, to: str, subject: str) -> None:
    form = client.get(f"/courrier/{sender}/nouveau")
    response = client.post(f"/courrier/{sender}/envoyer", data={
        "csrf": hidden(form.text, "csrf"), "a": to, "objet": subject,
        "message": "Bonjour,\nvos résultats sont arrivés.\n", "accuse_lecture": "1"})
    assert response.status_code == 303, response.text


def timeline_states(page: str) -> dict[str, str]:
    """The table « État par destinataire » of the section « Suivi de l'envoi »."""
    section = page.partition("Suivi de l'envoi")[2]
    table = section.partition("</table>")[0]
    return dict(re.findall(r'<th scope="row" class="address">([^<]+)</th><td>([^<]+)</td>',
                           table))


def sent_receipts(environment: RunningEnvironment, address: str, subject: str
                  ) -> list[bytes]:
    """The read receipts of the message ``subject`` of the mailbox's INBOX that its Sent
    folder keeps (one per MDN it sent), found by the Original-Message-ID."""
    store = environment.service(address.rpartition("@")[2]).store
    original = next(m.message_id for m in environment.messages(address)
                    if m.subject == subject)
    found = environment.runner.call(store.list_messages(address, "Sent"))
    bodies = [environment.runner.call(store.get_body(m.body_sha256)) for m in found]
    return [b for b in bodies if f"Original-Message-ID: {original}".encode() in b]


def deliver(environment: RunningEnvironment, to: str, subject: str, *,
            notify_to: str | None, keywords: tuple[str, ...] = ()) -> str:
    """A message from Dr Martin asking ``notify_to`` for a read receipt, accepted by the
    store of ``to``'s operator; its Message-ID."""
    message = EmailMessage()
    message["From"] = MARTIN
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=PRACTICE)
    if notify_to is not None:
        message["Disposition-Notification-To"] = notify_to
    message.set_content("Bonjour,\n")
    store = environment.service(to.rpartition("@")[2]).store
    environment.runner.call(store.accept_message(
        message.as_bytes(), envelope_from=MARTIN, local=[to], remote=[], keywords=keywords,
        summary=MessageSummary(message_id=message["Message-ID"], subject=subject,
                               from_header=MARTIN, date_header=None)))
    return str(message["Message-ID"])


def test_a_professional_is_asked_and_the_receipt_reaches_the_senders_timeline(
        environment: RunningEnvironment, login_as: LoginAs) -> None:
    dupont = login_as(DUPONT, HOSPITAL)
    martin = login_as(MARTIN, PRACTICE)
    subject = unique("Compte rendu")
    send_from_web(dupont, DUPONT, MARTIN, subject)
    environment.wait_message(MARTIN, subject, timeout=30)
    # the sender's page: relayed to Martin's operator, not read yet
    sent = message_url(dupont, environment, DUPONT, subject, "Sent")
    page = dupont.get(sent).text
    assert "Suivi de l'envoi" in page and OFFER not in page
    assert timeline_states(page)[MARTIN] != "lu"
    # Martin is asked; nothing is sent before he answers
    url = message_url(martin, environment, MARTIN, subject)
    page = martin.get(url).text
    assert OFFER in page and "Ne pas envoyer" in page and DUPONT in page
    assert not sent_receipts(environment, MARTIN, subject)
    answer = martin.post(f"{url}/accuse-lecture", data={
        "csrf": hidden(page, "csrf"), "reponse": "envoyer"})
    assert (answer.status_code, answer.headers["location"]) == (303, url)
    again = martin.get(url).text
    assert f"Accusé de lecture envoyé à {DUPONT}." in again  # the status, once
    assert OFFER not in again and "déjà été envoyé ou refusé" in again
    [mdn] = sent_receipts(environment, MARTIN, subject)
    assert b"report-type=\"disposition-notification\"" in mdn
    assert b"Disposition: manual-action/MDN-sent-manually; displayed" in mdn
    assert f"Final-Recipient: rfc822;{MARTIN}".encode() in mdn
    original = environment.messages(MARTIN)
    message_id = next(m.message_id for m in original if m.subject == subject)
    assert f"Original-Message-ID: {message_id}".encode() in mdn
    # a second post sends nothing more
    martin.post(f"{url}/accuse-lecture", data={"csrf": hidden(page, "csrf"),
                                               "reponse": "envoyer"})
    assert len(sent_receipts(environment, MARTIN, subject)) == 1

    def read_shown() -> bool:
        return timeline_states(dupont.get(sent).text).get(MARTIN) == "lu"

    environment.wait_for(read_shown, 30, "« lu » in Dupont's timeline")
    page = dupont.get(sent).text
    events = page.partition("Étapes de l'envoi")[2]
    for step in ("envoyé", "transmis", "lu"):
        assert f"<td>{step}</td>" in events
    assert f"opérateur de {PRACTICE}" in events


def test_declining_sends_nothing_and_is_not_asked_again(
        environment: RunningEnvironment, login_as: LoginAs) -> None:
    dupont = login_as(DUPONT, HOSPITAL)
    subject = unique("Résultats")
    deliver(environment, DUPONT, subject, notify_to=MARTIN)
    url = message_url(dupont, environment, DUPONT, subject)
    page = dupont.get(url).text
    assert OFFER in page
    answer = dupont.post(f"{url}/accuse-lecture", data={"csrf": hidden(page, "csrf"),
                                                        "reponse": "refuser"})
    assert answer.status_code == 303
    again = dupont.get(url).text
    assert "Accusé de lecture non envoyé." in again and OFFER not in again
    flags = next(m.flags for m in environment.messages(DUPONT) if m.subject == subject)
    assert MDN_SENT in flags
    assert not sent_receipts(environment, DUPONT, subject)


def test_a_message_marked_mdnsent_is_not_offered_and_a_forged_post_sends_nothing(
        environment: RunningEnvironment, login_as: LoginAs) -> None:
    dupont = login_as(DUPONT, HOSPITAL)
    subject = unique("Déjà répondu")
    deliver(environment, DUPONT, subject, notify_to=MARTIN, keywords=(MDN_SENT,))
    url = message_url(dupont, environment, DUPONT, subject)
    page = dupont.get(url).text
    assert OFFER not in page and "déjà été envoyé ou refusé" in page
    dupont.post(f"{url}/accuse-lecture", data={"csrf": hidden(page, "csrf"),
                                               "reponse": "envoyer"})
    assert "Aucun accusé de lecture à envoyer" in dupont.get(url).text
    # a message that asks for none: no offer, and a post changes nothing
    plain = unique("Sans accusé")
    deliver(environment, DUPONT, plain, notify_to=None)
    url = message_url(dupont, environment, DUPONT, plain)
    page = dupont.get(url).text
    assert OFFER not in page and "accusé de lecture" not in page
    dupont.post(f"{url}/accuse-lecture", data={"csrf": hidden(page, "csrf"),
                                               "reponse": "envoyer"})
    assert not sent_receipts(environment, DUPONT, subject)
    assert not sent_receipts(environment, DUPONT, plain)


def test_a_receipt_post_without_the_sessions_token_sends_nothing(
        environment: RunningEnvironment, login_as: LoginAs) -> None:
    """Cross-site request forgery: a post without the page's token neither sends the
    receipt nor marks the message."""
    dupont = login_as(DUPONT, HOSPITAL)
    subject = unique("Forgé")
    deliver(environment, DUPONT, subject, notify_to=MARTIN)
    url = message_url(dupont, environment, DUPONT, subject)
    forged = dupont.post(f"{url}/accuse-lecture", data={"csrf": "forged",
                                                        "reponse": "envoyer"})
    assert forged.status_code == 403
    assert OFFER in dupont.get(url).text
    assert not sent_receipts(environment, DUPONT, subject)


def test_a_patient_cannot_refuse_the_receipt_sent_once(
        environment: RunningEnvironment, login_as: LoginAs) -> None:
    dupont = login_as(DUPONT, HOSPITAL)
    patient = login_as(PATIENT, PATIENTS)
    subject = unique("Vos résultats")
    send_from_web(dupont, DUPONT, PATIENT, subject)
    environment.wait_message(PATIENT, subject, timeout=30)
    url = message_url(patient, environment, PATIENT, subject)
    page = patient.get(url).text
    assert f"Un accusé de lecture a été envoyé à {DUPONT}" in page
    assert OFFER not in page and "Ne pas envoyer" not in page
    [mdn] = sent_receipts(environment, PATIENT, subject)
    assert b"Disposition: automatic-action/MDN-sent-automatically; displayed" in mdn
    assert f"Final-Recipient: rfc822;{PATIENT}".encode() in mdn
    # reopened: said again, sent no more
    again = patient.get(url).text
    assert "à la première ouverture de ce message" in again
    assert len(sent_receipts(environment, PATIENT, subject)) == 1
    sent = message_url(dupont, environment, DUPONT, subject, "Sent")
    environment.wait_for(lambda: timeline_states(dupont.get(sent).text).get(PATIENT) == "lu",
                         30, "« lu » for the patient in Dupont's timeline")
    # the receipt is no reply of the patient's in Dupont's conversation with them
    thread = next(m.message_id for m in environment.messages(PATIENT) if m.subject == subject)
    held = environment.runner.call(environment.service(HOSPITAL).store.care_thread_of(
        DUPONT, PATIENT, thread))
    assert held is not None and held.replies == 0


def test_an_integration_failure_shows_its_code_and_label(
        environment: RunningEnvironment, login_as: LoginAs) -> None:
    """The ANS KO integration receipt (processed/Error: 904^…) is an integration failure
    in the timeline, not « traité »."""
    dupont = login_as(DUPONT, HOSPITAL)
    store = environment.service(HOSPITAL).store
    subject = unique("Compte rendu à intégrer")
    original = EmailMessage()
    original["From"] = DUPONT
    original["To"] = APP
    original["Subject"] = subject
    original["Message-ID"] = make_msgid(domain=HOSPITAL)
    original["Disposition-Notification-To"] = DUPONT
    original.set_content("Compte rendu\n")
    raw = original.as_bytes()
    summary = MessageSummary(message_id=original["Message-ID"], subject=subject,
                             from_header=DUPONT, date_header=None)
    environment.runner.call(store.accept_message(raw, envelope_from=DUPONT, local=[APP],
                                                 remote=[], summary=summary, sent=DUPONT))
    ko = integration_mdn(read_message(raw), Decision(904, ("mismatch",)), mailbox=APP,
                         to=DUPONT).as_bytes()
    environment.runner.call(store.accept_message(
        ko, envelope_from=APP, local=[DUPONT], remote=[],
        summary=MessageSummary(message_id=None, subject="KO", from_header=APP,
                               date_header=None),
        reports=receipt_notes([DUPONT], ko, [APP])))
    page = dupont.get(message_url(dupont, environment, DUPONT, subject, "Sent")).text
    label = str(escape("échec d'intégration 904 — INS incohérent"))
    assert timeline_states(page)[APP] == label
    assert f"<td>{label}</td>" in page and "<td>traité</td>" not in page
    assert f'class="address">{APP}</td>' in page
