"""Drafts in the webmail over real HTTPS (httpx): kept in the Drafts folder as an IMAP
client keeps them (``\\Draft``, seen by imaplib), replaced when saved again, resumed with
their fields, options and attachments, removed once sent; the folder made again when it
was deleted; a patient keeps only a reply in an open conversation."""

from __future__ import annotations

import contextlib
import email
import email.policy
import html
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mssante.domain.patient import professional_message
from mssante.pki.tls import client_context
from mssante.store.models import MessageSummary
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, Account, fresh_person
from tests.imap.conftest import login as imap_login
from tests.web.test_web_login import account, hidden, log_in, web

DUPONT = "dupont@ch-xyz.mssante.fr"
PATIENTS = "patient.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


@contextlib.contextmanager
def client_for(environment: RunningEnvironment, login: str, password: str,
               domain: str = HOSPITAL) -> Iterator[httpx.Client]:
    base = web(environment, domain)
    with httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                      timeout=30, headers={"Origin": base}) as client:
        assert log_in(client, login, password).status_code == 303
        yield client


@pytest.fixture
def person(environment: RunningEnvironment) -> Account:
    return fresh_person(environment)


@pytest.fixture
def browser_like(environment: RunningEnvironment, person: Account) -> Iterator[httpx.Client]:
    with client_for(environment, person.login, person.password) as client:
        yield client


def drafts_in_imap(environment: RunningEnvironment, person: Account
                   ) -> list[tuple[bytes, email.message.EmailMessage]]:
    """(FLAGS, message) of each message an IMAP client finds in the \\Drafts folder."""
    imap = imap_login(environment, person)
    try:
        status, listed = imap.list()
        assert status == "OK"
        names = [re.search(rb'"/" "?([^"]+)"?$', line).group(1)  # type: ignore[union-attr]
                 for line in listed if isinstance(line, bytes) and b"\\Drafts" in line]
        assert len(names) == 1, listed
        status, count = imap.select(names[0].decode(), readonly=True)
        assert status == "OK"
        found: list[tuple[bytes, email.message.EmailMessage]] = []
        if count[0] == b"0":
            return found
        status, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                assert flags is not None
                parsed = email.message_from_bytes(item[1], policy=email.policy.default)
                assert isinstance(parsed, email.message.EmailMessage)
                stored = [f for f in flags.group(1).split() if f != b"\\Recent"]  # the session's
                found.append((b" ".join(stored), parsed))
        return found
    finally:
        imap.logout()


