"""The operator's IMAP server driven by imaplib (and raw sockets) over loopback.

Each test creates its own people and mailboxes (tests/imap/conftest.py), so that the
suite's shared environment is left as it was found. What imaplib hides (IDLE, the
exact order of a server's last words, literals it would rewrite) is spoken on a raw
socket. The cross-process test runs two IMAP servers of its own on one PostgreSQL
schema and skips when PostgreSQL cannot be reached (fails in CI, tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import socket
import ssl
import time
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from bench.imap_server import NoTrustSpace

from mssante.auth.passwords import hash_password
from mssante.config import Listener, OperatorConfig, OperatorSettings, TrustSettings
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.imap.server import start_imap
from mssante.operator import runtime
from mssante.operator.runtime import OperatorRuntime
from mssante.store import Store, open_store
from tests.conftest import POSTGRES_URL, postgres_schema
from tests.e2e.mail import message, submission, unique
from tests.imap.conftest import (
    HOSPITAL,
    Account,
    connect,
    fresh_org,
    fresh_person,
    grant,
    login,
    revoke,
    tls_context,
)

NOTIFY_TIMEOUT = 10.0  # seconds an update may take to reach another session


# --- helpers ---------------------------------------------------------------------------


def mail(subject: str, body: str = "Bonjour,\r\n") -> bytes:
    return (f"From: test@{HOSPITAL}\r\nTo: test@{HOSPITAL}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{HOSPITAL}>\r\n\r\n{body}").encode()


def ok(result: tuple[str, list[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return data


def list_names(client: imaplib.IMAP4) -> set[str]:
    names = set()
    for line in ok(client.list()):
        assert isinstance(line, bytes), line
        names.add(line.rpartition(b' "/" ')[2].decode().strip('"'))
    return names


def status(client: imaplib.IMAP4, name: str, items: str) -> dict[str, int]:
    line = ok(client.status(name, f"({items})"))[0]
    inside = line[line.index(b"(") + 1:line.rindex(b")")].split()
    return {inside[i].decode(): int(inside[i + 1]) for i in range(0, len(inside), 2)}


def appended_uid(data: list[Any]) -> tuple[int, int]:
    """(UIDVALIDITY, UID) of an APPEND's APPENDUID code (RFC 4315 §3)."""
    found = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[-1])
    assert found is not None, data
    return int(found.group(1)), int(found.group(2))


def fetched(data: list[Any]) -> tuple[bytes, bytes | None]:
    """The text of one FETCH response and its (first) literal."""
    for part in data:
        if isinstance(part, tuple):
            return part[0], part[1]
        if isinstance(part, bytes) and b"(" in part:
            return part, None
    raise AssertionError(f"no FETCH response in {data!r}")


def flags_of(client: imaplib.IMAP4, uid: int) -> set[str]:
    text, _ = fetched(ok(client.uid("FETCH", str(uid), "(FLAGS)")))
    found = re.search(rb"FLAGS \(([^)]*)\)", text)
    assert found is not None, text
    return set(found.group(1).decode().split())


def search_subject(client: imaplib.IMAP4, subject: str) -> list[int]:
    data = ok(client.uid("SEARCH", "SUBJECT", f'"{subject}"'))
    return [int(u) for u in data[0].split()]


