"""Acting on messages in the webmail over real HTTPS (httpx): marking important and
unread, moving, deleting to the Trash then for good after a confirmation, from a
message or from the list; an IMAP session selected on the folder hears each change at
once, since the web uses the store's own IMAP operations. A post without the session's
CSRF token, and a read-only delegate's forged post, change nothing (403)."""

from __future__ import annotations

import contextlib
import imaplib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mssante.pki.tls import client_context
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, Account, fresh_org, fresh_person, grant
from tests.imap.conftest import login as imap_login
from tests.web.test_web_login import hidden, log_in, web


@contextlib.contextmanager
def client_for(environment: RunningEnvironment, who: Account) -> Iterator[httpx.Client]:
    base = web(environment)
    with httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                      timeout=30, headers={"Origin": base}) as client:
        assert log_in(client, who.login, who.password).status_code == 303
        yield client


@pytest.fixture
def person(environment: RunningEnvironment) -> Account:
    return fresh_person(environment)


@pytest.fixture
def web_client(environment: RunningEnvironment, person: Account) -> Iterator[httpx.Client]:
    with client_for(environment, person) as client:
        yield client


def put(environment: RunningEnvironment, address: str, *subjects: str) -> None:
    """Messages in the mailbox's INBOX, unread."""
    items = [(f"From: a@ch-xyz.mssante.fr\r\nSubject: {s}\r\n"
              f"Message-ID: <{uuid.uuid4().hex}@ch-xyz.mssante.fr>\r\n\r\nx\r\n".encode(),
              "", 1_700_000_000.0 + i) for i, s in enumerate(subjects)]
    environment.runner.call(environment.service(HOSPITAL).store.folders.bulk_append(
        address, "INBOX", items))


def folder_url(client: httpx.Client, address: str, label: str) -> str:
    page = client.get("/courrier/choisir", params={"boite": address})
    listed = client.get(page.headers["location"]).text
    found = re.search(r'<a href="(/courrier/[^"]+/dossiers/\d+)"[^>]*>' + re.escape(label)
                      + "</a>", listed)
    assert found is not None, label
    return found.group(1)


def listed(client: httpx.Client, url: str) -> dict[str, int]:
    """Subject -> UID of the messages of a folder's list."""
    page = client.get(url).text
    return {m.group(2): int(m.group(1)) for m in re.finditer(
        r'/messages/(\d+)">\s*<span class="subject" dir="auto">'
        r'(?:<span class="visually-hidden">Non lu : </span>)?([^<]+?)(?= <span|</span>)', page)}


def act(client: httpx.Client, url: str, uids: list[int], action: str,
        **extra: str) -> httpx.Response:
    page = client.get(url)
    return client.post(f"{url}/actions", data={"csrf": hidden(page.text, "csrf"),
                                               "uid": [str(u) for u in uids],
                                               "action": action, **extra})


