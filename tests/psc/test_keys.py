"""Signing keys: rotation without breaking live tokens, kept private and across restarts;
the simulator switch and the settings; token expiry; registered clients."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from joserfc import jws, jwt
from typer.testing import CliRunner

from mssante.cli import app
from mssante.config import load_trust_space_config
from mssante.errors import ConfigError
from mssante.psc.clients import CLIENTS_FILE, Clients
from mssante.psc.keys import KEYS_FILE, SigningKeys
from mssante.trustspace.server import RunningTrustSpace
from mssante.trustspace.service import TrustSpace
from tests.psc.conftest import DUPONT, Provider, start_provider
from tests.psc.test_flow import introspect, login, served_keys, userinfo


@pytest.fixture
async def disabled(trust_space: TrustSpace) -> AsyncIterator[Provider]:
    async for p in start_provider(trust_space, simulator=False):
        yield p


@pytest.fixture
async def short_lived(trust_space: TrustSpace) -> AsyncIterator[Provider]:
    async for p in start_provider(trust_space, lifetime=1.0):
        yield p


async def test_a_token_signed_before_rotation_verifies_during_its_life(
        provider: Provider) -> None:
    async with provider.http() as http:
        before = await login(http, provider)
        old_kid = jws.extract_compact(before["access_token"].encode()).protected["kid"]
        # rotated by another process, as `mssante psc rotate-key` does
        fresh = await asyncio.to_thread(
            SigningKeys(provider.trust_space.psc_dir, 300.0).rotate)
        keys = await served_keys(http, provider)
        assert {k.kid for k in keys} == {old_kid, fresh.kid}
        jwt.decode(before["access_token"], keys, algorithms=["RS256"])  # still verifies
        assert (await userinfo(http, provider, before["access_token"])).status_code == 200
        assert (await introspect(http, provider, before["access_token"]))["active"]
        after = await login(http, provider)
        new_kid = jws.extract_compact(after["access_token"].encode()).protected["kid"]
        assert new_kid == fresh.kid != old_kid
        jwt.decode(after["id_token"], keys, algorithms=["RS256"])


def test_a_retired_key_leaves_the_jwks_once_its_tokens_expired(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path, token_lifetime=0.5)
    first = keys.signing_key().kid
    second = keys.rotate().kid
    assert [k["kid"] for k in keys.jwks()["keys"]] == [first, second]
    time.sleep(0.6)
    assert [k["kid"] for k in keys.jwks()["keys"]] == [keys.signing_key().kid]
    assert all("d" not in k for k in keys.jwks()["keys"])  # public halves only


async def test_keys_are_private_and_survive_a_restart(provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await login(http, provider)
    path = provider.trust_space.psc_dir / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(provider.trust_space.psc_dir.stat().st_mode) == 0o700
    await provider.running.stop()
    async with RunningTrustSpace(provider.trust_space, port=provider.running.port) as again:
        assert again.port == provider.running.port
        async with provider.http() as http:
            keys = await served_keys(http, provider)
            jwt.decode(tokens["access_token"], keys, algorithms=["RS256"])


async def test_simulator_off_lets_nobody_log_in(disabled: Provider) -> None:
    async with disabled.http() as http:
        page = await http.get(f"{disabled.issuer}/protocol/openid-connect/auth",
                              params={"client_id": disabled.client.client_id})
        posted = await http.post(f"{disabled.issuer}/protocol/openid-connect/auth",
                                 data={"client_id": disabled.client.client_id,
                                       "id_nat_ps": DUPONT, "action": "approve"})
        discovery = await http.get(f"{disabled.issuer}/.well-known/openid-configuration")
    for response in (page, posted):
        assert response.status_code == 403 and "location" not in response.headers
        assert "simulateur e-CPS est désactivé" in response.text
    assert discovery.status_code == 200  # the rest of the provider stays


async def test_an_expired_access_token_is_refused(short_lived: Provider) -> None:
    async with short_lived.http() as http:
        tokens = await login(http, short_lived)
        assert tokens["expires_in"] == 1
        await asyncio.sleep(2.1)  # whole seconds in exp
        assert (await userinfo(http, short_lived, tokens["access_token"])).status_code == 401
        assert (await introspect(http, short_lived, tokens["access_token"])) == {
            "active": False}


def test_rotate_key_command(trust_space: TrustSpace, tmp_path: Path) -> None:
    config = tmp_path / "trust.toml"
    config.write_text(f'[trust_space]\ndata_dir = "{trust_space.data_dir}"\n')
    keys = SigningKeys(trust_space.psc_dir, 300.0)
    first = keys.signing_key().kid
    result = CliRunner().invoke(app, ["psc", "rotate-key", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"previous key {first}: published until" in result.output
    assert keys.signing_key().kid != first


def test_the_simulator_is_off_unless_the_configuration_says_so(tmp_path: Path) -> None:
    config = tmp_path / "trust.toml"
    config.write_text('[trust_space]\ndata_dir = "trust"\n')
    assert load_trust_space_config(config).psc.simulator is False
    assert load_trust_space_config(config, {"MSSANTE_PSC__SIMULATOR": "true"}).psc.simulator
    config.write_text('[trust_space]\ndata_dir = "trust"\n[psc]\nsimulator = true\n'
                      "access_token_lifetime = 120\n")
    settings = load_trust_space_config(config).psc
    assert settings.simulator and settings.access_token_lifetime == 120.0
    config.write_text('[trust_space]\ndata_dir = "trust"\n[psc]\naccess_token_lifetime = 0\n')
    with pytest.raises(ConfigError, match=r"psc\.access_token_lifetime"):
        load_trust_space_config(config)


def test_a_registered_client_keeps_its_secret(tmp_path: Path) -> None:
    clients = Clients(tmp_path)
    first = clients.register("ch-xyz.mssante.fr", ("http://127.0.0.1/callback",))
    again = Clients(tmp_path).register("ch-xyz.mssante.fr", ("https://other/callback",))
    assert again.secret == first.secret and again.redirect_uris == ("https://other/callback",)
    assert stat.S_IMODE((tmp_path / CLIENTS_FILE).stat().st_mode) == 0o600
    assert Clients(tmp_path).get("ch-xyz.mssante.fr") == again
    assert not again.secret_matches(again.secret[:-1])