def wait_for_subject(client: imaplib.IMAP4, folder: str, subject: str,
                     timeout: float = 20.0) -> int:
    """The UID of the message with ``subject`` in ``folder`` once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        ok(client.select(folder, readonly=True))
        found = search_subject(client, subject)
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"{subject!r} did not reach {folder}"
        time.sleep(0.2)


def idle_start(client: imaplib.IMAP4, tag: bytes = b"IDLE1") -> None:
    client.send(tag + b" IDLE\r\n")
    line = client.readline()
    assert line.startswith(b"+ "), line


def idle_wait(client: imaplib.IMAP4, kind: bytes, timeout: float = NOTIFY_TIMEOUT) -> bytes:
    """The next untagged response of ``kind`` pushed to an idling client."""
    client.sock.settimeout(timeout)
    try:
        while True:
            line = client.readline().rstrip(b"\r\n")
            if line.startswith(b"* ") and line.endswith(b" " + kind):
                return line
    finally:
        client.sock.settimeout(30)


def idle_done(client: imaplib.IMAP4, tag: bytes = b"IDLE1") -> None:
    client.send(b"DONE\r\n")
    while True:
        line = client.readline()
        if line.startswith(tag + b" "):
            assert line.startswith(tag + b" OK"), line
            return


def untagged(client: imaplib.IMAP4, kind: str) -> list[bytes]:
    """Take the untagged responses of ``kind`` imaplib kept."""
    return [d for d in client.untagged_responses.pop(kind, []) if d is not None]


class Raw:
    """A raw connection, for what imaplib hides or rewrites: literals sent as they
    are, the server's last words before it closes."""

    def __init__(self, env: Any, *, port: str = "imaps", timeout: float = 10.0) -> None:
        endpoint = env.operator(HOSPITAL)[port]
        sock = socket.create_connection((endpoint["host"], endpoint["port"]), timeout=timeout)
        if port == "imaps":
            sock = tls_context(env).wrap_socket(sock, server_hostname=endpoint["host"])
        self.sock = sock
        self.file = sock.makefile("rb")
        self.greeting = self.line()
        assert self.greeting.startswith(b"* OK"), self.greeting

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def starttls(self, env: Any) -> None:
        self.file.close()
        host = env.operator(HOSPITAL)["imap"]["host"]
        self.sock = tls_context(env).wrap_socket(self.sock, server_hostname=host)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline(1 << 20)

    def until(self, tag: bytes) -> list[bytes]:
        """The lines up to the one tagged ``tag`` (included), without CRLFs."""
        lines = []
        while True:
            got = self.line()
            assert got, f"the server closed before answering {tag!r}: {lines!r}"
            lines.append(got.rstrip(b"\r\n"))
            if got.startswith(tag + b" "):
                return lines

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def rest(self) -> list[bytes]:
        """Every line until the server closes the connection (which must happen)."""
        lines = []
        try:
            while got := self.line():
                lines.append(got.rstrip(b"\r\n"))
        except (ConnectionError, ssl.SSLError):
            pass  # the close may come as a reset after the last line
        return lines

    def login(self, account: Account) -> None:
        reply = self.command(b"L1", f'LOGIN "{account.login}" "{account.password}"'.encode())
        assert reply[-1].startswith(b"L1 OK"), reply

    def append(self, tag: bytes, folder: bytes, raw: bytes) -> list[bytes]:
        self.send(tag + b" APPEND " + folder + b" {%d}\r\n" % len(raw))
        ready = self.line()
        assert ready.startswith(b"+"), ready
        self.send(raw + b"\r\n")
        return self.until(tag)


# --- 1. authentication over TLS only -----------------------------------------------------


def test_login_and_authenticate_need_tls(environment: Any) -> None:
    person = fresh_person(environment)
    endpoint = environment.operator(HOSPITAL)["imap"]
    client = imaplib.IMAP4(endpoint["host"], endpoint["port"], timeout=30)
    try:
        assert {"STARTTLS", "LOGINDISABLED"} <= set(client.capabilities)
        assert "AUTH=PLAIN" not in client.capabilities
        with pytest.raises(imaplib.IMAP4.error, match=r"\[PRIVACYREQUIRED\]"):
            client.login(person.login, person.password)
        plain = f"\0{person.login}\0{person.password}".encode()
        with pytest.raises(imaplib.IMAP4.error, match=r"\[PRIVACYREQUIRED\]"):
            client.authenticate("PLAIN", lambda _challenge: plain)
        client.starttls(tls_context(environment))
        assert "LOGINDISABLED" not in client.capabilities
        assert "AUTH=PLAIN" in client.capabilities
        assert client.login(person.login, person.password)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def test_authenticate_plain_over_tls(environment: Any) -> None:
    person = fresh_person(environment)
    client = connect(environment)
    try:
        plain = f"\0{person.login}\0{person.password}".encode()
        assert client.authenticate("PLAIN", lambda _challenge: plain)[0] == "OK"
    finally:
        client.logout()


def test_starttls_injection(environment: Any) -> None:
    """What a client sends in plaintext after STARTTLS, before the handshake, must not
    run as if it came over TLS (CVE-2011-0411): here a LOGIN an attacker slipped in."""
    person = fresh_person(environment)
    raw = Raw(environment, port="imap")
    try:
        raw.send(b"a1 STARTTLS\r\n" +
                 f'a2 LOGIN "{person.login}" "{person.password}"\r\n'.encode())
        assert raw.line().startswith(b"a1 OK"), "STARTTLS refused"
        lines: list[bytes] = []
        try:  # the server may refuse the handshake or drop the plaintext: both are safe
            raw.starttls(environment)
            raw.send(b"a3 SELECT INBOX\r\n")
            while got := raw.line():
                lines.append(got)
                if got.startswith(b"a3 "):
                    break
        except (ConnectionError, ssl.SSLError):
            pass
        assert not any(line.startswith(b"a2 ") for line in lines), lines
        assert not any(line.startswith(b"a3 OK") for line in lines), lines
    finally:
        raw.close()


