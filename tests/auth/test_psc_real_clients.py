"""Real mail clients log in with a Pro Santé Connect access token, as a professional's
desktop would: offlineimap (offlineimap3) and mbsync (isync, with Debian's Cyrus SASL
XOAUTH2 plugin, libsasl2-modules-kdexoauth2) synchronise a mailbox over IMAP with
XOAUTH2, msmtp sends through submission with XOAUTH2 and OAUTHBEARER (RFC 7628), and
what it sent arrives in the recipient's mailbox.

Each client gets its token from the token command the README documents:
``mssante psc token`` (the real authorization code flow over HTTPS, the simulated e-CPS
approval) piped through a one-line JSON reader that prints the access token. Then each
is given a token it must not get in with: one the provider gave to another operator's
client, and an expired one (signed by the provider's own key, ``exp`` an hour past); the
client exits with an error and nothing is synchronised or delivered.

A missing client skips its test, unless MSSANTE_REQUIRE_CLIENTS is set (CI): then it
fails.
"""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.auth.test_psc_tokens import (
    CABINET,
    DUPONT,
    DUPONT_ID,
    access_token,
    claims_of,
    provider_key,
    signed,
)
from tests.conftest import RunningEnvironment
from tests.imap.conftest import Account, connect, fresh_person, login
from tests.imap.test_real_clients import (
    TIMEOUT,
    append,
    client_binary,
    maildir_deliver,
    maildir_messages,
    message,
    run,
    server_flags,
    tls_host,
)

REQUIRE_CLIENTS = os.environ.get("MSSANTE_REQUIRE_CLIENTS", "") not in ("", "0")
XOAUTH2_PLUGIN = "/usr/lib/*/sasl2/libkdexoauth2.so*"  # Debian: libsasl2-modules-kdexoauth2


# -- tokens, as a user's tools get them ------------------------------------------------

def token_command(env: RunningEnvironment, home: Path, id_nat_ps: str = DUPONT_ID) -> Path:
    """The README's token command, in a script: a fresh token at every run."""
    environment_json = env.env.data_dir / "environment.json"
    mssante = f"{shlex.quote(sys.executable)} -m mssante"  # `mssante`, from this venv
    reader = "import json, sys; print(json.load(sys.stdin)['access_token'])"
    return _script(home / "psc-token", f"{mssante} psc token --env "
                   f"{shlex.quote(str(environment_json))} --id-nat-ps {id_nat_ps} "
                   f"| {shlex.quote(sys.executable)} -c {shlex.quote(reader)}")


def token_file_command(home: Path, token: str) -> Path:
    """A command that prints a token kept in a file (what a client is handed here to be
    refused)."""
    (home / "token").write_text(token + "\n")
    return _script(home / "psc-token", f"cat {shlex.quote(str(home / 'token'))}")


def _script(path: Path, line: str) -> Path:
    path.write_text(f"#!/bin/sh\nset -e\n{line}\n")
    path.chmod(0o700)
    return path


def another_operators_token(env: RunningEnvironment) -> str:
    """Dupont's real token, but asked for by the cabinet's client: not this operator's."""
    return access_token(env, DUPONT_ID, CABINET)


def expired_token(env: RunningEnvironment) -> str:
    """Dupont's token, signed by the provider's own key, expired an hour ago (well past
    the operator's leeway)."""
    now = int(time.time())
    claims = {**claims_of(access_token(env)), "iat": now - 3900, "auth_time": now - 3900,
              "exp": now - 3600}
    return signed(claims, provider_key(env))


REFUSED_TOKENS = {"another operator's": another_operators_token, "expired": expired_token}


