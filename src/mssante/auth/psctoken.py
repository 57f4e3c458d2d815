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
- A token of a PSC session that ended (``pscsessions.EndedSessions``: the provider's
  back-channel logout) logs no one in, even before its ``exp``.
- Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.6) are checked with the same
  keys: signature, ``iss``, ``aud`` the operator's client id, ``iat`` recent, ``exp``
  not past, the back-channel logout event, a ``sid`` or a ``sub``, no ``nonce``, the
  ``typ`` header ``logout+jwt`` when present, and a ``jti`` not seen before (by any
  process of the operator, before or after a restart: pscsessions.py).
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

from mssante.auth.identity import Identity, PscLogin
from mssante.auth.pscsessions import EndedSessions
from mssante.pki.tls import client_context
from mssante.store.models import Person

ALGORITHM = "RS256"  # PSC signs with RS256
ACR = "eidas1"  # MSSanté reference, "Pro Santé Connect": acr_values=eidas1
ACCESS_TYPE = "Bearer"  # the ``typ`` claim of an access token (Keycloak, as PSC)
DISCOVERY_TTL = 3600.0  # seconds a discovery document is kept
JWKS_MIN_INTERVAL = 3.0  # seconds between two fetches of the keys on an unknown kid
MAX_TOKEN = 8192  # octets of a token looked at
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"  # Back-Channel §2.4
LOGOUT_TYPE = "logout+jwt"  # Back-Channel Logout §2.4: the explicit type of the JWT
LOGOUT_MAX_AGE = 300.0  # seconds: an older logout token (by iat) is refused as a replay

log = logging.getLogger(__name__)


class TokenLoginFailed(Exception):
    """The token logs no one in; the message is safe to show the client."""


class ProviderUnavailable(TokenLoginFailed):
    """The provider's discovery document or keys could not be read: try again later."""


class LogoutRefused(Exception):
    """Not a valid logout token (Back-Channel Logout §2.6); the message may be shown."""


class TokenHolders(Protocol):
    """Where the persons a token names are found (the operator's store)."""

    async def person_by_id_nat_ps(self, id_nat_ps: str) -> Person | None: ...