def test_third_authentication_failure_closes_the_connection(environment: Any) -> None:
    person = fresh_person(environment)
    raw = Raw(environment)
    try:
        for n in (1, 2):
            tag = b"a%d" % n
            reply = raw.command(tag, f'LOGIN "{person.login}" "wrong"'.encode())
            assert reply[-1].startswith(tag + b" NO [AUTHENTICATIONFAILED]"), reply
        plain = f"\0{person.login}\0still wrong".encode()
        reply = raw.command(b"a3", b"AUTHENTICATE PLAIN " + base64.b64encode(plain))
        assert reply[-1].startswith(b"a3 NO [AUTHENTICATIONFAILED]"), reply
        rest = raw.rest()
        assert rest and rest[0].startswith(b"* BYE"), rest
    finally:
        raw.close()


# --- 2. AUTHENTICATE EXTERNAL -----------------------------------------------------------


def external(env: Any, cert: tuple[str, str]) -> imaplib.IMAP4:
    client = connect(env, cert=cert)
    assert "AUTH=EXTERNAL" in client.capabilities
    return client


def test_external_with_the_application_certificate(environment: Any) -> None:
    app = environment.description["applications"][0]
    folder = environment.runner.call(
        environment.service(HOSPITAL).store.folders.get(app["mailbox"], "INBOX"))
    assert folder is not None
    client = external(environment, (app["cert_file"], app["key_file"]))
    try:
        assert client.authenticate("EXTERNAL", lambda _challenge: b"")[0] == "OK"
        assert status(client, "INBOX", "UIDVALIDITY") == {"UIDVALIDITY": folder.uidvalidity}
        ok(client.select("INBOX", readonly=True))
        assert int(client.untagged_responses["UIDVALIDITY"][0]) == folder.uidvalidity
        assert not any(name.startswith("Shared/") for name in list_names(client))
        assert ok(client.namespace())[0].startswith(b'(("" "/"))')
    finally:
        client.logout()


def test_external_with_a_card_certificate(environment: Any, tmp_path: Path) -> None:
    person = fresh_person(environment)
    store = environment.service(HOSPITAL).store
    stored = environment.runner.call(store.get_person(person.login))
    assert stored is not None and stored.rpps
    card = environment.env.trust_space.pki.issue_person(
        f"Dr {stored.rpps}", given_name="Test", surname="Carte", id_nat_ps="8" + stored.rpps,
        out_dir=tmp_path, name="card")
    client = external(environment, (str(card.cert_file), str(card.key_file)))
    try:
        assert client.authenticate("EXTERNAL", lambda _challenge: b"")[0] == "OK"
        uidvalidity, uid = appended_uid(ok(client.append("INBOX", None, None, mail("carte"))))
        inbox = environment.runner.call(store.folders.get(person.address, "INBOX"))
        assert (inbox.uidvalidity, inbox.uidnext) == (uidvalidity, uid + 1)
    finally:
        client.logout()
    # an authorisation identity (RFC 4422 Appendix A) must name the card's holder
    for authzid, accepted in ((person.login, True), ("dupont@" + HOSPITAL, False)):
        client = external(environment, (str(card.cert_file), str(card.key_file)))
        response = authzid.encode()
        try:
            if accepted:
                assert client.authenticate("EXTERNAL", lambda _c, r=response: r)[0] == "OK"
            else:
                with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
                    client.authenticate("EXTERNAL", lambda _c, r=response: r)
        finally:
            client.logout()


def test_external_without_an_account_is_refused(environment: Any, tmp_path: Path) -> None:
    pki = environment.env.trust_space.pki
    nobody = pki.issue_person("Dr Personne", given_name="Nobody", surname="Personne",
                              id_nat_ps="8" + str(uuid.uuid4().int)[:11], out_dir=tmp_path,
                              name="nobody")
    unbound = pki.issue_organisation("DPI sans boite", organisation="CLINIQUE SANS BOITE",
                                     out_dir=tmp_path, name="unbound")
    for cert in (nobody, unbound):
        client = external(environment, (str(cert.cert_file), str(cert.key_file)))
        try:
            with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
                client.authenticate("EXTERNAL", lambda _challenge: b"")
        finally:
            client.logout()


def test_external_is_not_offered_without_a_certificate(environment: Any) -> None:
    client = connect(environment)
    try:
        assert "AUTH=EXTERNAL" not in client.capabilities
        with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
            client.authenticate("EXTERNAL", lambda _challenge: b"")
    finally:
        client.logout()


# --- 3. organisational and practice mailboxes --------------------------------------------


