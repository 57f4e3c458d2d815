"""`mssante psc token` against the provider of a running `mssante up` environment."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from tests.conftest import RunningEnvironment, environment_json
from typer.testing import CliRunner

from mssante.cli import app


def test_environment_json_names_the_provider_clients_and_idnatps(
        environment: RunningEnvironment) -> None:
    env = environment_json(environment)
    assert env["psc"]["issuer"] == f"{env['trust_space']['url']}/psc"
    ids = {a["login"]: a.get("id_nat_ps") for a in env["accounts"]}
    assert ids["dupont@ch-xyz.mssante.fr"] == "810102727017"
    assert ids["jean.martin@medecin.mssante.fr"] == "810003456789"
    assert ids["marie.bernard"] is None
    for operator in env["operators"]:
        client = operator["psc_client"]
        assert client["client_id"] == operator["domain"] and len(client["client_secret"]) >= 32


def test_psc_token_runs_the_whole_flow(environment: RunningEnvironment) -> None:
    env_file = environment.env.data_dir / "environment.json"
    result = CliRunner().invoke(app, ["psc", "token", "--env", str(env_file),
                                      "--id-nat-ps", "810003456789"])
    assert result.exit_code == 0, result.output
    tokens: dict[str, Any] = json.loads(result.stdout)
    assert {"access_token", "refresh_token", "expires_in", "id_token"} <= set(tokens)
    assert tokens["expires_in"] == 300
    env = environment_json(environment)
    issuer = env["psc"]["issuer"]
    with httpx.Client(verify=ssl.create_default_context(cafile=env["ca_file"])) as http:
        keys = KeySet.import_key_set(http.get(f"{issuer}/protocol/openid-connect/certs").json())
    claims = jwt.decode(tokens["access_token"], keys, algorithms=["RS256"]).claims
    assert claims["iss"] == issuer and claims["acr"] == "eidas1"
    assert claims["preferred_username"] == "810003456789"
    assert claims["aud"] == "medecin.mssante.fr"  # Dr Martin's operator asked


def test_psc_token_says_when_the_professional_is_unknown(
        environment: RunningEnvironment) -> None:
    env_file = environment.env.data_dir / "environment.json"
    result = CliRunner().invoke(app, ["psc", "token", "--env", str(env_file),
                                      "--id-nat-ps", "899999999999"])
    assert result.exit_code == 1
    shown = " ".join(result.output.split())
    assert "Identifiant national inconnu : 899999999999" in shown
    assert "l'annuaire santé" in shown