class TokenChecker:
    """Checks access tokens of one provider for one audience; one per operator process."""

    def __init__(self, issuer: str, audience: str, ca_file: Path, *, leeway: float = 30.0,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time,
                 client_id: str = "", ended: EndedSessions | None = None) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.client_id = client_id or audience  # the ``aud`` of logout tokens
        # PSC sessions ended by back-channel logout, and the logout tokens taken: in the
        # operator's store when given one (pscsessions.py), else in this process only
        self.ended = ended if ended is not None else EndedSessions(clock=clock)
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
        return (await self.access(token)).subject

    async def access(self, token: str) -> PscLogin:
        """The PSC session and professional an access token stands for, or
        TokenLoginFailed (also when that session ended)."""
        claims = await self._verified(token, _kid_of(token), "PSC token", aud=self.audience,
                                      acr={"essential": True, "value": ACR},
                                      typ={"essential": True, "value": ACCESS_TYPE})
        if claims is None:
            raise TokenLoginFailed("Invalid token")
        subject = claims.get("SubjectNameID") or claims.get("preferred_username")
        if not isinstance(subject, str) or not subject:
            raise TokenLoginFailed("The token names no professional")
        sid, iat = claims.get("sid"), claims.get("iat")
        login = PscLogin(subject=subject, sid=sid if isinstance(sid, str) else "",
                         issued_at=float(iat) if isinstance(iat, int | float) else 0.0)
        if self.ended.ended(login):
            log.info("PSC token refused: its session %r ended", login.sid)
            raise TokenLoginFailed("The Pro Santé Connect session has ended")
        return login

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (endpoints), as checked and cached here."""
        return dict(await self._discovery())

    async def id_token(self, token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token the provider gave this operator as a relying party
        (OpenID Connect Core §3.1.3.7): signature, ``iss``, ``aud`` the client id,
        ``exp``, and the ``nonce`` of the request; TokenLoginFailed otherwise."""
        header = _header_of(token, TokenLoginFailed("Invalid ID token"))
        kid = header.get("kid")
        claims = await self._verified(token, kid if isinstance(kid, str) else "",
                                      "PSC ID token", aud=self.client_id,
                                      nonce={"essential": True, "value": nonce},
                                      iat={"essential": True})
        if claims is None:
            raise TokenLoginFailed("Invalid ID token")
        return claims

    async def logout(self, token: str) -> None:
        """Take a logout token the provider posted (Back-Channel Logout 1.0 §2.6) and end
        the session (``sid``), or every session of the person (``sub`` alone), in
        ``self.ended``; LogoutRefused when it is not a valid one."""
        header = _header_of(token, LogoutRefused("Not a JWT"))
        if header.get("typ", LOGOUT_TYPE) != LOGOUT_TYPE:
            raise LogoutRefused("Not a logout token (typ)")
        kid = header.get("kid")
        now = self._clock()
        claims = await self._verified(token, kid if isinstance(kid, str) else "",
                                      "PSC logout token", aud=self.client_id,
                                      iat={"essential": True}, jti={"essential": True})
        if claims is None:
            raise LogoutRefused("Invalid logout token")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
            raise LogoutRefused("The token carries no back-channel logout event")
        if "nonce" in claims:  # §2.4: a logout token is never an ID token
            raise LogoutRefused("A logout token has no nonce")
        sid, sub = claims.get("sid"), claims.get("sub")
        if not (isinstance(sid, str) and sid) and not (isinstance(sub, str) and sub):
            raise LogoutRefused("The token names neither a session nor a subject")
        if float(claims["iat"]) < now - LOGOUT_MAX_AGE - self.leeway:
            raise LogoutRefused("The logout token is too old")
        jti = str(claims["jti"])
        if not await self.ended.take_logout_id(jti, now + LOGOUT_MAX_AGE + 2 * self.leeway):
            raise LogoutRefused("This logout token was used already")
        if isinstance(sid, str) and sid:
            await self.ended.end_session(sid)
        else:
            await self.ended.end_subject(str(sub))
        log.info("PSC back-channel logout: session %r, subject %r ended", sid, sub)

    async def _verified(self, token: str, kid: str, what: str, *, aud: str,
                        **essential: Any) -> dict[str, Any] | None:
        """The claims of a token signed by the provider with key ``kid``, for ``aud``,
        not expired, with the ``essential`` claims; None otherwise (the reason is
        logged). ProviderUnavailable when the keys cannot be read."""
        keys = await self._keys_for(kid)
        if keys is None:
            log.info("%s refused: unknown key id %r", what, kid)
            return None
        try:
            decoded = jwt.decode(token, keys, algorithms=[ALGORITHM])
            JWTClaimsRegistry(
                now=int(self._clock()), leeway=int(self.leeway),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": aud},
                exp={"essential": True}, **essential,
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            log.info("%s refused: %s", what, exc)
            return None
        return dict(decoded.claims)

    async def _keys_for(self, kid: str) -> KeySet | None:
        """The published keys, fetched again if they lack ``kid`` and were not fetched
        in the last JWKS_MIN_INTERVAL seconds; None when they still lack it."""
        async with self._lock:
            keys = self._keys
            if keys is not None and _holds(keys, kid):
                return keys
            if keys is None or self._clock() - self._keys_at >= JWKS_MIN_INTERVAL:
                keys = await self._fetch_keys()
            return keys if _holds(keys, kid) else None

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
    kid = _header_of(token, TokenLoginFailed("Invalid token")).get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenLoginFailed("Invalid token")
    return kid


def _header_of(token: str, refusal: Exception) -> dict[str, Any]:
    """The protected header of a compact JWS (nothing verified yet), or ``refusal``."""
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise refusal
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        raise refusal from None
    if not isinstance(header, dict):
        raise refusal
    return header


def _holds(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)


async def token_login(checker: TokenChecker, holders: TokenHolders, token: str,
                      login: str) -> Identity:
    """The person the access token names; ``login``, if the client gave one (the SASL
    ``user`` or authzid), must be that person's."""
    psc = await checker.access(token)
    id_nat_ps = psc.subject
    person = await holders.person_by_id_nat_ps(id_nat_ps)
    if person is None:
        log.info("PSC token of %s: no account here", id_nat_ps)
        raise TokenLoginFailed("No account here for this professional")
    if login and login.casefold() != person.login.casefold():
        log.info("PSC token of %s presented for the login %r", person.login, login)
        raise TokenLoginFailed("The token is not this user's")
    return Identity(person.login, person.kind.value, psc=psc)