@pytest.mark.parametrize("mailbox_type", [MailboxType.ORG, MailboxType.CAB])
def test_shared_mailbox_rights_and_revocation(environment: Any,
                                              mailbox_type: MailboxType) -> None:
    responsible = fresh_person(environment)
    writer, reader = fresh_person(environment), fresh_person(environment)
    address = fresh_org(environment, responsible, mailbox_type=mailbox_type)
    grant(environment, address, writer, "rw")
    grant(environment, address, reader, "r")
    shared = f"Shared/{address}"
    inbox = f"{shared}/INBOX"

    w, r = login(environment, writer), login(environment, reader)
    try:
        for client in (w, r):
            names = list_names(client)
            assert {"INBOX", inbox, f"{shared}/Sent", f"{shared}/Trash"} <= names, names

        # "rw": READ-WRITE, messages added and flagged
        ok(w.select(inbox))
        assert "READ-WRITE" in w.untagged_responses
        _, uid = appended_uid(ok(w.append(inbox, None, None, mail("partage"))))
        ok(w.noop())
        ok(w.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)"))
        assert "\\Flagged" in flags_of(w, uid)

        # "r": READ-ONLY, sees the flags, cannot change them, reading does not set \Seen
        with pytest.raises(imaplib.IMAP4.readonly):
            r.select(inbox)
        r.is_readonly = True  # imaplib refuses to go on after a READ-ONLY SELECT otherwise
        assert "\\Flagged" in flags_of(r, uid)
        typ, data = r.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        assert typ == "NO" and b"[READ-ONLY]" in data[-1], data
        ok(r.uid("FETCH", str(uid), "(BODY[])"))
        assert flags_of(r, uid) == {"\\Flagged"}
        typ, data = r.append(inbox, None, None, mail("refused"))
        assert typ == "NO" and b"[NOPERM]" in data[-1], data

        # revoked while the folder is selected: the next command is refused, the folder closed
        revoke(environment, address, writer)
        typ, data = w.noop()
        assert typ == "NO" and b"[NOPERM]" in data[-1], data
        assert "CLOSED" in w.untagged_responses
        with pytest.raises(imaplib.IMAP4.error, match="authenticated state"):
            w.uid("FETCH", str(uid), "(FLAGS)")
        assert not any(n.startswith(shared) for n in list_names(w))
        assert w.select(inbox)[0] == "NO"

        revoke(environment, address, reader)
        typ, data = r.uid("FETCH", str(uid), "(FLAGS)")
        assert typ == "NO" and b"[NOPERM]" in data[-1], data
        assert not any(n.startswith(shared) for n in list_names(r))
    finally:
        w.logout()
        r.logout()


def test_revocation_reaches_an_idling_session(environment: Any) -> None:
    responsible, person = fresh_person(environment), fresh_person(environment)
    address = fresh_org(environment, responsible)
    grant(environment, address, person, "rw")
    folders = environment.service(HOSPITAL).store.folders
    inbox = environment.runner.call(folders.get(address, "INBOX"))
    client = login(environment, person)
    try:
        ok(client.select(f"Shared/{address}/INBOX"))
        idle_start(client)
        revoke(environment, address, person)
        environment.runner.call(folders.append(inbox.id, mail("after the revocation")))
        assert idle_wait(client, b"Access to the mailbox was withdrawn").startswith(
            b"* OK [CLOSED]")
        idle_done(client)
        with pytest.raises(imaplib.IMAP4.error, match="authenticated state"):
            client.fetch("1", "(FLAGS)")
    finally:
        client.logout()


