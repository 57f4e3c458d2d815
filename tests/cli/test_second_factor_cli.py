"""`mssante operator user totp ...` and `... user contact` as an administrator types
them (typer's runner, a real store)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import stat
import time
from pathlib import Path

import pytest
from tests.cli.test_operator_cli import CONFIG, run

from mssante.auth import totp
from mssante.auth.throttle import FailedLogins
from mssante.config import load_operator_config
from mssante.store import open_store

PATIENT = "279035121518989@patient.mssante.fr"


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "operator.toml"
    path.write_text(CONFIG)
    assert run("operator", "user", "add", "marie.bernard", "--kind", "staff", "--name",
               "Marie Bernard", "-c", str(path))[0] == 0
    assert run("operator", "user", "add", PATIENT, "--kind", "patient", "--name",
               "Eve Noir", "-c", str(path))[0] == 0
    return str(path)


def check_code(config: str, login: str, code: str) -> bool:
    cfg = load_operator_config(Path(config))

    async def check() -> bool:
        store = await open_store(cfg.database_url)
        try:
            checker = totp.TotpChecker(store.logins, cfg.operator.totp_key_path,
                                       FailedLogins(0, 0, 900.0))
            return await checker.verify(login, code, "192.0.2.1")
        finally:
            await store.close()

    return asyncio.run(check())


def test_totp_enrol_prints_the_uri_and_the_secret_once(config: str) -> None:
    code, out = run("operator", "user", "totp", "enrol", "marie.bernard", "-c", config)
    assert code == 0, out
    uri = re.search(r"uri: (otpauth://totp/\S+)", out)
    secret = re.search(r"secret: ([A-Z2-7]+)", out)
    assert uri is not None and secret is not None
    assert f"secret={secret.group(1)}" in uri.group(1)
    assert "issuer=ch-xyz.mssante.fr" in uri.group(1)
    key_file = load_operator_config(Path(config)).operator.totp_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # the store holds it sealed: neither the base32 nor the raw bytes are in the file
    raw = base64.b32decode(secret.group(1) + "=" * (-len(secret.group(1)) % 8))
    database = Path(load_operator_config(Path(config)).operator.data_dir,
                    "operator.sqlite3").read_bytes()
    assert secret.group(1).encode() not in database and raw not in database
    # the authenticator application's code logs in
    assert check_code(config, "marie.bernard", totp.totp(raw, time.time()))
    _, shown = run("operator", "user", "contact", "marie.bernard", "--json", "-c", config)
    assert json.loads(shown)["totp"] is True


def test_totp_disable(config: str) -> None:
    _, out = run("operator", "user", "totp", "enrol", "marie.bernard", "-c", config)
    secret = re.search(r"secret: ([A-Z2-7]+)", out)
    assert secret is not None
    code, out = run("operator", "user", "totp", "disable", "marie.bernard", "-c", config)
    assert code == 0 and "TOTP disabled" in out
    raw = base64.b32decode(secret.group(1) + "=" * (-len(secret.group(1)) % 8))
    assert not check_code(config, "marie.bernard", totp.totp(raw, time.time()))
    _, shown = run("operator", "user", "contact", "marie.bernard", "--json", "-c", config)
    assert json.loads(shown)["totp"] is False


def test_totp_of_an_unknown_login_fails(config: str) -> None:
    code, out = run("operator", "user", "totp", "enrol", "nobody", "-c", config)
    assert code != 0 and "no person with login 'nobody'" in out
    assert run("operator", "user", "totp", "disable", "nobody", "-c", config)[0] != 0


def test_contact_sets_and_shows(config: str) -> None:
    code, out = run("operator", "user", "contact", PATIENT, "--json", "-c", config)
    assert code == 0
    assert json.loads(out) == {"login": PATIENT, "kind": "patient", "personal_address": None,
                               "notices": True, "login_code": True, "totp": False}
    code, out = run("operator", "user", "contact", PATIENT, "--address",
                    "Eve.Noir@Example.org", "--no-code", "-c", config)
    assert code == 0 and "personal_address: Eve.Noir@example.org" in out
    assert "login_code: off" in out and "notices: on" in out
    _, out = run("operator", "user", "contact", PATIENT, "--no-notices", "--json", "-c", config)
    assert json.loads(out)["notices"] is False
    assert json.loads(out)["personal_address"] == "Eve.Noir@example.org"
    _, out = run("operator", "user", "contact", PATIENT, "--no-address", "--code", "--json",
                 "-c", config)
    assert json.loads(out)["personal_address"] is None and json.loads(out)["login_code"]


def test_contact_refuses_an_address_of_the_trust_space(config: str) -> None:
    code, out = run("operator", "user", "contact", PATIENT, "--address",
                    "dupont@ch-xyz.mssante.fr", "-c", config)
    assert code != 0 and "outside the trust space" in " ".join(out.split())
    code, out = run("operator", "user", "contact", PATIENT, "--address", "not an address",
                    "-c", config)
    assert code != 0 and "--address" in out
    code, out = run("operator", "user", "contact", PATIENT, "--address", "a@example.org",
                    "--no-address", "-c", config)
    assert code != 0 and "not both" in out
    assert run("operator", "user", "contact", "nobody", "-c", config)[0] != 0
