"""`mssante operator user app-password create|list|revoke` as an administrator types
them (typer's runner, a real store): the password printed once and accepted by the
same check IMAP and submission make, listed without it, revoked by id."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from tests.cli.test_operator_cli import CONFIG, run

from mssante.auth import passwordlogin
from mssante.auth.throttle import FailedLogins
from mssante.config import load_operator_config
from mssante.domain.logins import PasswordPolicy, WayIn
from mssante.store import open_store


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "operator.toml"
    path.write_text(CONFIG)
    assert run("operator", "user", "add", "marie.bernard", "--kind", "staff", "--name",
               "Marie Bernard", "-c", str(path))[0] == 0
    assert run("operator", "user", "totp", "enrol", "marie.bernard", "-c", str(path))[0] == 0
    return str(path)


def opens_imap(config: str, login: str, password: str) -> bool:
    """What IMAP and submission ask (auth/passwordlogin.py), on the operator's store."""
    cfg = load_operator_config(Path(config))

    async def check() -> bool:
        store = await open_store(cfg.database_url)
        try:
            await passwordlogin.password_login(store, FailedLogins(0, 0, 900.0), login,
                                               password, "192.0.2.1", PasswordPolicy(),
                                               way=WayIn.MAIL_CLIENT)
            return True
        except passwordlogin.PasswordLoginFailed:
            return False
        finally:
            await store.close()

    return asyncio.run(check())


def test_create_list_revoke(config: str) -> None:
    code, out = run("operator", "user", "app-password", "create", "marie.bernard",
                    "--label", "Thunderbird du cabinet", "-c", config)
    assert code == 0, out
    assert "not shown again" in out
    found = re.search(r"password: ([a-z]{4} [a-z]{4} [a-z]{4} [a-z]{4})$", out, re.M)
    assert found is not None
    assert opens_imap(config, "marie.bernard", found.group(1))
    code, out = run("operator", "user", "app-password", "list", "marie.bernard", "--json",
                    "-c", config)
    assert code == 0, out
    (entry,) = json.loads(out)
    assert entry["label"] == "Thunderbird du cabinet" and entry["created"]
    assert entry["last_used_from"] == "192.0.2.1" and entry["last_used"]
    assert found.group(1) not in out and "argon2" not in out
    code, out = run("operator", "user", "app-password", "list", "marie.bernard", "-c",
                    config)
    assert code == 0 and "Thunderbird" in out and str(entry["id"]) in out
    code, out = run("operator", "user", "app-password", "revoke", "marie.bernard",
                    str(entry["id"]), "-c", config)
    assert code == 0, out
    assert not opens_imap(config, "marie.bernard", found.group(1))
    code, out = run("operator", "user", "app-password", "revoke", "marie.bernard",
                    str(entry["id"]), "-c", config)
    assert code == 1 and "has no application password" in out


def test_json_create_and_refusals(config: str) -> None:
    code, out = run("operator", "user", "app-password", "create", "marie.bernard",
                    "--label", "Téléphone", "--json", "-c", config)
    assert code == 0, out
    created = json.loads(out)
    assert created["label"] == "Téléphone"
    assert re.fullmatch(r"[a-z]{4}( [a-z]{4}){3}", created["password"])
    for args, text in ((["nobody", "--label", "x"], "no person"),
                       (["marie.bernard", "--label", " "], "--label"),
                       (["marie.bernard", "--label", "x" * 65], "at most 64")):
        code, out = run("operator", "user", "app-password", "create", *args, "-c", config)
        assert code == 1 and text in out, out
    code, out = run("operator", "user", "app-password", "list", "nobody", "-c", config)
    assert code == 1 and "no person" in out
