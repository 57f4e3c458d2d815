"""Debian's Postfix as a fourth operator of the local environment, over mutual TLS.

The Postfix instance runs the configuration the README shows (section "Another MTA
as an operator", built by ``bench.peers.postfix.mssante_operator_config``): its own
domain, a certificate issued by ``mssante pki issue``, declared to ``mssante up`` in
``outside-operators.toml`` (route and whitelist entry, kept across restarts). Mail
goes both ways: ours to a Maildir of Postfix, Postfix's to an INBOX of ours.

Postfix missing skips the test, unless MSSANTE_REQUIRE_CLIENTS is set (CI): then it
fails. Postfix instances are started as root, in a temporary directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench.peers.postfix import Peer, PostfixError, PostfixOperator, postfix_version
from bench.peers.system import free_ports
from typer.testing import CliRunner

from mssante.cli import app
from mssante.config import load_operator_config
from mssante.environment.local import LocalEnvironment
from tests.conftest import (
    RunningEnvironment,
    free_base_port,
    start_environment,
    stop_environment,
)
from tests.e2e.mail import message, send, unique
from tests.e2e.test_queue_resilience import queue

REQUIRE_CLIENTS = os.environ.get("MSSANTE_REQUIRE_CLIENTS", "") not in ("", "0")
DOMAIN = "postfix.mssante.fr"
SECRETARIAT = f"secretariat@{DOMAIN}"
DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
README = Path(__file__).resolve().parents[2] / "README.md"


def require_postfix() -> str:
    """Postfix's version, or skip (fail when MSSANTE_REQUIRE_CLIENTS is set)."""
    reason = None
    try:
        version = postfix_version()
    except PostfixError as exc:
        reason = f"Postfix is not installed (Debian package postfix): {exc}"
    if reason is None and os.geteuid() != 0:
        reason = "Postfix instances are started as root"
    if reason is not None:
        if REQUIRE_CLIENTS:
            pytest.fail(f"{reason} and MSSANTE_REQUIRE_CLIENTS is set")
        pytest.skip(reason)
    return version


def start(data_dir: Path, base_port: int) -> RunningEnvironment:
    return start_environment(data_dir, base_port, retry_delays=(0.5, 1.0))


def issue_certificate(data_dir: Path, out: Path) -> str:
    """Postfix's MTA certificate, as the README has the operator issue it; its DN."""
    result = CliRunner().invoke(app, [
        "pki", "issue", "server", "--config", str(data_dir / "trust.toml"),
        "--cn", f"mta.{DOMAIN}", "--org", "CLINIQUE POSTFIX", "--ou", "440000004",
        "--state", "Loire-Atlantique (44)", "--ip", "127.0.0.1", "--out", str(out),
        "--name", "mta"])
    assert result.exit_code == 0, result.output
    (subject,) = re.findall(r"^  subject\s+(.+)$", result.stdout, re.MULTILINE)
    return subject.strip()


@dataclass
class Stack:
    env: RunningEnvironment
    postfix: PostfixOperator
    data_dir: Path
    base_port: int
    dn: str  # of Postfix's certificate

    def restart(self) -> None:
        stop_environment(self.env)
        self.env = start(self.data_dir, self.base_port)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require_postfix()
    data_dir = tmp_path / "mssante-data"
    base = free_base_port()
    (postfix_port,) = free_ports(1)
    # first start: the trust space's PKI exists, from which Postfix gets its certificate
    asyncio.run(LocalEnvironment(data_dir, base).prepare())
    dn = issue_certificate(data_dir, tmp_path / "postfix-certs")
    (data_dir / "outside-operators.toml").write_text(
        "[[operator]]\n"
        f'domain = "{DOMAIN}"\n'
        f'mta = "127.0.0.1:{postfix_port}"\n'
        f'dn = "{dn}"\n'
        'description = "CLINIQUE POSTFIX"\n', encoding="utf-8")
    running = start(data_dir, base)
    postfix = PostfixOperator(
        tmp_path / "postfix", domain=DOMAIN, port=postfix_port,
        cert_file=tmp_path / "postfix-certs" / "mta.pem",
        key_file=tmp_path / "postfix-certs" / "mta.key",
        ca_file=Path(running.ca_file),
        peers=[Peer(op["domain"], f"127.0.0.1:{op['smtp']['port']}", f"mta.{op['domain']}")
               for op in running.description["operators"]],
        mailboxes=["secretariat"])
    stack = Stack(running, postfix, data_dir, base, dn)
    try:
        postfix.start()
        yield stack
    finally:
        postfix.stop()
        stop_environment(stack.env)


