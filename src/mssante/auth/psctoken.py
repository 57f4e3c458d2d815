"""Who a Pro Santé Connect access token logs in as (SASL XOAUTH2 and OAUTHBEARER), for
IMAP and SMTP submission alike; no protocol here.

- The provider is found by discovery (``<issuer>/.well-known/openid-configuration``,
  OpenID Connect Discovery 1.0 §4), fetched over HTTPS verified against the trust
  space's root, so that the real PSC's URLs work as the simulated one's do. The
  document must name the configured issuer exactly (§4.3). It is kept
  ``DISCOVERY_TTL`` seconds.
- The signing keys (the JWKS at ``jwks_uri``) are kept until a token names a key id
  they do not hold: they are then fetched again, once, and never more often than every
  ``JWKS_MIN_INTERVAL`` seconds, so that a flood of forged key ids costs the provider
  nothing (the provider rotates keys: ``mssante psc rotate-key``).
- A token is taken only if its RS256 signature verifies with a published key, and its
  ``iss`` is the issuer, its ``aud`` the operator's client id (or configured audience),
  its ``exp`` not past (``leeway`` seconds of clock skew), its ``acr`` ``eidas1`` (an
  e-CPS or a card, MSSanté reference "Pro Santé Connect") and its ``typ`` ``Bearer``
  (an ID token is never an access token).
- The person is the idNatPs the token names (``SubjectNameID``, else
  ``preferred_username``), looked up among the operator's persons; the login the
  client gave, when it gave one, must be that person's login.
- A refusal says nothing of the token's content to the client: the reason is logged.
- The provider out of reach is ``ProviderUnavailable``: a temporary failure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from mssante.auth.identity import Identity
from mssante.pki.tls import client_context
from mssante.store.models import Person

ALGORITHM = "RS256"  # PSC signs with RS256
ACR = "eidas1"  # MSSanté reference, "Pro Santé Connect": acr_values=eidas1
ACCESS_TYPE = "Bearer"  # the ``typ`` claim of an access token (Keycloak, as PSC)
DISCOVERY_TTL = 3600.0  # seconds a discovery document is kept
JWKS_MIN_INTERVAL = 3.0  # seconds between two fetches of the keys on an unknown kid
MAX_TOKEN = 8192  # octets of a token looked at

log = logging.getLogger(__name__)


class TokenLoginFailed(Exception):
    """The token logs no one in; the message is safe to show the client."""


class ProviderUnavailable(TokenLoginFailed):
    """The provider's discovery document or keys could not be read: try again later."""


class TokenHolders(Protocol):
    """Where the persons a token names are found (the operator's store)."""

    async def person_by_id_nat_ps(self, id_nat_ps: str) -> Person | None: ...


class TokenChecker:
    """Checks access tokens of one provider for one audience; one per operator process."""

    def __init__(self, issuer: str, audience: str, ca_file: Path, *, leeway: float = 30.0,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.leeway = leeway
        self._ca_file = ca_file
        self._timeout = timeout
        self._clock = clock
        self._configuration: dict[str, Any] | None = None
        self._configuration_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = float("-inf")
        self._lock = asyncio.Lock()  # one fetch at a time
        self.key_fetches = 0  # how many times the JWKS was fetched (for the logs and tests)

    @property
    def configuration_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    async def id_nat_ps(self, token: str) -> str:
        """The idNatPs of the professional the access token names, or TokenLoginFailed."""
        kid = _kid_of(token)
        keys = await self._keys_for(kid)
        try:
            decoded = jwt.decode(token, keys, algorithms=[ALGORITHM])
            JWTClaimsRegistry(
                now=int(self._clock()), leeway=int(self.leeway),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
                acr={"essential": True, "value": ACR},
                typ={"essential": True, "value": ACCESS_TYPE},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            log.info("PSC token refused: %s", exc)
            raise TokenLoginFailed("Invalid token") from None
        claims = decoded.claims
        subject = claims.get("SubjectNameID") or claims.get("preferred_username")
        if not isinstance(subject, str) or not subject:
            raise TokenLoginFailed("The token names no professional")
        return subject

    async def _keys_for(self, kid: str) -> KeySet:
        """The published keys, fetched again if they lack ``kid`` and were not fetched
        in the last JWKS_MIN_INTERVAL seconds."""
        async with self._lock:
            keys = self._keys
            if keys is not None and _holds(keys, kid):
                return keys
            if keys is None or self._clock() - self._keys_at >= JWKS_MIN_INTERVAL:
                keys = await self._fetch_keys()
            if not _holds(keys, kid):
                log.info("PSC token refused: unknown key id %r", kid)
                raise TokenLoginFailed("Invalid token")
            return keys

    async def _fetch_keys(self) -> KeySet:
        configuration = await self._discovery()
        data = await self._get_json(str(configuration.get("jwks_uri", "")))
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(f"The provider's keys cannot be read: {exc}") from None
        self._keys, self._keys_at = keys, self._clock()
        self.key_fetches += 1
        return keys

    async def _discovery(self) -> dict[str, Any]:
        now = self._clock()
        if self._configuration is not None and now - self._configuration_at < DISCOVERY_TTL:
            return self._configuration
        document = await self._get_json(self.configuration_url)
        if document.get("issuer") != self.issuer or not document.get("jwks_uri"):
            raise ProviderUnavailable("The provider's discovery document names another "
                                      "issuer or no keys")
        self._configuration, self._configuration_at = document, now
        return document

    async def _get_json(self, url: str) -> dict[str, Any]:
        if not url.startswith("https://"):
            raise ProviderUnavailable("The provider is reached over HTTPS only")
        context = client_context(self._ca_file, check_hostname=False)
        try:
            async with httpx.AsyncClient(verify=context, timeout=self._timeout) as http:
                response = await http.get(url)
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("PSC provider unreachable at %s: %s", url, exc)
            raise ProviderUnavailable("The identity provider cannot be reached") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable("The provider answered something else than JSON")
        return data


def _kid_of(token: str) -> str:
    """The ``kid`` of a compact JWS's protected header (nothing verified yet)."""
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise TokenLoginFailed("Invalid token")
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        raise TokenLoginFailed("Invalid token") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or not kid:
        raise TokenLoginFailed("Invalid token")
    return kid


def _holds(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)


async def token_login(checker: TokenChecker, holders: TokenHolders, token: str,
                      login: str) -> Identity:
    """The person the access token names; ``login``, if the client gave one (the SASL
    ``user`` or authzid), must be that person's."""
    id_nat_ps = await checker.id_nat_ps(token)
    person = await holders.person_by_id_nat_ps(id_nat_ps)
    if person is None:
        log.info("PSC token of %s: no account here", id_nat_ps)
        raise TokenLoginFailed("No account here for this professional")
    if login and login.casefold() != person.login.casefold():
        log.info("PSC token of %s presented for the login %r", person.login, login)
        raise TokenLoginFailed("The token is not this user's")
    return Identity(person.login, person.kind.value)
