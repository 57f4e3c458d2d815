"""The operator's cache of the provider's keys (auth/psctoken.py), against the real
PSC-like provider over HTTPS: a flood of unknown key ids does not make the operator
fetch the keys at each token."""

from __future__ import annotations

import asyncio

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from tests.psc.conftest import DUPONT, REDIRECT_URI, Provider, provider, template, trust_space

from mssante.auth.psctoken import JWKS_MIN_INTERVAL, TokenChecker, TokenLoginFailed
from mssante.psc.flow import token_flow

__all__ = ["provider", "template", "trust_space"]


async def test_unknown_key_ids_are_fetched_at_most_every_few_seconds(
        provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await token_flow(http, provider.issuer, client_id=provider.client.client_id,
                                  client_secret=provider.client.secret,
                                  redirect_uri=REDIRECT_URI, id_nat_ps=DUPONT)
    checker = TokenChecker(provider.issuer, provider.client.client_id,
                           provider.trust_space.pki.root_cert_file)
    assert await checker.id_nat_ps(tokens["access_token"]) == DUPONT
    assert checker.key_fetches == 1
    forger = RSAKey.generate_key(2048, private=True)

    def forged(kid: str) -> str:
        return jwt.encode({"alg": "RS256", "kid": kid}, {"sub": DUPONT}, forger)

    for n in range(5):
        with pytest.raises(TokenLoginFailed):
            await checker.id_nat_ps(forged(f"forged-{n}"))
    assert checker.key_fetches == 1  # within JWKS_MIN_INTERVAL: not fetched again
    await asyncio.sleep(JWKS_MIN_INTERVAL + 0.2)
    with pytest.raises(TokenLoginFailed):
        await checker.id_nat_ps(forged("forged-late"))
    assert checker.key_fetches == 2  # fetched once more, then refused
    assert await checker.id_nat_ps(tokens["access_token"]) == DUPONT
    assert checker.key_fetches == 2
