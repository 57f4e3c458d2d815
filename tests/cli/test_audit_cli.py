"""`mssante operator audit` against a real store: administrative changes leave entries
by the command line's user, `verify` passes, then names what was tampered with: an
entry's fields, and a log cut below what the witness file saw."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.cli.test_operator_cli import CONFIG
from typer.testing import CliRunner

from mssante.audit.checkpoint import Verifier
from mssante.audit.merkle import verify_inclusion
from mssante.cli import app
from mssante.config import load_operator_config
from mssante.operator.audittrail import AuditTrail
from mssante.store import open_store


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def mssante(*args: str) -> Done:
    """The command as typed, in this process (typer's runner)."""
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return Done(result.exit_code, result.stdout, " ".join(result.stderr.split()))


def seal(config: Path) -> None:
    """What the running operator does every second."""
    settings = load_operator_config(config)

    async def run() -> None:
        store = await open_store(settings.database_url)
        try:
            trail = AuditTrail(store, settings.audit, settings.operator)
            while await trail.seal() is not None:
                pass
        finally:
            await store.close()

    asyncio.run(run())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "operator.toml"
    path.write_text(CONFIG)
    for args in (("user", "add", "dupont@ch-xyz.mssante.fr", "--kind", "professional",
                  "--name", "Dr Paul Dupont", "--rpps", "10102727017",
                  "--password", "s3cret-s3cret-s3cret"),
                 ("mailbox", "add", "dupont@ch-xyz.mssante.fr", "--type", "PER",
                  "--owner", "dupont@ch-xyz.mssante.fr"),
                 ("user", "add", "marie.bernard", "--kind", "staff", "--name",
                  "Marie Bernard", "--password", "s3cret-s3cret-s3cret")):
        done = mssante("operator", *args, "--config", str(path))
        assert done.returncode == 0, done.stderr
    seal(path)
    return path


def test_changes_are_listed_and_the_log_verifies(config: Path) -> None:
    listed = mssante("operator", "audit", "list", "--json", "--config", str(config))
    entries = json.loads(listed.stdout)
    assert [e["action"] for e in entries] == [
        "admin.person.create", "admin.mailbox.create", "admin.person.create"]
    assert all(e["actor"].startswith("cli:") and e["seq"] is not None for e in entries)
    assert {"time", "action", "actor", "mailbox", "message_id"} <= set(entries[0])
    mine = json.loads(mssante("operator", "audit", "list", "--json", "--mailbox",
                              "dupont@ch-xyz.mssante.fr", "--config", str(config)).stdout)
    assert [e["action"] for e in mine] == ["admin.mailbox.create"]
    later = json.loads(mssante("operator", "audit", "list", "--json", "--since",
                               "2999-01-01T00:00:00Z", "--config", str(config)).stdout)
    assert later == []
    verified = mssante("operator", "audit", "verify", "--json", "--config", str(config))
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout) == {"ok": True, "entries": 3, "checkpoints": 1,
                                           "pending": 0, "problem": ""}
    # an inclusion proof that checks against the published key
    key = Verifier.parse(mssante("operator", "audit", "key", "--config", str(config))
                         .stdout)
    proof = json.loads(mssante("operator", "audit", "prove", "--inclusion", "1",
                               "--config", str(config)).stdout)
    signed = key.open(proof["checkpoint"])
    assert verify_inclusion(base64.b64decode(proof["leaf"]), 1, signed.size,
                            [base64.b64decode(h) for h in proof["path"]], signed.root)
    bad = mssante("operator", "audit", "list", "--since", "yesterday", "--config",
                  str(config))
    assert bad.returncode == 1 and "--since: not a time" in bad.stderr


def test_an_entry_changed_in_the_database_is_named(config: Path) -> None:
    database = config.parent / "data" / "operator.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit_entries SET actor = 'cli:someone-else' WHERE seq = 1")
    verified = mssante("operator", "audit", "verify", "--config", str(config))
    assert verified.returncode == 1
    assert "entry 1 (admin.mailbox.create at" in verified.stderr
    assert "was altered" in verified.stderr


def test_a_log_cut_below_the_witnessed_checkpoint_is_named(config: Path) -> None:
    """Someone able to write the database removes the last entries and checkpoint and
    re-signs nothing: the witness file outside the database still names the cut."""
    mssante("operator", "user", "delete", "marie.bernard", "--config", str(config))
    seal(config)
    database = config.parent / "data" / "operator.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM audit_entries WHERE seq >= 3")
        db.execute("DELETE FROM audit_checkpoints WHERE size > 3")
    verified = mssante("operator", "audit", "verify", "--config", str(config))
    assert verified.returncode == 1
    assert "checkpoint 4, witnessed in" in verified.stderr
    assert "is not in the database" in verified.stderr


def test_changes_of_a_persons_ways_in_are_listed_and_the_log_verifies(config: Path) -> None:
    """TOTP, the personal address, application passwords and the account password,
    changed by the command line: one entry each, by its user, none holding a secret."""
    login, path = "dupont@ch-xyz.mssante.fr", str(config)
    enrolled = mssante("operator", "user", "totp", "enrol", login, "--config", path)
    created = mssante("operator", "user", "app-password", "create", login, "--label",
                      "Thunderbird", "--json", "--config", path)
    password = json.loads(created.stdout)["password"]
    number = json.loads(created.stdout)["id"]
    for args in (("user", "totp", "disable", login),
                 ("user", "contact", login, "--address", "paul@example.org", "--no-notices"),
                 ("user", "app-password", "revoke", login, str(number)),
                 ("user", "app-password", "create", login, "--label", "Téléphone"),
                 ("user", "passwd", login, "--password", "a new password, long enough")):
        done = mssante("operator", *args, "--config", path)
        assert done.returncode == 0, done.stderr
    seal(config)
    verified = mssante("operator", "audit", "verify", "--json", "--config", path)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    listed = json.loads(mssante("operator", "audit", "list", "--json", "--mailbox", login,
                                "--config", path).stdout)
    mine = [e for e in listed if e["action"].startswith("admin.person.")]
    assert [(e["action"], e["detail"]) for e in mine] == [
        ("admin.person.totp.enrol", f"{login}: a new TOTP secret"),
        ("admin.person.app-password.create",
         f"{login}: application password {number} (Thunderbird)"),
        ("admin.person.totp.disable", f"{login}: TOTP secret forgotten"),
        ("admin.person.contact",
         f"{login}: personal address paul@example.org, new-message notices off"),
        ("admin.person.app-password.revoke",
         f"{login}: application password {number} (Thunderbird)"),
        ("admin.person.app-password.create",
         f"{login}: application password {number + 1} (Téléphone)"),
        ("admin.person.password",
         f"{login}: new account password; application passwords revoked: {number + 1}")]
    assert all(e["actor"].startswith("cli:") and e["source"].startswith("cli ")
               and e["mailbox"] == login and e["seq"] is not None for e in mine)
    secret = enrolled.stdout.split("secret: ")[1].split()[0]
    text = json.dumps(listed, ensure_ascii=False)
    for held in (secret, password, password.replace(" ", ""), "a new password"):
        assert held not in text