def field(page: str, name: str) -> str:
    found = re.search(rf'<input id="{name}" name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no field {name}"
    return html.unescape(found.group(1))


def test_a_draft_is_kept_replaced_resumed_and_gone_once_sent(
        environment: RunningEnvironment, person: Account, browser_like: httpx.Client) -> None:
    subject = f"Brouillon {uuid.uuid4().hex[:6]}"
    form = browser_like.get(f"/courrier/{person.address}/nouveau")
    assert ">Enregistrer le brouillon</button>" in form.text
    saved = browser_like.post(
        f"/courrier/{person.address}/brouillon",
        data={"csrf": hidden(form.text, "csrf"), "a": DUPONT, "cc": "", "objet": subject,
              "message": "Première version", "accuse_remise": "1", "accuse_lecture": "1"},
        files={"pieces": ("CR.pdf", b"%PDF-1.4 brouillon", "application/pdf")})
    assert saved.status_code == 303
    assert "/nouveau?brouillon=" in saved.headers["location"]
    page = browser_like.get(saved.headers["location"])
    assert '<div role="status" class="notice"><p>Brouillon enregistré.</p>' in page.text
    assert field(page.text, "a") == DUPONT and field(page.text, "objet") == subject
    assert "Première version</textarea>" in page.text
    assert 'name="accuse_remise" value="1" checked' in page.text
    assert 'name="accuse_lecture" value="1" checked' in page.text
    kept = re.search(r'name="garder" value="([\d.]+)" checked> Garder CR.pdf', page.text)
    assert kept is not None
    [(flags, draft)] = drafts_in_imap(environment, person)
    assert set(flags.split()) == {b"\\Draft", b"\\Seen"}
    assert draft["Subject"] == subject and draft["To"] == DUPONT
    assert "DSN=1" in draft["X-Mozilla-Draft-Info"]

    # saved again: one draft, the new version, the attachment kept
    again = browser_like.post(
        f"/courrier/{person.address}/brouillon",
        data={"csrf": hidden(page.text, "csrf"), "brouillon": hidden(page.text, "brouillon"),
              "garder": kept.group(1), "a": DUPONT, "objet": subject,
              "message": "Seconde version"})
    assert again.status_code == 303
    [(_, draft)] = drafts_in_imap(environment, person)
    assert draft.get_body(("plain",)).get_content().strip() == "Seconde version"  # type: ignore[union-attr]
    assert [a.get_filename() for a in draft.iter_attachments()] == ["CR.pdf"]
    assert "DSN=0" in draft["X-Mozilla-Draft-Info"]

    # the Drafts list shows it; opening it offers to resume it
    folders = browser_like.get(f"/courrier/{person.address}/dossiers/"
                               + again.headers["location"].split("=")[1].split(":")[0])
    link = re.search(r'<a href="([^"]+/messages/\d+)">', folders.text)
    assert link is not None and subject in folders.text
    shown = browser_like.get(link.group(1))
    assert ">Reprendre le brouillon</a>" in shown.text and ">Répondre</a>" not in shown.text

    page = browser_like.get(again.headers["location"])
    kept = re.search(r'name="garder" value="([\d.]+)" checked> Garder CR.pdf', page.text)
    assert kept is not None
    sent = browser_like.post(
        f"/courrier/{person.address}/envoyer",
        data={"csrf": hidden(page.text, "csrf"), "brouillon": hidden(page.text, "brouillon"),
              "garder": kept.group(1), "a": DUPONT, "objet": subject,
              "message": "Seconde version"})
    assert sent.status_code == 303
    assert drafts_in_imap(environment, person) == []
    arrived = environment.wait_message(DUPONT, subject)
    assert arrived
    assert browser_like.get(again.headers["location"]).status_code == 404


def test_a_deleted_drafts_folder_is_made_again_with_its_use(
        environment: RunningEnvironment, person: Account, browser_like: httpx.Client) -> None:
    store = environment.service(HOSPITAL).store
    environment.runner.call(store.folders.delete(person.address, "Drafts"))
    form = browser_like.get(f"/courrier/{person.address}/nouveau")
    saved = browser_like.post(f"/courrier/{person.address}/brouillon",
                              data={"csrf": hidden(form.text, "csrf"), "a": "",
                                    "objet": "Sans destinataire", "message": "à finir"})
    assert saved.status_code == 303
    [(flags, draft)] = drafts_in_imap(environment, person)
    assert b"\\Draft" in flags.split() and draft["Subject"] == "Sans destinataire"
    made = environment.runner.call(store.folders.get(person.address, "Drafts"))
    assert made is not None and made.special_use == "\\Drafts"


def test_a_draft_without_the_sessions_token_is_not_kept(
        environment: RunningEnvironment, person: Account, browser_like: httpx.Client) -> None:
    response = browser_like.post(f"/courrier/{person.address}/brouillon",
                                 data={"csrf": "forged", "a": DUPONT, "objet": "x",
                                       "message": "x"})
    assert response.status_code == 400
    assert drafts_in_imap(environment, person) == []


def test_a_forged_draft_reference_never_removes_another_message(
        environment: RunningEnvironment, person: Account, browser_like: httpx.Client) -> None:
    """Saving or sending names the draft it replaces (``brouillon``): a name pointing at
    a message that is no draft (an INBOX message) is ignored, never expunged."""
    store = environment.service(HOSPITAL).store
    body = (b"From: a@ch-xyz.mssante.fr\r\nSubject: Garder\r\n"
            b"Message-ID: <keep-" + uuid.uuid4().hex.encode() + b"@ch-xyz.mssante.fr>\r\n\r\nx\r\n")
    [uid] = environment.runner.call(store.folders.bulk_append(
        person.address, "INBOX", [(body, "", 1_700_000_000.0)]))
    inbox = environment.runner.call(store.folders.get(person.address, "INBOX"))
    assert inbox is not None
    form = browser_like.get(f"/courrier/{person.address}/nouveau")
    for path in ("brouillon", "envoyer"):
        response = browser_like.post(f"/courrier/{person.address}/{path}", data={
            "csrf": hidden(form.text, "csrf"), "brouillon": f"{inbox.id}:{uid}",
            "a": DUPONT, "objet": f"Forgé {path}", "message": "x"})
        assert response.status_code == 303
    assert environment.runner.call(store.folders.flags(inbox.id, [uid])) == {uid: ""}
    assert browser_like.get(f"/courrier/{person.address}/nouveau",
                            params={"brouillon": f"{inbox.id}:{uid}"}).status_code == 404


def professional_writes_to_the_patient(environment: RunningEnvironment) -> str:
    """A message of Dr Dupont opening a conversation, as the patients' operator records
    it; returns its subject."""
    subject = f"Vos résultats {uuid.uuid4().hex[:6]}"
    message_id = f"<{uuid.uuid4().hex}@ch-xyz.mssante.fr>"
    body = (f"From: Dr Dupont <{DUPONT}>\r\nTo: {PATIENT}\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\n\r\nBonjour.\r\n").encode()
    opened = professional_message(envelope_from=DUPONT, from_addresses=[DUPONT],
                                  message_id=message_id, in_reply_to=None, references=None,
                                  subject=subject, mss_mes=None, reply_to=[])
    environment.runner.call(environment.service(PATIENTS).store.accept_message(
        body, envelope_from=DUPONT, local=[PATIENT], remote=[],
        summary=MessageSummary(message_id=message_id, subject=subject,
                               from_header=f"Dr Dupont <{DUPONT}>", date_header=None),
        patient=opened))
    return subject


def test_a_patient_keeps_only_a_reply_in_an_open_conversation(
        environment: RunningEnvironment) -> None:
    subject = professional_writes_to_the_patient(environment)
    with client_for(environment, PATIENT, account(environment, PATIENT)["password"],
                    PATIENTS) as patient:
        inbox = patient.get("/courrier/choisir", params={"boite": PATIENT}).headers["location"]
        listed = patient.get(inbox).text
        link = re.search(r'<a href="(/courrier/[^"]+/dossiers/(\d+)/messages/(\d+))">\s*'
                         r'<span class="subject" dir="auto">(?:<span[^>]*>Non lu : </span>)?'
                         + re.escape(subject), listed)
        assert link is not None
        reply = patient.get(f"/courrier/{PATIENT}/nouveau",
                            params={"repondre": f"{link.group(2)}:{link.group(3)}"})
        assert reply.status_code == 200 and ">Enregistrer le brouillon</button>" in reply.text
        csrf = hidden(reply.text, "csrf")
        # a new conversation: refused, nothing kept
        started = patient.post(f"/courrier/{PATIENT}/brouillon",
                               data={"csrf": csrf, "a": DUPONT, "objet": "Nouvelle demande",
                                     "message": "x"})
        assert started.status_code == 403
        assert "ne peut que répondre" in started.text
        drafts = environment.runner.call(
            environment.service(PATIENTS).store.list_messages(PATIENT, "Drafts"))
        assert not [m for m in drafts if m.subject == "Nouvelle demande"]
        # the reply: kept, and resumed
        kept = patient.post(f"/courrier/{PATIENT}/brouillon",
                            data={"csrf": csrf, "a": DUPONT, "objet": f"Re: {subject}",
                                  "message": "Merci docteur.",
                                  "in_reply_to": hidden(reply.text, "in_reply_to"),
                                  "references": hidden(reply.text, "references")})
        assert kept.status_code == 303
        resumed = patient.get(kept.headers["location"])
        assert resumed.status_code == 200 and "Merci docteur.</textarea>" in resumed.text
        assert hidden(resumed.text, "in_reply_to") == hidden(reply.text, "in_reply_to")