def refused(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a client that must fail: its exit status is not 0."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode != 0, (f"{command} exited with 0\n"
                                  f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def dupont(env: RunningEnvironment) -> Account:
    """Dr Dupont with his password: the server side of the checks, through imaplib."""
    return Account(DUPONT, env.password(DUPONT), DUPONT)


def dupont_inbox(env: RunningEnvironment) -> set[str]:
    """The subjects in Dupont's INBOX on the server."""
    return set(server_flags(env, dupont(env)))


# -- offlineimap: auth_mechanisms = XOAUTH2, oauth2_access_token_eval -------------------

def offlineimap_config(env: RunningEnvironment, home: Path, command: Path) -> Path:
    """offlineimap3 evaluates ``oauth2_access_token_eval`` once per run, with the
    functions of ``pythonfile``, and sends ``user=<remoteuser>^Aauth=Bearer <token>^A^A``
    (imapserver.py ``__xoauth2handler``). Only INBOX is synchronised: Dupont's shared
    folders belong to other tests."""
    imaps = env.operator("ch-xyz.mssante.fr")["imaps"]
    (home / "mail").mkdir(exist_ok=True)
    helpers = home / "offlineimap.py"
    helpers.write_text(f"""\
import subprocess


def psc_token():
    return subprocess.check_output([{str(command)!r}], text=True).strip()
""")
    conf = home / "offlineimaprc"
    conf.write_text(f"""\
[general]
metadata = {home / "metadata"}
accounts = operator
ui = quiet
pythonfile = {helpers}

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
remoteuser = {DUPONT}
auth_mechanisms = XOAUTH2
oauth2_access_token_eval = psc_token()
folderfilter = lambda folder: folder == "INBOX"
""")
    return conf


def offlineimap_command(conf: Path) -> list[str]:
    return [client_binary("offlineimap"), "-c", str(conf), "-o", "-u", "quiet"]


@pytest.mark.slow
def test_offlineimap_synchronises_with_a_psc_token(environment: RunningEnvironment,
                                                   tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    on_server, on_laptop = f"offlineimap PSC {tag} server", f"offlineimap PSC {tag} laptop"
    append(environment, dupont(environment), "INBOX",
           message(on_server, "Read with a PSC token.", DUPONT))
    conf = offlineimap_config(environment, tmp_path, token_command(environment, tmp_path))
    inbox = tmp_path / "mail" / "INBOX"

    run(offlineimap_command(conf))
    assert on_server in maildir_messages(inbox)
    assert b"Read with a PSC token." in maildir_messages(inbox)[on_server][0].read_bytes()

    maildir_deliver(inbox, message(on_laptop, "Written on the laptop.", DUPONT))
    run(offlineimap_command(conf))
    assert {on_server, on_laptop} <= dupont_inbox(environment)


@pytest.mark.slow
@pytest.mark.parametrize("kind", REFUSED_TOKENS)
def test_offlineimap_with_a_refused_token(environment: RunningEnvironment, tmp_path: Path,
                                          kind: str) -> None:
    client_binary("offlineimap")
    tag = uuid.uuid4().hex[:8]
    on_server, on_laptop = f"offlineimap {kind} {tag} server", f"offlineimap {kind} {tag} laptop"
    append(environment, dupont(environment), "INBOX",
           message(on_server, "Not for a refused token.", DUPONT))
    command = token_file_command(tmp_path, REFUSED_TOKENS[kind](environment))
    conf = offlineimap_config(environment, tmp_path, command)
    inbox = tmp_path / "mail" / "INBOX"
    maildir_deliver(inbox, message(on_laptop, "Never uploaded.", DUPONT))

    done = refused(offlineimap_command(conf))
    assert "XOAUTH2 authentication failed" in done.stdout + done.stderr
    assert list(maildir_messages(inbox)) == [on_laptop]
    subjects = dupont_inbox(environment)
    assert on_server in subjects and on_laptop not in subjects


# -- mbsync: AuthMechs XOAUTH2 through Cyrus SASL's XOAUTH2 plugin, PassCmd --------------

def xoauth2_plugin() -> None:
    """Cyrus SASL's XOAUTH2 client plugin (KDE's), or skip (fail when
    MSSANTE_REQUIRE_CLIENTS is set). It sends the password mbsync hands it as the
    bearer token."""
    if glob.glob(XOAUTH2_PLUGIN):
        return
    reason = "Cyrus SASL has no XOAUTH2 plugin (Debian package libsasl2-modules-kdexoauth2)"
    if REQUIRE_CLIENTS:
        pytest.fail(f"{reason} and MSSANTE_REQUIRE_CLIENTS is set")
    pytest.skip(reason)


def mbsync_config(env: RunningEnvironment, home: Path, command: Path) -> Path:
    imaps = env.operator("ch-xyz.mssante.fr")["imaps"]
    mail = home / "mail"
    mail.mkdir(exist_ok=True)
    rc = home / "mbsyncrc"
    rc.write_text(f"""\
IMAPAccount operator
Host {tls_host(imaps["host"])}
Port {imaps["port"]}
SSLType IMAPS
CertificateFile {env.ca_file}
User {DUPONT}
PassCmd {shlex.quote(str(command))}
AuthMechs XOAUTH2

IMAPStore operator-remote
Account operator

MaildirStore operator-local
Path {mail}/
Inbox {mail}/INBOX

Channel operator
Far :operator-remote:
Near :operator-local:
Patterns INBOX
Create Both
SyncState *
""")
    return rc


def mbsync_command(rc: Path) -> list[str]:
    return [client_binary("mbsync"), "-V", "-c", str(rc), "-a"]


@pytest.mark.slow
def test_mbsync_synchronises_with_a_psc_token(environment: RunningEnvironment,
                                              tmp_path: Path) -> None:
    client_binary("mbsync")
    xoauth2_plugin()
    tag = uuid.uuid4().hex[:8]
    on_server, on_laptop = f"mbsync PSC {tag} server", f"mbsync PSC {tag} laptop"
    append(environment, dupont(environment), "INBOX",
           message(on_server, "Read with a PSC token.", DUPONT))
    rc = mbsync_config(environment, tmp_path, token_command(environment, tmp_path))
    inbox = tmp_path / "mail" / "INBOX"

    done = run(mbsync_command(rc))
    assert "Authenticating with SASL mechanism XOAUTH2" in done.stdout
    assert on_server in maildir_messages(inbox)

    maildir_deliver(inbox, message(on_laptop, "Written on the laptop.", DUPONT))
    run(mbsync_command(rc))
    assert {on_server, on_laptop} <= dupont_inbox(environment)


@pytest.mark.slow
@pytest.mark.parametrize("kind", REFUSED_TOKENS)
def test_mbsync_with_a_refused_token(environment: RunningEnvironment, tmp_path: Path,
                                     kind: str) -> None:
    client_binary("mbsync")
    xoauth2_plugin()
    tag = uuid.uuid4().hex[:8]
    on_laptop = f"mbsync {kind} {tag} laptop"
    command = token_file_command(tmp_path, REFUSED_TOKENS[kind](environment))
    rc = mbsync_config(environment, tmp_path, command)
    inbox = tmp_path / "mail" / "INBOX"
    maildir_deliver(inbox, message(on_laptop, "Never uploaded.", DUPONT))

    done = refused(mbsync_command(rc))
    assert "NO [AUTHENTICATIONFAILED]" in done.stderr
    assert list(maildir_messages(inbox)) == [on_laptop]
    assert on_laptop not in dupont_inbox(environment)


# -- msmtp: auth xoauth2 / oauthbearer, passwordeval ------------------------------------

def msmtp_config(env: RunningEnvironment, home: Path, command: Path, mechanism: str,
                 port: str = "submission") -> Path:
    """``submission`` is port 587's STARTTLS, ``submissions`` implicit TLS (RFC 8314)."""
    ep = env.operator("ch-xyz.mssante.fr")[port]
    rc = home / "msmtprc"
    rc.write_text(f"""\
account operator
host {tls_host(ep["host"])}
port {ep["port"]}
tls on
tls_starttls {"on" if port == "submission" else "off"}
tls_trust_file {env.ca_file}
from {DUPONT}
user {DUPONT}
auth {mechanism}
passwordeval {shlex.quote(str(command))}
""")
    rc.chmod(0o600)
    return rc


def msmtp(rc: Path, to: str, raw: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([client_binary("msmtp"), "-C", str(rc), "-a", "operator", "-v", to],
                          input=raw, capture_output=True, timeout=TIMEOUT, check=False)


def mail(subject: str, body: str, to: Account) -> bytes:
    """A message from Dupont to ``to``."""
    return message(subject, body, DUPONT).replace(f"To: {DUPONT}".encode(),
                                                  f"To: {to.address}".encode())


def wait_in_inbox(env: RunningEnvironment, who: Account, subject: str) -> None:
    """Read by IMAP until the message is in the INBOX."""
    env.wait_for(lambda: subject in server_flags(env, who), what=f"{subject!r} by IMAP")


@pytest.mark.slow
@pytest.mark.parametrize(("mechanism", "port"), [("xoauth2", "submission"),
                                                 ("oauthbearer", "submissions")])
def test_msmtp_sends_with_a_psc_token(environment: RunningEnvironment, tmp_path: Path,
                                      mechanism: str, port: str) -> None:
    client_binary("msmtp")
    colleague = fresh_person(environment)
    subject = f"msmtp {mechanism} {uuid.uuid4().hex[:8]}"
    rc = msmtp_config(environment, tmp_path, token_command(environment, tmp_path),
                      mechanism, port)
    done = msmtp(rc, colleague.address, mail(subject, "Sent with a PSC token.", colleague))
    assert done.returncode == 0, done.stderr.decode()
    assert f"--> AUTH {mechanism.upper()}".encode() in done.stdout  # -v: the dialogue
    wait_in_inbox(environment, colleague, subject)
    client = login(environment, colleague)
    try:
        client.select("INBOX", readonly=True)
        typ, found = client.search(None, "SUBJECT", f'"{subject}"')
        assert typ == "OK" and found[0]
        typ, parts = client.fetch(found[0].split()[0].decode(), "(BODY.PEEK[])")
        assert typ == "OK" and isinstance(parts[0], tuple)
        assert b"Sent with a PSC token." in parts[0][1]
        assert f"From: {DUPONT}".encode() in parts[0][1]
    finally:
        client.logout()


@pytest.mark.slow
@pytest.mark.parametrize("kind", REFUSED_TOKENS)
@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_msmtp_with_a_refused_token(environment: RunningEnvironment, tmp_path: Path,
                                    mechanism: str, kind: str) -> None:
    """msmtp exits 77 (EX_NOPERM, sysexits.h) on the 535; the message is never taken:
    the same message sent next with a good token arrives alone."""
    client_binary("msmtp")
    colleague = fresh_person(environment)
    tag = uuid.uuid4().hex[:8]
    refused_subject, sent_subject = f"msmtp {kind} {tag}", f"msmtp afterwards {tag}"
    bad = tmp_path / "bad"
    bad.mkdir()
    rc = msmtp_config(environment, bad, token_file_command(bad, REFUSED_TOKENS[kind](
        environment)), mechanism)

    done = msmtp(rc, colleague.address, mail(refused_subject, "Never taken.", colleague))
    assert done.returncode == 77, done.stderr.decode()
    assert b"535 5.7.8" in done.stderr

    rc = msmtp_config(environment, tmp_path, token_command(environment, tmp_path), mechanism)
    assert msmtp(rc, colleague.address, mail(sent_subject, "Taken.", colleague)).returncode == 0
    wait_in_inbox(environment, colleague, sent_subject)
    assert list(server_flags(environment, colleague)) == [sent_subject]


def test_the_token_command_prints_a_token_that_logs_in(environment: RunningEnvironment,
                                                       tmp_path: Path) -> None:
    """What the clients above are given: one line, a token the operator takes."""
    out = subprocess.run([str(token_command(environment, tmp_path))], capture_output=True,
                         text=True, timeout=TIMEOUT, check=True).stdout
    token = out.removesuffix("\n")
    assert token.count(".") == 2 and "\n" not in token
    assert claims_of(token)["aud"] == "ch-xyz.mssante.fr"
    client = connect(environment)
    try:
        client.authenticate("XOAUTH2", lambda _: f"user={DUPONT}\x01auth=Bearer {token}"
                                                 "\x01\x01".encode())
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()
