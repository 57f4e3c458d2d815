"""APPEND's extensions against the running operator: MULTIAPPEND (RFC 3502), CATENATE
with IMAP URLs (RFC 4469, RFC 5092) and BINARY (RFC 3516: literal8 in APPEND, FETCH
BINARY[], BINARY.PEEK, BINARY.SIZE). Raw commands go over imaplib's connection, after
its login, since imaplib writes one message per APPEND."""

from __future__ import annotations

import base64
import imaplib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from mssante.imap.append import parse_url
from mssante.imap.errors import Reply
from tests.imap.conftest import HOSPITAL, Account, fresh_org, fresh_person, grant, login


def ok(result: tuple[str, list[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return data


_TAGS = iter(range(1, 1_000_000))


def exchange(client: imaplib.IMAP4, command: bytes) -> tuple[list[bytes], bytes]:
    """Send a command (literals as LITERAL+ ``{n+}``) and read to its tagged reply:
    (untagged lines, each with its literals inline; the tagged line)."""
    tag = f"X{next(_TAGS)}".encode()
    client.send(tag + b" " + command + b"\r\n")
    lines: list[bytes] = []
    current = b""
    while True:
        line = client.readline()
        current += line
        literal = re.search(rb"~?\{(\d+)\}\r\n\Z", line)
        if literal:
            current += client.read(int(literal.group(1)))
            continue
        if current.startswith(tag + b" "):
            return lines, current.rstrip(b"\r\n")
        lines.append(current)
        current = b""


def lit(data: bytes, binary: bool = False) -> bytes:
    return (b"~" if binary else b"") + b"{%d+}\r\n" % len(data) + data


def mail(subject: str, body: bytes = b"Bonjour,\r\n") -> bytes:
    return (f"From: test@{HOSPITAL}\r\nTo: test@{HOSPITAL}\r\nSubject: {subject}\r\n"
            "\r\n").encode() + body


def count(client: imaplib.IMAP4, folder: str) -> int:
    line = ok(client.status(folder, "(MESSAGES)"))[0]
    found = re.search(rb"MESSAGES (\d+)", line)
    assert found is not None
    return int(found.group(1))


@pytest.fixture
def person(environment: Any) -> Account:
    return fresh_person(environment)


@pytest.fixture
def client(environment: Any, person: Account) -> Iterator[imaplib.IMAP4]:
    client = login(environment, person)
    yield client
    client.logout()


def test_the_extensions_are_advertised(client: imaplib.IMAP4) -> None:
    caps = ok(client.capability())[0].split()
    assert {b"MULTIAPPEND", b"CATENATE", b"BINARY"} <= set(caps)


# --- MULTIAPPEND, RFC 3502 ------------------------------------------------------------


def test_multiappend_adds_every_message_with_its_flags_and_date(client: imaplib.IMAP4) -> None:
    _, tagged = exchange(client, b"APPEND Drafts (\\Seen) " + lit(mail("un")) +
                         b' "01-Dec-2026 10:00:00 +0000" ' + lit(mail("deux")) + b" " +
                         b"(\\Flagged) " + lit(mail("trois")))
    # RFC 3502 §6 with RFC 4315 §3: APPENDUID names the UIDs as a set
    found = re.search(rb"OK \[APPENDUID (\d+) (\d+):(\d+)\]", tagged)
    assert found is not None, tagged
    first, last = int(found.group(2)), int(found.group(3))
    assert last == first + 2
    ok(client.select("Drafts", readonly=True))
    data = ok(client.uid("FETCH", f"{first}:{last}", "(FLAGS INTERNALDATE)"))
    assert b"\\Seen" in data[0] and b" 1-Dec-2026 10:00:00 +0000" in data[1]
    assert b"\\Flagged" in data[2] and b"\\Seen" not in data[1]


def test_multiappend_is_all_or_none(client: imaplib.IMAP4) -> None:
    before = count(client, "Drafts")
    # the second message cannot be built (its URL names nothing): none is added
    _, tagged = exchange(client, b"APPEND Drafts " + lit(mail("un")) +
                         b' CATENATE (URL "/INBOX/;UID=999999")')
    assert b"NO [BADURL /INBOX/;UID=999999]" in tagged
    _, tagged = exchange(client, b"APPEND Drafts " + lit(mail("un")) + b" (\\Bogus) " +
                         lit(mail("deux")))
    assert b" BAD " in tagged
    assert count(client, "Drafts") == before


# --- CATENATE, RFC 4469 ------------------------------------------------------------------


def _original(client: imaplib.IMAP4) -> tuple[int, int]:
    """A two-part message in INBOX: (UIDVALIDITY, UID)."""
    message = (f"From: test@{HOSPITAL}\r\nSubject: origine\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
               "--b\r\nContent-Type: text/plain\r\n\r\nPremier\r\n"
               "--b\r\nContent-Type: text/plain\r\n\r\nSecond\r\n--b--\r\n").encode()
    data = ok(client.append("INBOX", None, None, message))
    found = re.search(rb"APPENDUID (\d+) (\d+)", data[-1])
    assert found is not None
    return int(found.group(1)), int(found.group(2))


def _fetch_body(client: imaplib.IMAP4, folder: str, uid: int) -> bytes:
    ok(client.select(folder, readonly=True))
    data = ok(client.uid("FETCH", str(uid), "(BODY.PEEK[])"))
    assert isinstance(data[0], tuple)
    return bytes(data[0][1])


def test_catenate_builds_a_message_from_text_and_urls(client: imaplib.IMAP4,
                                                      person: Account) -> None:
    validity, uid = _original(client)
    header = b"From: test@" + HOSPITAL.encode() + b"\r\nSubject: renvoi\r\n\r\n"
    _, tagged = exchange(
        client, b"APPEND Drafts CATENATE (TEXT " + lit(header) +
        b' URL "/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=2" TEXT ' % (validity, uid) +
        lit(b"\r\n--\r\n") +
        # RFC 5092 §3: an absolute URL of the same user, a part of a section
        # (the login's "@" percent-encoded, RFC 5092 §3.2 enc-user)
        b' URL "imap://' + quote(person.login, safe="").encode() + b"@" + HOSPITAL.encode() +
        b'/INBOX/;UID=%d/;SECTION=1/;PARTIAL=0.4")' % uid)
    found = re.search(rb"APPENDUID \d+ (\d+)", tagged)
    assert found is not None, tagged
    assert _fetch_body(client, "Drafts", int(found.group(1))) == \
        header + b"Second\r\n--\r\nPrem"


def test_catenate_of_a_relative_url_in_the_selected_mailbox(client: imaplib.IMAP4) -> None:
    _, uid = _original(client)
    ok(client.select("INBOX", readonly=True))
    _, tagged = exchange(client, b'APPEND Drafts CATENATE (URL ";UID=%d")' % uid)
    found = re.search(rb"APPENDUID \d+ (\d+)", tagged)
    assert found is not None, tagged
    assert b"Subject: origine" in _fetch_body(client, "Drafts", int(found.group(1)))


@pytest.mark.parametrize("url", [
    "/INBOX;UIDVALIDITY=1/;UID={uid}",  # another UIDVALIDITY
    "/INBOX/;UID=99999999",  # no such message
    "/INBOX/;UID={uid}/;SECTION=7",  # no such part
    "/Nowhere/;UID=1",  # no such mailbox
    "imap://someone-else@" + HOSPITAL + "/INBOX/;UID={uid}",  # another user
    "/INBOX/;UID={uid};EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous:internal:00",
    "http://example.org/",
])
def test_catenate_refuses_what_a_url_cannot_give(client: imaplib.IMAP4, url: str) -> None:
    _, uid = _original(client)
    before = count(client, "Drafts")
    text = url.format(uid=uid).encode()
    _, tagged = exchange(client, b'APPEND Drafts CATENATE (TEXT ' + lit(b"x\r\n") +
                         b' URL "' + text + b'")')
    assert b"NO [BADURL " + text + b"]" in tagged  # RFC 4469 §6
    assert count(client, "Drafts") == before


def test_catenate_reads_a_shared_mailbox_only_with_the_read_right(environment: Any) -> None:
    responsible, reader, outsider = (fresh_person(environment) for _ in range(3))
    address = fresh_org(environment, responsible)
    grant(environment, address, reader, "r")
    inbox = f"Shared/{address}/INBOX"
    owner = login(environment, responsible)
    try:
        found = re.search(rb"APPENDUID \d+ (\d+)", ok(owner.append(
            inbox, None, None, mail("partage", b"Compte rendu\r\n")))[-1])
        assert found is not None
        uid = int(found.group(1))
    finally:
        owner.logout()
    url = f"/{inbox}/;UID={uid}/;SECTION=TEXT".encode()
    for person, allowed in ((reader, True), (outsider, False)):
        client = login(environment, person)
        try:
            _, tagged = exchange(client, b"APPEND Drafts CATENATE (TEXT " +
                                 lit(b"Subject: copie\r\n\r\n") + b' URL "' + url + b'")')
            if allowed:
                appended = re.search(rb"APPENDUID \d+ (\d+)", tagged)
                assert appended is not None, tagged
                assert _fetch_body(client, "Drafts", int(appended.group(1))) == \
                    b"Subject: copie\r\n\r\nCompte rendu\r\n"
            else:
                assert b"NO [BADURL " + url + b"]" in tagged
        finally:
            client.logout()
    # the reader read the shared message: the audit trail says so, as for a FETCH
    done = subprocess.run(
        [sys.executable, "-m", "mssante", "operator", "audit", "list", "--json", "--limit",
         "100000", "--mailbox", address, "--config", environment.operator(HOSPITAL)["config"]],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    reads = [e for e in json.loads(done.stdout) if e["action"] == "read"]
    assert [(e["actor"], e["source"]) for e in reads] == [(reader.login, "IMAP 127.0.0.1")]


def test_url_parsing() -> None:
    url = parse_url("imap://bob;AUTH=*@mail.example/Dossiers/Dr%C3%A9;UIDVALIDITY=7"
                    "/;UID=3/;SECTION=HEADER.FIELDS%20(FROM)/;PARTIAL=10.20")
    assert (url.user, url.mailbox, url.uidvalidity, url.uid, url.section, url.partial) == \
        ("bob", "Dossiers/Dré", 7, 3, "HEADER.FIELDS (FROM)", (10, 20))
    for bad in ("/INBOX", "/INBOX/;UID=0", "imap://host", "/INBOX/;UID=1/;SECTION=BOGUS",
                "/INBOX/;UID=1/;PARTIAL=x"):
        with pytest.raises(Reply):
            parse_url(bad)


# --- BINARY, RFC 3516 ----------------------------------------------------------------------


def test_binary_append_and_fetch(client: imaplib.IMAP4) -> None:
    payload = bytes(range(256)) * 4  # NUL and every other octet
    message = (b"From: test@" + HOSPITAL.encode() + b"\r\nSubject: binaire\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: text/plain\r\n\r\nVoir la piece jointe.\r\n"
               b"--b\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" +
               base64.encodebytes(payload).replace(b"\n", b"\r\n") + b"--b--\r\n")
    # RFC 3516 §4.4: APPEND takes a literal8
    _, tagged = exchange(client, b"APPEND INBOX " + lit(message, binary=True))
    found = re.search(rb"APPENDUID \d+ (\d+)", tagged)
    assert found is not None, tagged
    uid = int(found.group(1))
    ok(client.select("INBOX"))
    lines, tagged = exchange(client, b"UID FETCH %d (BINARY.SIZE[2] BINARY.PEEK[2] FLAGS)"
                             % uid)
    assert b" OK " in tagged
    [line] = lines
    assert b"BINARY.SIZE[2] %d" % len(payload) in line  # RFC 3516 §4.3
    # content with NUL is sent as a literal8 (RFC 3516 §4.3)
    assert b"BINARY[2] ~{%d}\r\n" % len(payload) + payload in line
    assert b"\\Seen" not in line  # PEEK
    lines, _ = exchange(client, b"UID FETCH %d (BINARY[1]<0.4>)" % uid)
    assert b"BINARY[1]<0> {4}\r\nVoir" in lines[0]
    lines, _ = exchange(client, b"UID FETCH %d (FLAGS)" % uid)
    assert b"\\Seen" in lines[0]  # BINARY without PEEK sets \Seen
