"""Real mail clients synchronise a mailbox with the running operator.

mbsync (Debian's isync) and offlineimap (offlineimap3) talk to the operator's imaps
port, TLS verified against the environment's CA, each as a fresh person with its own
temporary directories. They send what a desktop user's tools send and hand-written
imaplib tests tend not to: SASL PLAIN chosen from the capabilities, pipelined UID
STORE and APPEND with LITERAL+, APPEND with flags and a date, CREATE of a folder
made locally, CLOSE to expunge, SELECT then EXAMINE of every folder.

A missing client skips its test, unless MSSANTE_REQUIRE_CLIENTS is set (CI): then
it fails.
"""

from __future__ import annotations

import email.utils
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.imap.conftest import Account, connect, fresh_person, login
from tests.imap.transcript import Transcript

TIMEOUT = 60  # seconds for one run of a client
REQUIRE_CLIENTS = os.environ.get("MSSANTE_REQUIRE_CLIENTS", "") not in ("", "0")
PACKAGES = {"mbsync": "isync", "offlineimap": "offlineimap3"}  # as .ci/run installs them
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def client_binary(name: str) -> str:
    """The path of a client, or skip (fail when MSSANTE_REQUIRE_CLIENTS is set)."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (Debian package {PACKAGES[name]})"
    if REQUIRE_CLIENTS:
        pytest.fail(f"{reason} and MSSANTE_REQUIRE_CLIENTS is set")
    pytest.skip(reason)


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a client once; fail with its output on a non-zero exit or a timeout."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{command} timed out after {TIMEOUT}s\n"
                             f"stdout:\n{exc.stdout!r}\nstderr:\n{exc.stderr!r}") from exc
    assert done.returncode == 0, (f"{command} exited with {done.returncode}\n"
                                  f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def message(subject: str, body: str, sender: str = "someone@ch-xyz.mssante.fr") -> bytes:
    return (f"From: {sender}\r\n"
            f"To: {sender}\r\n"
            f"Subject: {subject}\r\n"
            f"Date: {email.utils.formatdate(localtime=True)}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@test.invalid>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            f"{body}\r\n").encode()


def tls_host(host: str) -> str:
    """The name to give a client for the operator's address. mbsync 1.4 and
    offlineimap (imaplib2) match the certificate's DNS names only, not its IP
    addresses: the local environment's certificates name ``localhost`` too."""
    return "localhost" if host == "127.0.0.1" else host


# --- the server side, through imaplib -------------------------------------------------


def append(env: Any, person: Account, folder: str, *raw: bytes) -> None:
    client = login(env, person)
    try:
        for one in raw:
            typ, data = client.append(folder, None, None, one)
            assert typ == "OK", data
    finally:
        client.logout()


