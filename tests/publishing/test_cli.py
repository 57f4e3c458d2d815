"""`mssante operator mailbox add|set` and `mssante operator directory status|republish`,
as an administrator types them (typer's runner, a real SQLite store)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mssante.cli import app
from mssante.config import load_operator_config
from mssante.store import open_store

CONFIG = """
[operator]
domains = ["ch-xyz.mssante.fr"]
hostname = "mta.ch-xyz.mssante.fr"
data_dir = "data"
[tls]
cert_file = "mta.pem"
key_file = "mta.key"
ca_file = "root.pem"
[trust]
url = "https://127.0.0.1:1"
"""
DUPONT = "dupont@ch-xyz.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "operator.toml"
    path.write_text(CONFIG)
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["operator", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def ok(*args: str) -> str:
    code, out = run(*args)
    assert code == 0, out
    return out


def status(config: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(ok("directory", "status", "--json", "-c",
                                                  config))
    return rows


def fail_first(config: str, error: str) -> None:
    """What a running publisher does when the trust space refuses the first entry."""

    async def body() -> None:
        store = await open_store(load_operator_config(Path(config)).database_url)
        try:
            [entry] = await store.claim_directory_entries(now=time.time() + 1, limit=1,
                                                          lease=60)
            await store.directory_failed(entry.id, error=error, now=time.time())
        finally:
            await store.close()

    asyncio.run(body())


def test_mailboxes_are_queued_for_the_directory(config: str) -> None:
    ok("user", "add", DUPONT, "--kind", "professional", "--name", "Dr Dupont", "--rpps",
       "10102727017", "-c", config)
    ok("user", "add", "petit", "--kind", "social", "--name", "M. Petit", "-c", config)
    out = ok("mailbox", "add", DUPONT, "--type", "PER", "--owner", DUPONT, "--liste-rouge",
             "-c", config)
    assert "queued for the directory on Practitioner 810102727017" in out
    out = ok("mailbox", "add", CARDIO, "--type", "ORG", "--responsible", DUPONT,
             "--structure", "1750000001", "--service", "Cardiologie", "-c", config)
    assert "queued for the directory on Organization 1750000001" in out
    out = ok("mailbox", "add", "accueil@ch-xyz.mssante.fr", "--type", "ORG",
             "--responsible", DUPONT, "-c", config)
    assert "not published in the directory: no --structure" in out
    boxes = {b["address"]: b for b in json.loads(ok("mailbox", "list", "--json", "-c",
                                                       config))}
    assert boxes[DUPONT]["directory_id"] == "810102727017" and boxes[DUPONT]["liste_rouge"]
    assert boxes[CARDIO]["directory_id"] == "1750000001"
    assert boxes["accueil@ch-xyz.mssante.fr"]["directory_id"] is None

    ok("mailbox", "set", DUPONT, "--no-liste-rouge", "--description", "Dr Paul Dupont",
       "-c", config)
    ok("mailbox", "close", CARDIO, "-c", config)
    rows = status(config)
    assert [(r["address"], r["operation"], r["resource"], r["identifier"], r["state"])
            for r in rows] == [
        (DUPONT, "add", "Practitioner", "810102727017", "pending"),
        (CARDIO, "add", "Organization", "1750000001", "pending"),
        (DUPONT, "add", "Practitioner", "810102727017", "pending"),
        (CARDIO, "delete", "Organization", "1750000001", "pending")]
    assert all(r["attempts"] == 0 and r["next_attempt"] and r["last_error"] == ""
               for r in rows)

    # closed cardiologie@ and unpublished accueil@ are not republished: only dupont@
    assert "1 publication queued" in ok("directory", "republish", "-c", config)
    assert status(config)[-1]["address"] == DUPONT
    assert "1 publication queued" in ok("directory", "republish", DUPONT, "-c", config)
    code, out = run("directory", "republish", CARDIO, "-c", config)
    assert code == 1 and "is not published" in out
    code, out = run("directory", "republish", "nobody@ch-xyz.mssante.fr", "-c", config)
    assert code == 1 and "no mailbox" in out


def test_a_refusal_shows_in_the_status(config: str) -> None:
    ok("user", "add", DUPONT, "--kind", "professional", "--name", "Dr Dupont", "--rpps",
       "10102727017", "-c", config)
    ok("mailbox", "add", DUPONT, "--type", "PER", "--owner", DUPONT, "-c", config)
    fail_first(config, "HTTP 403: ch-xyz.mssante.fr is not bound to your certificate")
    [row] = status(config)
    assert row["state"] == "failed" and row["attempts"] == 1 and row["next_attempt"] == ""
    assert row["last_error"] == "HTTP 403: ch-xyz.mssante.fr is not bound to your certificate"
    out = ok("directory", "status", "-c", config)
    assert f"{row['id']} failed: HTTP 403: ch-xyz.mssante.fr is not bound to your " \
        "certificate" in out


@pytest.mark.parametrize("args,message", [
    (["mailbox", "add", "a@ch-xyz.mssante.fr", "--type", "PER", "--owner", "x",
      "--structure", "1750000001"], "only ORG and APP"),
    (["mailbox", "add", "a@ch-xyz.mssante.fr", "--type", "ORG", "--responsible", "x",
      "--structure", "FINESS"], "--structure: not a structure identifier"),
    (["mailbox", "set", "a@ch-xyz.mssante.fr"], "nothing to change"),
    (["mailbox", "set", "a@ch-xyz.mssante.fr", "--service", "x"], "no mailbox"),
])
def test_refusals(config: str, args: list[str], message: str) -> None:
    code, out = run(*args, "-c", config)
    assert code == 1 and message in " ".join(out.split()), out


def test_an_empty_status(config: str) -> None:
    assert "every publication was accepted" in ok("directory", "status", "-c", config)
    assert status(config) == []
