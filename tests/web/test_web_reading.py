"""Reading in the webmail over real HTTPS (httpx): the message list, a message shown
with its HTML sanitised and its remote content blocked, its attachment downloaded, and
the ``\\Seen`` flag set as an IMAP FETCH sets it, which an IMAP client in IDLE hears
at once."""

from __future__ import annotations

import re
import socket
import ssl
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from mssante.pki.tls import client_context
from mssante.store.models import MessageSummary
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, fresh_person
from tests.web.test_web_login import account, log_in, web

DUPONT = "dupont@ch-xyz.mssante.fr"


@pytest.fixture
def dupont(environment: RunningEnvironment) -> Iterator[httpx.Client]:
    base = web(environment)
    with httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                      timeout=30, headers={"Origin": base}) as client:
        assert log_in(client, DUPONT, account(environment, DUPONT)["password"]
                      ).status_code == 303
        yield client


def deliver(environment: RunningEnvironment, subject: str) -> None:
    """A message with HTML (a script, an event handler, a remote image) and a PDF
    attachment, delivered to Dr Dupont's INBOX by the store's acceptance."""
    message = EmailMessage()
    message["From"] = "Dr Martin <jean.martin@medecin.mssante.fr>"
    message["To"] = DUPONT
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@medecin.mssante.fr>"
    message.set_content("Texte")
    message.add_alternative(
        '<p onclick="steal()">Bonjour <b>docteur</b></p><script>alert(1)</script>'
        '<img src="https://tracker.example/pixel.gif"><a href="javascript:alert(2)">x</a>',
        subtype="html")
    message.add_attachment(b"%PDF-1.4 resultat", maintype="application", subtype="pdf",
                           filename="résultat.pdf")
    store = environment.service(HOSPITAL).store
    summary = MessageSummary(message_id=message["Message-ID"], subject=subject,
                             from_header=message["From"], date_header=None)
    environment.runner.call(store.accept_message(
        message.as_bytes(), envelope_from="jean.martin@medecin.mssante.fr", local=[DUPONT],
        remote=[], summary=summary))


def inbox_url(client: httpx.Client) -> str:
    response = client.get("/courrier/choisir", params={"boite": DUPONT})
    assert response.status_code == 303
    return str(response.headers["location"])


def message_url(client: httpx.Client, subject: str) -> str:
    page = client.get(inbox_url(client))
    found = re.search(r'<a href="([^"]+/messages/\d+)">\s*<span class="subject" dir="auto">'
                      r'(?:<span class="visually-hidden">Non lu : </span>)?'
                      + re.escape(subject), page.text)
    assert found is not None, "the message is not listed"
    return found.group(1)


def test_a_message_is_shown_sanitised_with_its_attachment(environment: RunningEnvironment,
                                                          dupont: httpx.Client) -> None:
    subject = f"Bilan {uuid.uuid4().hex[:6]}"
    deliver(environment, subject)
    page = dupont.get(message_url(dupont, subject))
    assert page.status_code == 200
    body = page.text.split('<div class="message-body">', 1)[1].split("</div>", 1)[0]
    assert "<b>docteur</b>" in body
    for hostile in ("<script", "onclick", "javascript:", "tracker.example"):
        assert hostile not in page.text.replace('<script src="/static/app.js"', "")
    assert "contenus distants ont été bloqués" in page.text
    link = re.search(r'<a href="([^"]+/pieces/[\d.]+)" download>résultat.pdf</a>', page.text)
    assert link is not None
    download = dupont.get(link.group(1))
    assert download.content == b"%PDF-1.4 resultat"
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9sultat.pdf" in download.headers["content-disposition"]
    # the view and the download, each in the audit trail before it was served
    uid = link.group(1).split("/")[6]
    store = environment.service(HOSPITAL).store
    trail = [e for e in environment.runner.call(store.audit_entries(mailbox=DUPONT,
                                                                    limit=100_000))
             if e.event.action in ("read", "download")
             and e.event.detail.split(":")[0] in (f"INBOX uid {uid}",
                                                  f"INBOX uid {uid} part 2")
             and e.event.source.startswith("HTTPS")]
    assert [(e.event.action, e.event.actor) for e in trail] == [
        ("read", DUPONT), ("download", DUPONT)]
    assert "résultat.pdf" in trail[1].event.detail


def _imap_idle(environment: RunningEnvironment) -> ssl.SSLSocket:
    op = environment.operator(HOSPITAL)["imaps"]
    context = ssl.create_default_context(cafile=environment.ca_file)
    sock = context.wrap_socket(socket.create_connection((op["host"], op["port"]), timeout=30),
                               server_hostname=op["host"])
    password = account(environment, DUPONT)["password"]
    sock.sendall(f'a LOGIN {DUPONT} "{password}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    seen = b""
    while b"+ idling" not in seen:
        chunk = sock.recv(65536)
        assert chunk, "the IMAP server closed the connection"
        seen += chunk
    return sock


def test_reading_in_the_web_marks_seen_and_imap_hears_it(environment: RunningEnvironment,
                                                         dupont: httpx.Client) -> None:
    subject = f"Lu {uuid.uuid4().hex[:6]}"
    deliver(environment, subject)
    url = message_url(dupont, subject)
    uid = int(url.rsplit("/", 1)[1])
    with _imap_idle(environment) as imap:
        imap.sendall(b"")  # idling
        listed = dupont.get(inbox_url(dupont)).text
        assert "Non lu : </span>" + subject in listed
        assert dupont.get(url).status_code == 200
        pushed = b""
        while not re.search(rb"FETCH \([^)]*UID %d[^)]*\)|FETCH \(FLAGS \(\\Seen\) UID %d"
                            % (uid, uid), pushed):
            chunk = imap.recv(65536)
            assert chunk, "the IMAP server closed the connection"
            pushed += chunk
        assert b"\\Seen" in pushed
        imap.sendall(b"DONE\r\nd LOGOUT\r\n")
    listed = dupont.get(inbox_url(dupont)).text
    assert "Non lu : </span>" + subject not in listed


def test_a_long_folder_is_paged_newest_first(environment: RunningEnvironment) -> None:
    person = fresh_person(environment)
    store = environment.service(HOSPITAL).store
    items = [(f"From: a@ch-xyz.mssante.fr\r\nSubject: Message {i:03d}\r\n"
              f"Message-ID: <{i}.{uuid.uuid4().hex}@ch-xyz.mssante.fr>\r\n\r\nx\r\n".encode(),
              "", 1_700_000_000.0 + i) for i in range(120)]
    environment.runner.call(store.folders.bulk_append(person.address, "INBOX", items))
    base = web(environment)
    with httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                      timeout=30, headers={"Origin": base}) as client:
        assert log_in(client, person.login, person.password).status_code == 303
        inbox = client.get("/courrier").headers["location"]

        def subjects(page: int, query: str = "") -> tuple[list[str], str]:
            text = client.get(inbox, params={"page": page, "q": query}).text
            shown = re.findall(r'class="subject"[^>]*>(?:<span[^>]*>Non lu : </span>)?'
                               r"Message (\d{3})", text)
            where = re.search(r"Page \d+ sur \d+", text)
            return shown, where.group() if where else ""

        first, where = subjects(1)
        assert first == [f"{i:03d}" for i in range(119, 69, -1)] and where == "Page 1 sur 3"
        last, where = subjects(3)
        assert last == [f"{i:03d}" for i in range(19, -1, -1)] and where == "Page 3 sur 3"
        assert subjects(99) == (last, "Page 3 sur 3")  # past the end: the last page
        found, where = subjects(1, "Message 007")
        assert found == ["007"] and where == ""