def server_flags(env: Any, person: Account, folder: str = "INBOX") -> dict[str, set[str]]:
    """Subject → flags of every message in a server folder."""
    client = login(env, person)
    try:
        typ, data = client.select(folder, readonly=True)
        assert typ == "OK", data
        typ, data = client.uid("SEARCH", "ALL")
        assert typ == "OK", data
        found: dict[str, set[str]] = {}
        for uid in (data[0] or b"").split():
            typ, parts = client.uid("FETCH", uid.decode(),
                                    "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK", parts
            meta = b"".join(p[0] if isinstance(p, tuple) else p for p in parts)
            header = b"".join(p[1] for p in parts if isinstance(p, tuple))
            flags = _FLAGS.search(meta)
            assert flags is not None, parts
            subject = header.decode().partition(":")[2].strip()
            found[subject] = set(flags.group(1).decode().split())
        return found
    finally:
        client.logout()


def server_folders(env: Any, person: Account) -> set[str]:
    client = login(env, person)
    try:
        typ, data = client.list()
        assert typ == "OK", data
        names = set()
        for line in data:
            assert isinstance(line, bytes), data
            name = line.rpartition(b' "/" ')[2].decode()
            names.add(name.strip('"'))
        return names
    finally:
        client.logout()


def expunge(env: Any, person: Account, subject: str, folder: str = "INBOX") -> None:
    client = login(env, person)
    try:
        typ, data = client.select(folder)
        assert typ == "OK", data
        typ, data = client.uid("SEARCH", "SUBJECT", f'"{subject}"')
        uids = (data[0] or b"").split()
        assert typ == "OK" and len(uids) == 1, data
        uid = uids[0].decode()
        typ, data = client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        assert typ == "OK", data
        typ, data = client.expunge()
        assert typ == "OK", data
    finally:
        client.logout()


# --- the client side, a Maildir -------------------------------------------------------


def maildir_messages(folder: Path) -> dict[str, tuple[Path, str]]:
    """Subject → (file, Maildir flags) of every message in a local Maildir folder."""
    found: dict[str, tuple[Path, str]] = {}
    for sub in ("new", "cur"):
        for path in sorted((folder / sub).iterdir()):
            raw = path.read_bytes()
            subject = re.search(rb"^Subject: (.*?)\r?$", raw, re.MULTILINE)
            assert subject is not None, raw
            flags = path.name.partition(":2,")[2]
            found[subject.group(1).decode()] = (path, flags)
    return found


def maildir_deliver(folder: Path, raw: bytes) -> Path:
    """A new message in a local Maildir folder, as a local delivery agent writes it."""
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.test"
    (folder / "tmp" / name).write_bytes(raw)
    return (folder / "tmp" / name).rename(folder / "new" / name)


def maildir_mark_seen(path: Path) -> Path:
    """Flag a local message \\Seen, as a Maildir mail reader does: move it to cur/ with S."""
    base, _, flags = path.name.partition(":2,")
    flags = "".join(sorted(set(flags) | {"S"}))
    return path.rename(path.parent.parent / "cur" / f"{base}:2,{flags}")


def bodies(folder: Path) -> dict[str, bytes]:
    return {subject: path.read_bytes() for subject, (path, _) in maildir_messages(folder).items()}


# --- mbsync ---------------------------------------------------------------------------


def mbsync_config(env: Any, person: Account, home: Path) -> Path:
    """SSLType is isync 1.4's name (Debian 12) for what 1.5 calls TLSType; 1.5 still
    reads it. AuthMechs PLAIN: with a Cyrus SASL XOAUTH2 plugin on the machine
    (libsasl2-modules-kdexoauth2, which tests/auth/test_psc_real_clients.py uses),
    mbsync's default ``*`` lets Cyrus pick XOAUTH2 from the capabilities and send the
    password as a bearer token, refused."""
    imaps = env.operator("ch-xyz.mssante.fr")["imaps"]
    mail = home / "mail"
    mail.mkdir()
    rc = home / "mbsyncrc"
    rc.write_text(f"""\
IMAPAccount operator
Host {tls_host(imaps["host"])}
Port {imaps["port"]}
SSLType IMAPS
CertificateFile {env.ca_file}
User {person.login}
Pass {person.password}
AuthMechs PLAIN

IMAPStore operator-remote
Account operator

MaildirStore operator-local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel operator
Far :operator-remote:
Near :operator-local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    return rc


def mbsync(rc: Path) -> subprocess.CompletedProcess[str]:
    return run([client_binary("mbsync"), "-V", "-c", str(rc), "-a"])


@pytest.mark.slow
def test_mbsync_both_ways(imap_env: Any, tmp_path: Path) -> None:
    client_binary("mbsync")
    person = fresh_person(imap_env)
    tag = uuid.uuid4().hex[:8]
    subjects = [f"mbsync {tag} {n}" for n in range(3)]
    append(imap_env, person, "INBOX",
           *(message(s, f"Body of {s}, with a French word: éphémère.") for s in subjects))
    rc = mbsync_config(imap_env, person, tmp_path)
    inbox = tmp_path / "mail" / "INBOX"

    # down: the three messages arrive with their bodies, and the default folders too
    mbsync(rc)
    local = bodies(inbox)
    assert sorted(local) == subjects
    for subject, raw in local.items():
        assert f"Body of {subject}, with a French word: éphémère.".encode() in raw
    for folder in ("Sent", "Drafts", "Trash"):
        assert (tmp_path / "mail" / folder / "cur").is_dir(), sorted(
            p.name for p in (tmp_path / "mail").iterdir())

    # up: a message delivered locally, and a local message read
    added = f"mbsync {tag} local"
    maildir_deliver(inbox, message(added, "Written on the laptop."))
    maildir_mark_seen(maildir_messages(inbox)[subjects[1]][0])
    mbsync(rc)
    on_server = server_flags(imap_env, person)
    assert sorted(on_server) == sorted([*subjects, added])
    assert "\\Seen" in on_server[subjects[1]]
    assert "\\Seen" not in on_server[subjects[0]]
    assert "\\Deleted" not in on_server[added]

    # expunged on the server: gone locally
    expunge(imap_env, person, subjects[0])
    mbsync(rc)
    assert sorted(maildir_messages(inbox)) == sorted([subjects[1], subjects[2], added])
    assert "S" in maildir_messages(inbox)[subjects[1]][1]


@pytest.mark.slow
def test_mbsync_creates_a_local_folder_on_the_server(imap_env: Any, tmp_path: Path) -> None:
    client_binary("mbsync")
    person = fresh_person(imap_env)
    rc = mbsync_config(imap_env, person, tmp_path)
    mbsync(rc)

    subject = f"mbsync folder {uuid.uuid4().hex[:8]}"
    maildir_deliver(tmp_path / "mail" / "Projets", message(subject, "Filed locally."))
    mbsync(rc)
    assert "Projets" in server_folders(imap_env, person)
    assert list(server_flags(imap_env, person, "Projets")) == [subject]

    # and a second run has nothing left to do
    mbsync(rc)
    assert list(server_flags(imap_env, person, "Projets")) == [subject]


# --- offlineimap ----------------------------------------------------------------------


def offlineimap_config(env: Any, person: Account, home: Path) -> Path:
    imaps = env.operator("ch-xyz.mssante.fr")["imaps"]
    (home / "mail").mkdir()
    conf = home / "offlineimaprc"
    conf.write_text(f"""\
[general]
metadata = {home / "metadata"}
accounts = operator
ui = quiet

[Account operator]
localrepository = Local
remoterepository = Remote

[Repository Local]
type = Maildir
localfolders = {home / "mail"}

[Repository Remote]
type = IMAP
remotehost = {tls_host(imaps["host"])}
remoteport = {imaps["port"]}
ssl = yes
sslcacertfile = {env.ca_file}
remoteuser = {person.login}
remotepass = {person.password}
""")
    return conf


def offlineimap(conf: Path) -> subprocess.CompletedProcess[str]:
    return run([client_binary("offlineimap"), "-c", str(conf), "-o", "-u", "quiet"])


@pytest.mark.slow
def test_offlineimap_both_ways(imap_env: Any, tmp_path: Path) -> None:
    client_binary("offlineimap")
    person = fresh_person(imap_env)
    tag = uuid.uuid4().hex[:8]
    subjects = [f"offlineimap {tag} {n}" for n in range(2)]
    append(imap_env, person, "INBOX", *(message(s, f"Body of {s}.") for s in subjects))
    draft = f"offlineimap {tag} draft"
    append(imap_env, person, "Drafts", message(draft, "Unfinished."))
    conf = offlineimap_config(imap_env, person, tmp_path)
    mail = tmp_path / "mail"

    # down: messages and folders
    offlineimap(conf)
    for folder in ("INBOX", "Sent", "Drafts", "Trash"):
        assert (mail / folder / "cur").is_dir(), sorted(p.name for p in mail.iterdir())
    local = bodies(mail / "INBOX")
    assert sorted(local) == subjects
    for subject, raw in local.items():
        assert f"Body of {subject}.".encode() in raw
    assert list(maildir_messages(mail / "Drafts")) == [draft]

    # up: a message delivered locally, and a local message read
    added = f"offlineimap {tag} local"
    maildir_deliver(mail / "INBOX", message(added, "Written on the laptop."))
    maildir_mark_seen(maildir_messages(mail / "INBOX")[subjects[0]][0])
    offlineimap(conf)
    on_server = server_flags(imap_env, person)
    assert sorted(on_server) == sorted([*subjects, added])
    assert "\\Seen" in on_server[subjects[0]]
    assert "\\Seen" not in on_server[subjects[1]]
    assert sorted(maildir_messages(mail / "INBOX")) == sorted([*subjects, added])


# --- what the clients revealed --------------------------------------------------------


def test_external_is_offered_only_with_a_client_certificate(imap_env: Any) -> None:
    """mbsync (Cyrus SASL) picks AUTH=EXTERNAL whenever offered, and fails without a
    certificate instead of trying PLAIN."""
    plain = connect(imap_env)
    try:
        assert "AUTH=PLAIN" in plain.capabilities
        assert "AUTH=EXTERNAL" not in plain.capabilities
    finally:
        plain.logout()
    app = imap_env.description["applications"][0]
    with_card = connect(imap_env, cert=(app["cert_file"], app["key_file"]))
    try:
        assert "AUTH=EXTERNAL" in with_card.capabilities
    finally:
        with_card.logout()


def test_updates_come_before_the_tagged_reply(imap_env: Any) -> None:
    """mbsync saw the EXISTS of its own APPEND only with its next command (RFC 9051 §7:
    the untagged data a command causes precede its completion)."""
    person = fresh_person(imap_env)
    raw = message("appended while selected", "Hello.")
    with Transcript.open(imap_env) as t:
        t.run(f"a1 LOGIN {person.login} {person.password}", "a1 OK [CAPABILITY {*}] {*}")
        t.line("a2 SELECT INBOX")
        while not t.read().startswith("a2 OK"):
            pass
        t.send(b"a3 APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
        t.until("a3", "* 1 EXISTS", "* 1 RECENT", "a3 OK [APPENDUID {#} 1] APPEND completed")
        t.run("a4 NOOP", "a4 OK NOOP completed")
