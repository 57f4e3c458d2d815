"""outside-operators.toml: other MTAs joining `mssante up`, kept across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.config import load_operator_config
from mssante.environment.local import DEMO, LocalEnvironment
from mssante.environment.outside import OUTSIDE_FILE, load_outside_operators
from mssante.errors import ConfigError
from mssante.trustspace.service import TrustSpace
from tests.conftest import free_base_port, prepared_copy

DOMAIN = "clinique.mssante.fr"


def prepare(data_dir: Path, base: int) -> LocalEnvironment:
    env = LocalEnvironment(data_dir, base)
    asyncio.run(env.prepare())
    return env


def test_routes_and_whitelist_entry_survive_restarts(tmp_path: Path) -> None:
    data_dir, base = tmp_path / "data", free_base_port()
    prepared_copy(data_dir)  # what a first start made: the PKI, people, stores
    env = prepare(data_dir, base)
    assert env.description["outside_operators"] == []
    assert env.trust_space is not None
    cert = env.trust_space.pki.issue_server(f"mta.{DOMAIN}", organisation="CLINIQUE DU PARC",
                                            out_dir=tmp_path, name="mta")
    (data_dir / OUTSIDE_FILE).write_text(
        f'[[operator]]\ndomain = "{DOMAIN}"\nmta = "127.0.0.1:2525"\n'
        # as `openssl x509 -noout -subject` prints it
        f'dn = "subject=C = FR, O = CLINIQUE DU PARC, CN = mta.{DOMAIN}"\n', encoding="utf-8")
    for _ in range(2):  # each start writes the operators' configurations afresh
        env = prepare(data_dir, base)
        for demo in DEMO:
            config = load_operator_config(data_dir / "operators" / demo.domain / "operator.toml")
            assert config.routes[DOMAIN] == "127.0.0.1:2525"
        assert env.description["outside_operators"] == [
            {"domain": DOMAIN, "mta": "127.0.0.1:2525", "dn": cert.subject_dn}]
        whitelist = TrustSpace.create_or_load(data_dir / "trust").publisher.current()
        (entry,) = whitelist.entries_for(DOMAIN)
        assert entry.operator_dn == cert.subject_dn  # stored as the certificate says it
    # gone from the file: no route at the next start
    (data_dir / OUTSIDE_FILE).write_text("", encoding="utf-8")
    prepare(data_dir, base)
    config = load_operator_config(data_dir / "operators" / "ch-xyz.mssante.fr" / "operator.toml")
    assert DOMAIN not in config.routes


@pytest.mark.parametrize(("content", "message"), [
    ("[[operator]]\nmta = '127.0.0.1:25'\n", "operator 1: domain: missing"),
    ("[[operator]]\ndomain = 'gmail.com'\nmta = '127.0.0.1:25'\n", "trust-space namespace"),
    ("[[operator]]\ndomain = 'ch-xyz.mssante.fr'\nmta = '127.0.0.1:25'\n",
     "served by `mssante up` itself"),
    ("[[operator]]\ndomain = 'a.mssante.fr'\nmta = '127.0.0.1'\n", "mta: expected host:port"),
    ("[[operator]]\ndomain = 'a.mssante.fr'\nmta = 'h:25'\ndn = 'hello'\n",
     "dn: not a valid distinguished name"),
    ("[[operator]]\ndomain = 'a.mssante.fr'\nmta = 'h:25'\nport = 25\n", "unknown key 'port'"),
    ("[[operator]]\ndomain = 'a.mssante.fr'\nmta = 'h:25'\n"
     "[[operator]]\ndomain = 'A.mssante.fr'\nmta = 'h:26'\n", "declared twice"),
    ("[operator]\ndomain = 'a.mssante.fr'\n", "expected [[operator]] tables"),
    ("[[operator]\n", "not valid TOML"),
])
def test_a_wrong_file_is_refused_with_the_place_named(tmp_path: Path, content: str,
                                                      message: str) -> None:
    (tmp_path / OUTSIDE_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as caught:
        load_outside_operators(tmp_path, {"ch-xyz.mssante.fr"})
    assert str(tmp_path / OUTSIDE_FILE) in str(caught.value)