def in_maildir(postfix: PostfixOperator, subject: str) -> bool:
    return any(m.header("Subject") == subject
               for m in postfix.maildir("secretariat").delivered())


def exchange(env: RunningEnvironment, postfix: PostfixOperator) -> tuple[str, str]:
    """One message each way; their subjects."""
    to_postfix = unique("vers Postfix")
    send(env, DUPONT, message(DUPONT, SECRETARIAT, to_postfix))
    env.wait_for(lambda: in_maildir(postfix, to_postfix), timeout=30,
                 what=f"{to_postfix!r} in Postfix's Maildir")
    from_postfix = unique("depuis Postfix")
    postfix.send(SECRETARIAT, [MARTIN], (
        f"From: Secrétariat <{SECRETARIAT}>\r\nTo: <{MARTIN}>\r\nSubject: {from_postfix}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{DOMAIN}>\r\n\r\nBonjour de Postfix\r\n").encode())
    env.wait_message(MARTIN, from_postfix, timeout=30)
    return to_postfix, from_postfix


def test_postfix_operator_exchanges_mail_both_ways_over_mutual_tls(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mssante.mail")
    env, postfix = stack.env, stack.postfix
    exchange(env, postfix)
    log = postfix.log()
    # mutual TLS both ways: Postfix verified our client certificate, and our server's
    assert re.search(r"postfix/smtpd\[\d+\]: Trusted TLS connection established from "
                     r"\S+\[127\.0\.0\.1\]: TLSv1\.[23]", log), log
    assert re.search(r"postfix/smtp\[\d+\]: Verified TLS connection established to "
                     r"127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.[23]", log), log
    assert "status=sent" in log
    (entry,) = [e for e in queue(env, "ch-xyz.mssante.fr") if e.recipient == SECRETARIAT]
    assert (entry.status, entry.last_error) == ("delivered", "")
    # our mail log names Postfix's certificate on both sides
    lines = [r.getMessage() for r in caplog.records if r.name == "mssante.mail"]
    assert any(f"to=<{SECRETARIAT}>" in line and "status=sent" in line
               and f'dn="{stack.dn}"' in line for line in lines), lines
    assert any(f"from=<{SECRETARIAT}>, to=<{MARTIN}>" in line and "status=accepted" in line
               and f'dn="{stack.dn}"' in line for line in lines), lines

    # a restart of the environment keeps the route and the whitelist entry
    stack.restart()
    config = load_operator_config(
        stack.data_dir / "operators" / "ch-xyz.mssante.fr" / "operator.toml")
    assert config.routes[DOMAIN] == f"127.0.0.1:{postfix.port}"
    assert stack.env.description["outside_operators"] == [
        {"domain": DOMAIN, "mta": f"127.0.0.1:{postfix.port}", "dn": stack.dn}]
    exchange(stack.env, postfix)


def test_readme_shows_the_postfix_configuration_the_test_runs() -> None:
    """The README's main.cf, transport and tls_policy lines are those of
    ``mssante_operator_config``, with the README's paths."""
    from bench.peers.postfix import mssante_operator_config

    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Another MTA as an operator"):]
    section = section[:section.index("\n## ", 3)]
    main_cf, files = mssante_operator_config(
        domain="clinique.mssante.fr", hostname="mta.clinique.mssante.fr",
        cert_file="/etc/postfix/mssante/mta.pem", key_file="/etc/postfix/mssante/mta.key",
        ca_file="/etc/postfix/mssante/root-ca.pem", mailbox_base="/var/mail/vhosts",
        peers=[Peer("ch-xyz.mssante.fr", "mta.ch-xyz.mssante.fr:25", "mta.ch-xyz.mssante.fr")],
        mailboxes=["secretariat"])
    for key, value in main_cf.items():
        if key in ("virtual_uid_maps", "virtual_gid_maps"):
            value = re.sub(r"\d+$", "", value)  # the README names the user to look up
        assert f"{key} = {value}".rstrip() in section, key
    for name, table in files.items():
        for line in table.splitlines():
            assert line in section, (name, line)
