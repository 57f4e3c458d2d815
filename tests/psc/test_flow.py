"""The PSC-like provider over real HTTPS: discovery, the code flow with PKCE, tokens."""

from __future__ import annotations

from mssante.psc.flow import token_flow
from tests.psc.conftest import DUPONT, REDIRECT_URI, Provider


async def test_smoke(provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await token_flow(http, provider.issuer, client_id=provider.client.client_id,
                                  client_secret=provider.client.secret,
                                  redirect_uri=REDIRECT_URI, id_nat_ps=DUPONT)
    print(tokens)
    assert tokens["access_token"]