def test_closing_the_home_mailbox_ends_its_open_sessions(
        environment: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator closes a professional's mailbox: the open session ends at its next
    command (once the mailbox cache has passed: ``MAILBOX_CACHE_SECONDS``, here half a
    second), and a new login no longer has the personal namespace; re-opened,
    everything is back."""
    monkeypatch.setattr(runtime, "MAILBOX_CACHE_SECONDS", 0.5)
    person = fresh_person(environment)
    store = environment.service(HOSPITAL).store
    client = login(environment, person)
    try:
        ok(client.select("INBOX"))
        environment.runner.call(store.set_mailbox_active(person.address, False))
        time.sleep(runtime.MAILBOX_CACHE_SECONDS + 0.2)
        with pytest.raises(imaplib.IMAP4.abort, match=f"The mailbox {person.address} was closed"):
            client.noop()
    finally:
        client.shutdown()
    again = login(environment, person)
    try:
        assert again.select("INBOX")[0] == "NO"
    finally:
        again.logout()
    environment.runner.call(store.set_mailbox_active(person.address, True))
    time.sleep(runtime.MAILBOX_CACHE_SECONDS + 0.2)
    reopened = login(environment, person)
    try:
        ok(reopened.select("INBOX"))
    finally:
        reopened.logout()


def test_staff_sees_only_the_shared_namespace(environment: Any) -> None:
    responsible = fresh_person(environment)
    staff = fresh_person(environment, kind=PersonKind.STAFF, mailbox=False)
    address = fresh_org(environment, responsible)
    grant(environment, address, staff, "rw")
    client = login(environment, staff)
    try:
        assert ok(client.namespace()) == [b'NIL NIL (("Shared/" "/"))']
        names = list_names(client)
        assert f"Shared/{address}/INBOX" in names
        assert all(n == "Shared" or n.startswith("Shared/") for n in names), names
        typ, data = client.select("INBOX")
        assert typ == "NO", data
        ok(client.select(f"Shared/{address}/INBOX"))
        assert "READ-WRITE" in client.untagged_responses
    finally:
        client.logout()


# --- 4. submission keeps a copy in Sent ----------------------------------------------------


def test_submission_stores_a_seen_copy_in_sent(environment: Any) -> None:
    sender, recipient = fresh_person(environment), fresh_person(environment)
    subject = unique("Copie envoyee")
    with submission(environment, HOSPITAL) as smtp:
        smtp.login(sender.login, sender.password)
        smtp.send_message(message(sender.address, recipient.address, subject))
    mine, theirs = login(environment, sender), login(environment, recipient)
    try:
        uid = wait_for_subject(mine, "Sent", subject)
        assert "\\Seen" in flags_of(mine, uid)
        assert search_subject(mine, "nothing like it " + subject) == []
        uid = wait_for_subject(theirs, "INBOX", subject)
        assert "\\Seen" not in flags_of(theirs, uid)
    finally:
        mine.logout()
        theirs.logout()


def test_a_client_saving_its_sent_message_finds_the_copy_kept_at_sending(
        environment: Any) -> None:
    """Mail clients APPEND what they send to Sent; submission kept it there already.
    The same message (Message-ID, Subject, From, Date) is not stored twice; anything
    that differs is."""
    sender, recipient = fresh_person(environment), fresh_person(environment)
    subject = unique("Compte rendu")
    msg = message(sender.address, recipient.address, subject, Date=formatdate())
    with submission(environment, HOSPITAL) as smtp:
        smtp.login(sender.login, sender.password)
        smtp.send_message(msg)
    client = login(environment, sender)
    try:
        kept = wait_for_subject(client, "Sent", subject)
        msg["User-Agent"] = "Thunderbird"  # the client's copy may differ elsewhere
        saved = ok(client.append("Sent", "(\\Seen)", None, msg.as_bytes()))
        assert appended_uid(saved)[1] == kept
        ok(client.select("Sent"))
        assert search_subject(client, subject) == [kept]
        # a copy with the Bcc it hid holds what the kept one lacks: stored
        msg["Bcc"] = f"archives@{HOSPITAL}"
        with_bcc = appended_uid(ok(client.append("Sent", None, None, msg.as_bytes())))[1]
        assert with_bcc > kept
        del msg["Bcc"]
        # Only the Sent folder, and only the same message, are concerned.
        drafts = appended_uid(ok(client.append("Drafts", None, None, msg.as_bytes())))[1]
        ok(client.select("Drafts", readonly=True))
        assert search_subject(client, subject) == [drafts]
        msg.replace_header("Subject", subject + " (corrige)")
        other = appended_uid(ok(client.append("Sent", None, None, msg.as_bytes())))[1]
        assert other > with_bcc
        # A copy the user deleted is not handed back.
        msg.replace_header("Subject", subject)
        ok(client.select("Sent"))
        ok(client.uid("STORE", str(kept), "+FLAGS", "(\\Deleted)"))
        again = appended_uid(ok(client.append("Sent", None, None, msg.as_bytes())))[1]
        assert again > other
        assert search_subject(client, subject) == [kept, with_bcc, other, again]
    finally:
        client.logout()


# --- 5. notifications between sessions -----------------------------------------------------


def test_updates_reach_the_other_sessions(environment: Any) -> None:
    person, other = fresh_person(environment), fresh_person(environment)
    a, b = login(environment, person), login(environment, person)
    try:
        ok(a.select("INBOX"))
        ok(b.select("INBOX"))
        idle_start(a)
        ok(b.append("INBOX", None, None, mail("one")))
        assert idle_wait(a, b"EXISTS") == b"* 1 EXISTS"
        subject = unique("Livraison")
        with submission(environment, HOSPITAL) as smtp:  # a delivery, not an APPEND
            smtp.login(other.login, other.password)
            smtp.send_message(message(other.address, person.address, subject))
        assert idle_wait(a, b"EXISTS", timeout=20) == b"* 2 EXISTS"
        idle_done(a)

        ok(b.noop())
        ok(b.store("1", "+FLAGS", "(\\Flagged)"))
        untagged(a, "FETCH")
        ok(a.noop())
        changes = untagged(a, "FETCH")
        assert len(changes) == 1 and changes[0].startswith(b"1 ("), changes
        assert b"\\Flagged" in changes[0], changes

        ok(b.store("1", "+FLAGS", "(\\Deleted)"))
        ok(b.expunge())
        untagged(a, "EXPUNGE")
        ok(a.noop())
        assert untagged(a, "EXPUNGE") == [b"1"]
        ok(a.select("INBOX"))
        assert a.untagged_responses["EXISTS"] == [b"1"]
    finally:
        a.logout()
        b.logout()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _until_heard(listening: Store, writing: Store, address: str) -> None:
    """Wait until ``listening``'s LISTEN connection hears what ``writing`` commits."""
    folder = await writing.folders.get(address, "Drafts")
    assert folder is not None
    heard = asyncio.Event()
    unsubscribe = listening.folders.hub.subscribe(folder.id, heard.set)
    try:
        for _ in range(50):
            await writing.folders.append(folder.id, mail("probe"))
            try:
                await asyncio.wait_for(heard.wait(), 0.2)
                return
            except TimeoutError:
                continue
        raise AssertionError("the first store never heard of the second one's changes")
    finally:
        unsubscribe()


@pytest.mark.postgres
async def test_idle_hears_another_process_through_postgresql(environment: Any) -> None:
    tls = environment.service(HOSPITAL).config.tls
    name = f"t{uuid.uuid4().hex[:10]}"
    address, password = f"{name}@{HOSPITAL}", uuid.uuid4().hex
    async with postgres_schema() as schema:
        stores = [await open_store(POSTGRES_URL, schema=schema) for _ in range(2)]
        servers = []
        try:
            await stores[0].create_person(address, PersonKind.HEALTH, "Test",
                                          password_hash=hash_password(password))
            await stores[0].create_mailbox(address, MailboxType.PER, rules=Rules(),
                                           owner=address)
            ports = []
            for store in stores:
                port = _free_port()
                config = OperatorConfig(
                    path=Path("operator.toml"), tls=tls,
                    operator=OperatorSettings(domains=[HOSPITAL], hostname=f"imap.{HOSPITAL}",
                                              database_url=POSTGRES_URL),
                    trust=TrustSettings(url="https://127.0.0.1:9"),
                    imaps=Listener("127.0.0.1", port))
                ctx = OperatorRuntime(config.operator, store, NoTrustSpace())
                servers.append(await start_imap(ctx, config))
                ports.append(port)
            await _until_heard(stores[0], stores[1], address)

            def scenario() -> tuple[bytes, list[bytes]]:
                clients = [imaplib.IMAP4_SSL("127.0.0.1", port, timeout=30,
                                             ssl_context=tls_context(environment))
                           for port in ports]
                a, b = clients
                try:
                    for client in clients:
                        ok(client.login(address, password))
                        ok(client.select("INBOX"))
                    idle_start(a)
                    ok(b.append("INBOX", None, None, mail("across processes")))
                    exists = idle_wait(a, b"EXISTS", timeout=5)
                    idle_done(a)
                    ok(b.store("1", "+FLAGS", "(\\Answered)"))
                    deadline = time.monotonic() + 5
                    changes: list[bytes] = []
                    while not changes and time.monotonic() < deadline:
                        ok(a.noop())
                        changes = untagged(a, "FETCH")
                        time.sleep(0.05)
                    return exists, changes
                finally:
                    for client in clients:
                        client.logout()

            exists, changes = await asyncio.to_thread(scenario)
            assert exists == b"* 1 EXISTS"
            assert len(changes) == 1 and b"\\Answered" in changes[0], changes
        finally:
            for server in servers:
                server.close()
                await server.wait_closed()
            for store in stores:
                await store.close()


# --- 6. connection defences ----------------------------------------------------------------


def test_a_line_over_64_kib_ends_the_connection(environment: Any) -> None:
    raw = Raw(environment)
    try:
        raw.send(b"a1 NOOP " + b"x" * (70 * 1024) + b"\r\n")
        rest = raw.rest()
        assert rest and rest[0].startswith(b"* BYE"), rest
    finally:
        raw.close()


def test_a_long_line_inside_a_command_ends_the_connection(environment: Any,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    raw = Raw(environment)
    try:
        raw.send(b"a1 AUTHENTICATE PLAIN\r\n")
        assert raw.line().startswith(b"+"), "no continuation"
        raw.send(b"x" * (70 * 1024) + b"\r\n")
        rest = raw.rest()
        assert rest == [b"* BYE Line too long"], rest
    finally:
        raw.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_an_oversized_literal_is_refused_and_the_connection_goes_on(environment: Any) -> None:
    person = fresh_person(environment)
    raw = Raw(environment)
    try:
        raw.login(person)
        raw.command(b"s1", b"SELECT INBOX")
        raw.send(b"a1 SEARCH TEXT {100000}\r\n")
        reply = raw.line()
        assert reply.startswith(b"a1 BAD"), reply  # and no "+": the literal is not sent
        reply = raw.command(b"a2", b"NOOP")
        assert reply[-1].startswith(b"a2 OK"), reply
        small = raw.command(b"a3", b"SEARCH TEXT {5+}\r\nhello")
        assert small[-1].startswith(b"a3 OK"), small
    finally:
        raw.close()


def test_no_large_literal_before_login(environment: Any) -> None:
    """Before authentication a command is small: APPEND's limit (APPENDLIMIT) is for
    logged-in users, and literals do not add up past the line limit."""
    raw = Raw(environment)
    try:
        raw.send(b"a1 APPEND INBOX {5000000}\r\n")
        reply = raw.line()
        assert reply.startswith(b"a1 BAD"), reply  # not "+ Ready"
        raw.send(b"a2 LOGIN {40000}\r\n")
        assert raw.line().startswith(b"+"), "a literal within the limit is accepted"
        raw.send(b"x" * 40000 + b" {40000}\r\n")
        reply = raw.line()
        assert reply.startswith(b"a2 BAD"), reply
        reply = raw.command(b"a3", b"NOOP")
        assert reply[-1].startswith(b"a3 OK"), reply
    finally:
        raw.close()


def test_an_oversized_non_synchronising_literal_ends_the_connection(environment: Any
                                                                    ) -> None:
    person = fresh_person(environment)
    raw = Raw(environment)
    try:
        raw.login(person)
        raw.send(b"a1 SEARCH TEXT {100000+}\r\n" + b"x" * 1000)
        rest = raw.rest()
        assert rest[0].startswith(b"a1 BAD"), rest
        assert rest[1].startswith(b"* BYE"), rest
    finally:
        raw.close()


def test_ten_bad_commands_in_a_row_end_the_connection(environment: Any) -> None:
    raw = Raw(environment)
    try:
        for n in range(1, 10):
            reply = raw.command(b"b%d" % n, b"FROBNICATE")
            assert reply[-1].startswith(b"b%d BAD" % n), reply
        raw.send(b"b10 FROBNICATE\r\n")
        rest = raw.rest()
        assert rest[0].startswith(b"b10 BAD"), rest
        assert rest[1].startswith(b"* BYE"), rest
    finally:
        raw.close()


def test_good_commands_reset_the_bad_command_budget(environment: Any) -> None:
    raw = Raw(environment)
    try:
        for n in range(1, 16):
            assert raw.command(b"b%d" % n, b"FROBNICATE")[-1].startswith(b"b%d BAD" % n)
            if n % 5 == 0:
                assert raw.command(b"n%d" % n, b"NOOP")[-1].startswith(b"n%d OK" % n)
    finally:
        raw.close()


def test_silence_before_login_ends_the_connection(environment: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mssante.imap.server.LOGIN_TIMEOUT", 0.5)
    started = time.monotonic()
    raw, slow = Raw(environment), Raw(environment)
    try:
        slow.send(b"a1 LOGIN someone")  # a line begun, never ended
        time.sleep(0.3)
        slow.send(b" else")
        for connection in (raw, slow):
            rest = connection.rest()
            assert rest and rest[0].startswith(b"* BYE"), rest
        assert time.monotonic() - started < 5
    finally:
        raw.close()
        slow.close()


# --- 7. broken MIME ----------------------------------------------------------------------

BROKEN: dict[str, bytes] = {
    "closing boundary missing": (
        b"From: a@x.test\r\nSubject: no end\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\nsecond part, never closed\r\n"),
    "multipart without boundary": (
        b"From: a@x.test\r\nSubject: no boundary\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nfirst part\r\n--x--\r\n"),
    "garbage content type": (
        b"From: a@x.test\r\nSubject: garbage\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: ;;/\x7f\"unbalanced; charset=*=''; boundary\r\n"
        b"Content-Transfer-Encoding: base64-ish\r\n\r\nfirst part\r\n"),
    "bare LF line endings": (
        b"From: a@x.test\nSubject: bare LF\nMIME-Version: 1.0\n"
        b"Content-Type: multipart/alternative; boundary=zz\n\n"
        b"--zz\nContent-Type: text/plain\n\nfirst part\n--zz\nContent-Type: text/html\n\n"
        b"<p>second</p>\n--zz--\n"),
    "empty body": b"From: a@x.test\r\nSubject: empty body\r\n\r\n",
    "multipart nested 2000 deep": (
        b"From: a@x.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" +
        b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                 for i in range(2000)) +
        b"Content-Type: text/plain\r\n\r\nfirst part\r\n" +
        b"".join(b"--b%d--\r\n" % i for i in reversed(range(2000)))),
    "message/rfc822 cut short": (
        b"From: a@x.test\r\nSubject: cut\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n'
        b"--o\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
        b"--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: mult"),
    "header without body separator": b"From: a@x.test\r\nSubject: only a header\r\n",
}


def test_broken_mime_is_served(environment: Any) -> None:
    person = fresh_person(environment)
    raw = Raw(environment)
    uids: dict[str, int] = {}
    try:
        raw.login(person)
        for n, (name, body) in enumerate(BROKEN.items()):
            reply = raw.append(b"p%d" % n, b"INBOX", body)
            assert reply[-1].startswith(b"p%d OK" % n), (name, reply)
            uids[name] = appended_uid([reply[-1]])[1]
    finally:
        raw.close()
    client = login(environment, person)
    try:
        ok(client.select("INBOX"))
        for name, uid in uids.items():
            u = str(uid)
            text, _ = fetched(ok(client.uid("FETCH", u, "(FLAGS RFC822.SIZE)")))
            size = re.search(rb"RFC822\.SIZE (\d+)", text)
            assert size is not None, (name, text)
            for item in ("BODYSTRUCTURE", "ENVELOPE"):
                text, _ = fetched(ok(client.uid("FETCH", u, f"({item})")))
                assert item.encode() + b" (" in text, (name, text)
            _, whole = fetched(ok(client.uid("FETCH", u, "(BODY[])")))
            assert whole == BROKEN[name], name
            assert int(size.group(1)) == len(whole), name
            data = ok(client.uid("FETCH", u, "(BODY[1])"))
            text, part = fetched(data)
            assert b"BODY[1]" in text, (name, data)
            if name != "header without body separator" and name != "empty body":
                assert part is not None and b"first part" in part, (name, data)
            assert "\\Seen" in flags_of(client, uid), name
    finally:
        client.logout()


# --- 8. UID and UIDVALIDITY invariants -----------------------------------------------------


def test_uid_invariants(environment: Any) -> None:
    person = fresh_person(environment)
    client = login(environment, person)
    try:
        ok(client.create("Projets"))
        before = status(client, "Projets", "UIDVALIDITY UIDNEXT")
        uidvalidity, first = appended_uid(ok(client.append("Projets", None, None, mail("1"))))
        assert uidvalidity == before["UIDVALIDITY"] and first == before["UIDNEXT"]
        assert status(client, "Projets", "UIDNEXT") == {"UIDNEXT": first + 1}
        _, second = appended_uid(ok(client.append("Projets", None, None, mail("2"))))
        assert second > first

        # UIDs are not reused after EXPUNGE, not even the highest one
        ok(client.select("Projets"))
        ok(client.uid("STORE", str(second), "+FLAGS", "(\\Deleted)"))
        ok(client.expunge())
        _, third = appended_uid(ok(client.append("Projets", None, None, mail("3"))))
        assert third > second
        assert status(client, "Projets", "UIDNEXT MESSAGES") == {"UIDNEXT": third + 1,
                                                                "MESSAGES": 2}
        ok(client.uid("STORE", f"{first}:*", "+FLAGS", "(\\Deleted)"))
        ok(client.expunge())
        ok(client.noop())
        _, fourth = appended_uid(ok(client.append("Projets", None, None, mail("4"))))
        assert fourth > third
        ok(client.close())

        # a folder created again under the same name is a new UIDVALIDITY
        ok(client.delete("Projets"))
        ok(client.create("Projets"))
        again = status(client, "Projets", "UIDVALIDITY UIDNEXT MESSAGES")
        assert again["UIDVALIDITY"] != uidvalidity
        assert again["MESSAGES"] == 0
        ok(client.select("Projets"))
        assert int(client.untagged_responses["UIDVALIDITY"][0]) == again["UIDVALIDITY"]
        ok(client.close())

        # so is one created under the name of a folder renamed away
        # and a renamed folder: the name "Anciens" never meant these UIDs before
        ok(client.rename("Projets", "Anciens"))
        renamed = status(client, "Anciens", "UIDVALIDITY")["UIDVALIDITY"]
        assert renamed not in (uidvalidity, again["UIDVALIDITY"])
        ok(client.create("Projets"))
        third_life = status(client, "Projets", "UIDVALIDITY")["UIDVALIDITY"]
        assert third_life not in (uidvalidity, again["UIDVALIDITY"], renamed)
    finally:
        client.logout()


def test_closed_sessions_leave_no_follower_on_the_shared_folder(imap_env) -> None:
    """A session that selects then unselects, selects another folder or logs out stops
    following its folder: ten thousand short sessions leave nothing behind."""
    person = fresh_person(imap_env)
    cache = imap_env.service(HOSPITAL).imap.cache
    client = login(imap_env, person)
    client.select("INBOX")
    client.select("Sent")
    client.unselect()
    client.select("INBOX")
    client.logout()
    store = imap_env.service(HOSPITAL).store
    ids = [f.id for f in imap_env.runner.call(store.folders.all(person.address))]
    deadline = time.monotonic() + 5
    while any(cache._entries[i].followers for i in ids if i in cache._entries):
        assert time.monotonic() < deadline, "a closed session still follows its folder"
        time.sleep(0.05)