def status_after(client: httpx.Client, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"]).text
    found = re.search(r'<div role="status" class="notice"><p>([^<]*)</p>', page)
    assert found is not None
    return found.group(1)


def imap_flags(imap: imaplib.IMAP4, uid: int) -> set[bytes]:
    status, data = imap.uid("FETCH", str(uid), "(FLAGS)")
    # imaplib hands back the FETCH responses the server pushed since, oldest first
    assert status == "OK" and data and isinstance(data[-1], bytes), data
    flags = re.search(rb"FLAGS \(([^)]*)\)", data[-1])
    assert flags is not None
    return set(flags.group(1).split())


def test_marking_and_moving_are_heard_by_a_selected_imap_session(
        environment: RunningEnvironment, person: Account, web_client: httpx.Client) -> None:
    put(environment, person.address, "Compte rendu", "Ordonnance")
    inbox = folder_url(web_client, person.address, "Boîte de réception")
    uids = listed(web_client, inbox)
    report = uids["Compte rendu"]
    imap = imap_login(environment, person)
    try:
        imap.select("INBOX")
        message = web_client.get(f"{inbox}/messages/{report}")
        assert ">Marquer comme important</button>" in message.text
        assert ">Supprimer</button>" in message.text and 'for="vers">Déplacer vers' in message.text
        said = status_after(web_client, act(web_client, inbox, [report], "important"))
        assert said == "Message marqué comme important"
        imap.noop()
        # \\Recent: this session is the first to see the message (RFC 3501 §2.3.2)
        assert imap_flags(imap, report) == {b"\\Recent", b"\\Flagged", b"\\Seen"}
        assert "★" in web_client.get(inbox).text
        message = web_client.get(f"{inbox}/messages/{report}")
        assert ">Retirer l'important</button>" in message.text
        said = status_after(web_client, act(web_client, inbox, [report], "non_lu"))
        assert said == "Message marqué comme non lu"
        assert imap_flags(imap, report) == {b"\\Recent", b"\\Flagged"}
        said = status_after(web_client, act(web_client, inbox, [report], "non_important"))
        assert said == "Important retiré du message"
        assert imap_flags(imap, report) == {b"\\Recent"}

        archive = folder_url(web_client, person.address, "Archives")
        said = status_after(web_client, act(web_client, inbox, [report], "deplacer",
                                            vers=archive.rsplit("/", 1)[1]))
        assert said == "Message déplacé vers Archives"
        imap.noop()  # the selected session is told at its next command
        assert imap.response("EXPUNGE")[1] == [b"1"]
        assert list(listed(web_client, inbox)) == ["Ordonnance"]
        assert list(listed(web_client, archive)) == ["Compte rendu"]
        status, data = imap.status("Archive", "(MESSAGES)")
        assert status == "OK" and b"MESSAGES 1" in data[0]  # type: ignore[operator]
    finally:
        imap.logout()


def test_several_messages_ticked_in_the_list(environment: RunningEnvironment,
                                             person: Account,
                                             web_client: httpx.Client) -> None:
    put(environment, person.address, "Un", "Deux", "Trois")
    inbox = folder_url(web_client, person.address, "Boîte de réception")
    page = web_client.get(inbox).text
    assert 'aria-label="Sélectionner : Deux"' in page and "<legend>Messages sélectionnés" in page
    uids = listed(web_client, inbox)
    said = status_after(web_client, act(web_client, inbox, [uids["Un"], uids["Trois"]], "lu"))
    assert said == "2 messages marqués comme lus"
    assert [s for s in ("Un", "Deux", "Trois") if f"Non lu : </span>{s}" in
            web_client.get(inbox).text] == ["Deux"]
    assert status_after(web_client, act(web_client, inbox, [], "lu")) == \
        "Aucun message sélectionné."
    assert status_after(web_client, act(web_client, inbox, [uids["Un"]], "deplacer",
                                        vers="")) == "Choisissez le dossier vers lequel déplacer."


def test_deleting_goes_to_the_trash_then_for_good_after_a_confirmation(
        environment: RunningEnvironment, person: Account, web_client: httpx.Client) -> None:
    put(environment, person.address, "Publicité", "Garder")
    inbox = folder_url(web_client, person.address, "Boîte de réception")
    uid = listed(web_client, inbox)["Publicité"]
    said = status_after(web_client, act(web_client, inbox, [uid], "supprimer"))
    assert said == "Message placé dans la corbeille"
    trash = folder_url(web_client, person.address, "Corbeille")
    in_trash = listed(web_client, trash)
    assert list(in_trash) == ["Publicité"]
    assert ">Supprimer définitivement</button>" in web_client.get(trash).text

    asked = act(web_client, trash, [in_trash["Publicité"]], "supprimer")
    assert asked.status_code == 200
    assert "<h1>Supprimer définitivement ?</h1>" in asked.text and "Publicité" in asked.text
    assert list(listed(web_client, trash)) == ["Publicité"]  # nothing gone yet
    said = status_after(web_client, web_client.post(f"{trash}/actions", data={
        "csrf": hidden(asked.text, "csrf"), "uid": str(in_trash["Publicité"]),
        "action": "supprimer", "confirmer": "1"}))
    assert said == "Message supprimé définitivement"
    assert listed(web_client, trash) == {}
    imap = imap_login(environment, person)
    try:
        status, data = imap.status("Trash", "(MESSAGES)")
        assert b"MESSAGES 0" in data[0]  # type: ignore[operator]
        imap.select("INBOX", readonly=True)
        status, found = imap.uid("SEARCH", "ALL")
        assert status == "OK" and len(found[0].split()) == 1  # "Garder" stays
    finally:
        imap.logout()


def test_a_forged_action_without_the_csrf_token_changes_nothing(
        environment: RunningEnvironment, person: Account, web_client: httpx.Client) -> None:
    put(environment, person.address, "Intact")
    inbox = folder_url(web_client, person.address, "Boîte de réception")
    uid = listed(web_client, inbox)["Intact"]
    for forged in ({}, {"csrf": "forged"}):
        response = web_client.post(f"{inbox}/actions",
                                   data={"uid": str(uid), "action": "supprimer", **forged})
        assert response.status_code == 403
    assert list(listed(web_client, inbox)) == ["Intact"]


def test_a_read_only_delegate_cannot_delete(environment: RunningEnvironment,
                                            person: Account) -> None:
    service = fresh_org(environment, person)
    reader = fresh_person(environment)
    grant(environment, service, reader, "r")
    put(environment, service, "Dossier patient")
    with client_for(environment, reader) as client:
        inbox = folder_url(client, service, "Boîte de réception")
        uid = listed(client, inbox)["Dossier patient"]
        page = client.get(inbox).text
        message = client.get(f"{inbox}/messages/{uid}").text
        for shown in (page, message):
            assert "Supprimer" not in shown and "Déplacer" not in shown
            assert "Marquer comme" not in shown and 'name="uid"' not in shown
        for action in ("supprimer", "non_lu", "important"):
            forged = client.post(f"{inbox}/actions", data={
                "csrf": hidden(page, "csrf"), "uid": str(uid), "action": action})
            assert forged.status_code == 403
            assert "Vous ne pouvez que lire cette boîte" in forged.text
        assert list(listed(client, inbox)) == ["Dossier patient"]
