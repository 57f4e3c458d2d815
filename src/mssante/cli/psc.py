"""`mssante psc ...`: the Pro Santé Connect-like provider of the trust space."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from mssante.cli.common import fail, print_json
from mssante.cli.trust import ConfigOption, load_trust_space
from mssante.errors import MSSanteError, OAuthError
from mssante.pki.tls import client_context
from mssante.psc.clients import Clients
from mssante.psc.flow import token_flow
from mssante.psc.keys import SigningKeys

app = typer.Typer(no_args_is_help=True)


def _operator_for(env: dict[str, Any], id_nat_ps: str, domain: str | None) -> dict[str, Any]:
    """The operator whose client asks for the token: ``domain``, else the one where the
    professional has an account, else the first with a PSC client."""
    operators: list[dict[str, Any]] = [o for o in env.get("operators", [])
                                       if "psc_client" in o]
    if domain is not None:
        found = [o for o in operators if o["domain"] == domain]
        if not found:
            raise fail(f"--operator {domain}: no operator of the environment has that domain")
        return found[0]
    logins = [a["login"] for a in env.get("accounts", []) if a.get("id_nat_ps") == id_nat_ps]
    for operator in operators:
        if any(login.endswith("@" + operator["domain"]) for login in logins):
            return operator
    if not operators:
        raise fail("the environment has no PSC client (run a newer `mssante up`)")
    return operators[0]


@app.command()
def token(
    env: Annotated[Path, typer.Option("--env", help="The environment.json of `mssante up`.")],
    id_nat_ps: Annotated[str, typer.Option("--id-nat-ps",
                                           help="The professional's idNatPs (8 + RPPS).")],
    operator: Annotated[str | None, typer.Option(
        "--operator", help="The operator whose client asks (default: the professional's).")
    ] = None,
) -> None:
    """Log a professional in with PSC (simulated e-CPS approval) and print the tokens."""
    try:
        description: dict[str, Any] = json.loads(env.read_text(encoding="utf-8"))
        issuer = str(description["psc"]["issuer"])
        ca_file = Path(description["ca_file"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"{env}: not an environment.json with a PSC issuer ({exc})") from None
    client = _operator_for(description, id_nat_ps, operator)["psc_client"]

    async def run() -> dict[str, Any]:
        context = client_context(ca_file, None, None)
        async with httpx.AsyncClient(verify=context, timeout=30.0) as http:
            return await token_flow(http, issuer, client_id=client["client_id"],
                                    client_secret=client["client_secret"],
                                    redirect_uri=client["redirect_uri"], id_nat_ps=id_nat_ps)

    try:
        tokens = asyncio.run(run())
    except OAuthError as exc:
        raise fail(f"{exc.error}: {exc.description}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise fail(f"cannot reach the PSC provider at {issuer}: {exc}") from None
    print_json(tokens)


@app.command("rotate-key")
def rotate_key(config: ConfigOption) -> None:
    """Sign new tokens with a new key; the previous one stays published until the
    tokens it signed have expired."""
    try:
        settings, trust_space = load_trust_space(config)
        keys = SigningKeys(trust_space.psc_dir, settings.psc.access_token_lifetime)
        fresh = keys.rotate()
    except (MSSanteError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"signing key: {fresh.kid}")
    for key in keys.published():
        if key.retired_at is not None:
            until = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                  time.gmtime(key.retired_at + keys.token_lifetime))
            typer.echo(f"previous key {key.kid}: published until {until}")


@app.command("add-client")
def client_add(
    client_id: Annotated[str, typer.Argument(help="The client id, e.g. the operator's domain.")],
    redirect_uri: Annotated[list[str], typer.Option("--redirect-uri",
                                                    help="A redirect URI (repeatable).")],
    config: ConfigOption,
    logout_uri: Annotated[list[str] | None, typer.Option(
        "--post-logout-redirect-uri", help="Where logout may send back (repeatable).")] = None,
    name: Annotated[str, typer.Option("--name", help="Shown on the approval page.")] = "",
    backchannel: Annotated[str, typer.Option(
        "--backchannel-logout-uri", help="Where logout tokens are posted (HTTPS).")] = "",
) -> None:
    """Register an operator as a client (or update its URIs) and print its secret."""
    try:
        _, trust_space = load_trust_space(config)
        client = Clients(trust_space.psc_dir).register(
            client_id, tuple(redirect_uri), post_logout_redirect_uris=tuple(logout_uri or ()),
            name=name, backchannel_logout_uri=backchannel)
    except (MSSanteError, OSError) as exc:
        raise fail(str(exc)) from None
    print_json({"client_id": client.client_id, "client_secret": client.secret,
                "redirect_uris": list(client.redirect_uris)})
