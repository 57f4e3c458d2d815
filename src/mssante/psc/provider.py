"""The protocol rules of the PSC-like provider, without HTTP (``app.py`` serves them).

Implementation notes:
- Authorization code flow only (RFC 6749 §4.1), with PKCE S256 required (RFC 7636;
  ``plain`` is refused, as the OAuth 2.0 Security BCP advises); ``scope`` must hold
  ``openid``; ``acr_values``, when given, must ask for ``eidas1``, the only level
  served. Redirect URIs are compared exactly with the registered ones.
- Errors about the client or its redirect URI are shown to the person, never sent to
  the URI (RFC 6749 §4.1.2.1); the others go back to the client's redirect URI.
- A code is used once. A second use is refused and ends the session it opened
  (RFC 6749 §4.1.2); so does the replay of a refresh token already exchanged: refresh
  tokens rotate at each use (OAuth 2.0 Security BCP §4.14.2).
- Access and ID tokens are RS256 JWTs signed by ``keys.SigningKeys`` and live
  ``access_token_lifetime`` seconds. Access tokens carry ``typ: Bearer`` and ID tokens
  ``typ: ID``, so that one is never taken for the other. Tokens name their session
  (``sid``): once it ended (logout, a replay), introspection answers inactive and
  userinfo refuses them, even before they expire.
- Codes, sessions and refresh tokens live in this process's memory: a restart of the
  trust space ends every session (the keys survive it, so access tokens issued before
  still verify by signature until they expire).
- The claims are read from the directory at each issue, so a token says what the
  directory says now; a professional removed from it can no longer refresh.
- When a session ends (logout, a replay), its client is told by a logout token posted
  to its ``backchannel_logout_uri`` (OpenID Connect Back-Channel Logout 1.0), before the
  answer to the request that ended it; the client's server is verified against the
  trust space's root. A client that cannot be reached is logged, not retried.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from mssante.config import PSCSettings
from mssante.errors import OAuthError
from mssante.pki.tls import client_context
from mssante.psc.claims import Referential, claims_of
from mssante.psc.clients import Client, Clients
from mssante.psc.keys import ALGORITHM, SigningKeys

ACR = "eidas1"  # MSSanté reference, "Pro Santé Connect": acr_values=eidas1
SCOPES = ("openid", "scope_all")
S256 = "S256"
VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
ACCESS_TYPE = "Bearer"
ID_TYPE = "ID"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"  # Back-Channel Logout §2.4
LOGOUT_TOKEN_LIFETIME = 120  # seconds
BACKCHANNEL_TIMEOUT = 5.0  # seconds for a client to take a logout token

log = logging.getLogger(__name__)

# RFC 6749 §4.1.2.1 and §5.2 error codes
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
INVALID_SCOPE = "invalid_scope"
ACCESS_DENIED = "access_denied"
INVALID_TOKEN = "invalid_token"  # RFC 6750 §3.1


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_verifier(verifier: str) -> bool:
    """43 to 128 unreserved characters (RFC 7636 §4.1)."""
    return 43 <= len(verifier) <= 128 and set(verifier) <= VERIFIER_CHARS


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str

    def hidden_fields(self) -> dict[str, str]:
        """The request as the approval form carries it back."""
        return {"response_type": "code", "client_id": self.client.client_id,
                "redirect_uri": self.redirect_uri, "scope": self.scope, "state": self.state,
                "nonce": self.nonce, "code_challenge": self.code_challenge,
                "code_challenge_method": S256, "acr_values": ACR}


@dataclass(slots=True)
class _Code:
    request: AuthorizationRequest
    sub: str
    sid: str
    auth_time: int
    expires_at: float


@dataclass(slots=True)
class _Session:
    sub: str
    client_id: str
    auth_time: int
    expires_at: float  # when its last refresh token expires
    ended: bool = False


@dataclass(slots=True)
class _Refresh:
    sid: str
    client_id: str
    scope: str
    nonce: str
    expires_at: float


@dataclass
class Provider:
    issuer: str
    keys: SigningKeys
    clients: Clients
    referential: Referential
    settings: PSCSettings
    ca_file: Path | None = None  # verifies the clients' back-channel logout servers
    _codes: dict[str, _Code] = field(default_factory=dict)
    _used_codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    _refresh: dict[str, _Refresh] = field(default_factory=dict)
    _used_refresh: dict[str, tuple[str, float]] = field(default_factory=dict)
    _sessions: dict[str, _Session] = field(default_factory=dict)

    # -- authorization endpoint -------------------------------------------------------

    def client_and_redirect(self, params: Mapping[str, str]) -> tuple[Client, str]:
        """The client and its redirect URI, or OAuthError to show to the person."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise OAuthError(INVALID_CLIENT, "unknown client_id")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuthError(INVALID_REQUEST, "redirect_uri is not registered for this client")
        return client, redirect_uri

    def authorization_request(self, params: Mapping[str, str], client: Client,
                              redirect_uri: str) -> AuthorizationRequest:
        """The checked request, or OAuthError to send back to the redirect URI."""
        if params.get("response_type") != "code":
            raise OAuthError(UNSUPPORTED_RESPONSE_TYPE, "only response_type=code is served")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            raise OAuthError(INVALID_SCOPE, "scope must hold openid")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise OAuthError(INVALID_SCOPE, f"unknown scope {unknown[0]}")
        challenge = params.get("code_challenge", "")
        if not challenge:
            raise OAuthError(INVALID_REQUEST, "PKCE is required: code_challenge is missing")
        if params.get("code_challenge_method") != S256:
            raise OAuthError(INVALID_REQUEST, "code_challenge_method must be S256")
        if len(challenge) != 43 or not set(challenge) <= VERIFIER_CHARS:
            raise OAuthError(INVALID_REQUEST, "code_challenge is not an S256 challenge")
        acr_values = params.get("acr_values")
        if acr_values is not None and ACR not in acr_values.split():
            raise OAuthError(INVALID_REQUEST, f"acr_values must ask for {ACR}")
        return AuthorizationRequest(client, redirect_uri, " ".join(scopes),
                                    params.get("state", ""), params.get("nonce", ""),
                                    challenge)

    async def approve(self, request: AuthorizationRequest, id_nat_ps: str) -> str | None:
        """The e-CPS approval of ``id_nat_ps``: a new code, or None for a professional
        the directory does not know."""
        if await self.referential.get_practitioner(id_nat_ps) is None:
            return None
        now = time.time()
        self._purge(now)
        sid = str(uuid.uuid4())
        self._sessions[sid] = _Session(id_nat_ps, request.client.client_id, int(now),
                                       now + self.settings.refresh_token_lifetime)
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(request, id_nat_ps, sid, int(now),
                                  now + self.settings.code_lifetime)
        return code

    # -- token endpoint ---------------------------------------------------------------

    def authenticate_client(self, form: Mapping[str, str],
                            basic: tuple[str, str] | None) -> Client:
        """client_secret_basic or client_secret_post (RFC 6749 §2.3.1), not both."""
        if basic is not None and ("client_secret" in form):
            raise OAuthError(INVALID_REQUEST, "one client authentication method at a time")
        client_id, secret = basic if basic is not None else (
            form.get("client_id", ""), form.get("client_secret", ""))
        client = self.clients.get(client_id)
        if client is None or not secret or not client.secret_matches(secret):
            raise OAuthError(INVALID_CLIENT, "client authentication failed", 401)
        if "client_id" in form and form["client_id"] != client.client_id:
            raise OAuthError(INVALID_CLIENT, "client_id does not match the authentication",
                             401)
        return client

    async def token(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if grant == "authorization_code":
            return await self._code_grant(client, form)
        if grant == "refresh_token":
            return await self._refresh_grant(client, form)
        raise OAuthError(UNSUPPORTED_GRANT_TYPE, f"grant_type {grant!r} is not served")

    async def _code_grant(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        now = time.time()
        self._purge(now)
        code = form.get("code", "")
        used = self._used_codes.get(code)
        if used is not None:
            await self._end(used[0])  # RFC 6749 §4.1.2: revoke what the code gave
            raise OAuthError(INVALID_GRANT, "authorization code already used")
        found = self._codes.pop(code, None)
        if found is None or found.expires_at <= now:
            raise OAuthError(INVALID_GRANT, "unknown or expired authorization code")
        self._used_codes[code] = (found.sid, now + self.settings.refresh_token_lifetime)
        if found.request.client.client_id != client.client_id:
            await self._end(found.sid)
            raise OAuthError(INVALID_GRANT, "the code was issued to another client")
        if form.get("redirect_uri", "") != found.request.redirect_uri:
            await self._end(found.sid)
            raise OAuthError(INVALID_GRANT, "redirect_uri differs from the authorization's")
        verifier = form.get("code_verifier", "")
        if not valid_verifier(verifier) or not secrets.compare_digest(
                s256(verifier), found.request.code_challenge):
            await self._end(found.sid)
            raise OAuthError(INVALID_GRANT, "code_verifier does not match the code_challenge")
        return await self._issue(client, found.sid, found.request.scope, found.request.nonce)

    async def _refresh_grant(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        now = time.time()
        self._purge(now)
        token = form.get("refresh_token", "")
        used = self._used_refresh.get(token)
        if used is not None:
            await self._end(used[0])  # a replayed refresh token: someone else holds it
            raise OAuthError(INVALID_GRANT, "refresh token already used; session ended")
        found = self._refresh.pop(token, None)
        if found is None or found.expires_at <= now:
            raise OAuthError(INVALID_GRANT, "unknown or expired refresh token")
        self._used_refresh[token] = (found.sid, found.expires_at)
        if found.client_id != client.client_id:
            await self._end(found.sid)
            raise OAuthError(INVALID_GRANT, "the refresh token was issued to another client")
        session = self._sessions.get(found.sid)
        if session is None or session.ended:
            raise OAuthError(INVALID_GRANT, "the session has ended")
        scope = form.get("scope", found.scope)
        if not set(scope.split()) <= set(found.scope.split()):
            raise OAuthError(INVALID_SCOPE, "a refresh cannot widen the scope")
        return await self._issue(client, found.sid, scope, found.nonce)

    async def _issue(self, client: Client, sid: str, scope: str, nonce: str
                     ) -> dict[str, Any]:
        session = self._sessions.get(sid)
        if session is None or session.ended:
            raise OAuthError(INVALID_GRANT, "the session has ended")
        person = await claims_of(self.referential, session.sub)
        if person is None:
            await self._end(sid)
            raise OAuthError(INVALID_GRANT, "the professional is no longer in the directory")
        if session.ended:  # ended while the directory was read (a replay, a logout)
            raise OAuthError(INVALID_GRANT, "the session has ended")
        now = int(time.time())
        lifetime = int(self.settings.access_token_lifetime)
        common = {"iss": self.issuer, "sub": session.sub, "aud": client.client_id,
                  "azp": client.client_id, "iat": now, "exp": now + lifetime,
                  "auth_time": session.auth_time, "acr": ACR, "sid": sid}
        access = {**common, "jti": str(uuid.uuid4()), "typ": ACCESS_TYPE, "scope": scope,
                  "SubjectNameID": person["SubjectNameID"],
                  "preferred_username": person["preferred_username"]}
        id_claims = {**common, "jti": str(uuid.uuid4()), "typ": ID_TYPE, **person}
        if nonce:
            id_claims["nonce"] = nonce
        refresh = secrets.token_urlsafe(32)
        refresh_life = self.settings.refresh_token_lifetime
        self._refresh[refresh] = _Refresh(sid, client.client_id, scope, nonce,
                                          time.time() + refresh_life)
        session.expires_at = time.time() + refresh_life
        return {"access_token": self.sign(access), "token_type": "Bearer",
                "expires_in": lifetime, "refresh_token": refresh,
                "refresh_expires_in": int(refresh_life), "id_token": self.sign(id_claims),
                "scope": scope, "session_state": sid}

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        key = self.keys.signing_key()
        return jwt.encode({"alg": ALGORITHM, "typ": typ, "kid": key.kid}, claims, key)

    # -- tokens presented back --------------------------------------------------------

    def verify(self, token: str, *, typ: str, check_expiry: bool = True) -> dict[str, Any]:
        """The claims of a token this provider signed, of type ``typ``, within its life
        and of a session that has not ended; else OAuthError(invalid_token, 401)."""
        try:
            decoded = jwt.decode(token, self.keys.verification_keys(), algorithms=[ALGORITHM])
            options: dict[str, Any] = {"iss": {"essential": True, "value": self.issuer},
                                       "sub": {"essential": True},
                                       "typ": {"essential": True, "value": typ}}
            checked = dict(decoded.claims)
            if check_expiry:
                options["exp"] = {"essential": True}
            else:
                checked.pop("exp", None)
            JWTClaimsRegistry(**options).validate(checked)
        except (JoseError, ValueError) as exc:
            raise OAuthError(INVALID_TOKEN, f"token refused: {exc}", 401) from None
        claims = dict(decoded.claims)
        if check_expiry and not self.session_active(str(claims.get("sid", ""))):
            raise OAuthError(INVALID_TOKEN, "token refused: its session has ended", 401)
        return claims

    def session_active(self, sid: str) -> bool:
        session = self._sessions.get(sid)
        return session is not None and not session.ended

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        claims = self.verify(access_token, typ=ACCESS_TYPE)
        person = await claims_of(self.referential, str(claims["sub"]))
        if person is None:
            raise OAuthError(INVALID_TOKEN, "the professional is no longer in the directory",
                             401)
        return {"sub": claims["sub"], **person}

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 §2.2: what the token is, or only ``active: false``."""
        refresh = self._refresh.get(token)
        if refresh is not None:
            session = self._sessions.get(refresh.sid)
            if refresh.expires_at > time.time() and session is not None and not session.ended:
                return {"active": True, "token_type": "Refresh", "client_id": refresh.client_id,
                        "sub": session.sub, "username": session.sub, "scope": refresh.scope,
                        "exp": int(refresh.expires_at), "iss": self.issuer, "sid": refresh.sid}
            return {"active": False}
        try:
            claims = self.verify(token, typ=ACCESS_TYPE)
        except OAuthError:
            return {"active": False}
        return {"active": True, "token_type": ACCESS_TYPE, "client_id": claims["azp"],
                "username": claims["preferred_username"], "scope": claims["scope"],
                **{k: claims[k] for k in ("sub", "aud", "iss", "exp", "iat", "jti", "acr", "sid",
                                          "SubjectNameID", "preferred_username")}}

    # -- sessions ---------------------------------------------------------------------

    async def end_session(self, id_token_hint: str) -> dict[str, Any]:
        """End the session an ID token names (OIDC RP-Initiated Logout); an expired ID
        token still names it. Returns the token's claims."""
        claims = self.verify(id_token_hint, typ=ID_TYPE, check_expiry=False)
        await self._end(str(claims.get("sid", "")))
        return claims

    async def _end(self, sid: str) -> None:
        """End the session: its refresh tokens go, its access tokens become inactive,
        and its client is told (once)."""
        for token in [t for t, r in self._refresh.items() if r.sid == sid]:
            del self._refresh[token]
        session = self._sessions.get(sid)
        if session is None or session.ended:
            return
        session.ended = True
        await self._backchannel_logout(session, sid)

    async def _backchannel_logout(self, session: _Session, sid: str) -> None:
        client = self.clients.get(session.client_id)
        if client is None or not client.backchannel_logout_uri:
            return
        now = int(time.time())
        token = self.sign({"iss": self.issuer, "aud": client.client_id, "iat": now,
                           "exp": now + LOGOUT_TOKEN_LIFETIME, "jti": str(uuid.uuid4()),
                           "sub": session.sub, "sid": sid, "events": {LOGOUT_EVENT: {}}},
                          typ="logout+jwt")
        verify = client_context(self.ca_file) if self.ca_file is not None else True
        try:
            async with httpx.AsyncClient(verify=verify, timeout=BACKCHANNEL_TIMEOUT) as http:
                response = await http.post(client.backchannel_logout_uri,
                                           data={"logout_token": token})
        except httpx.HTTPError as exc:
            log.warning("back-channel logout of %s to %s failed: %s", client.client_id,
                        client.backchannel_logout_uri, exc)
            return
        if response.status_code not in (200, 204):
            log.warning("back-channel logout of %s: %s answered %d", client.client_id,
                        client.backchannel_logout_uri, response.status_code)

    def _purge(self, now: float) -> None:
        """Forget what expired: codes, used codes and refresh tokens, and sessions whose
        tokens all expired."""
        for table in (self._used_codes, self._used_refresh):
            for key in [k for k, (_, expires) in table.items() if expires <= now]:
                del table[key]
        for code in [c for c, v in self._codes.items() if v.expires_at <= now]:
            del self._codes[code]
        for token in [t for t, v in self._refresh.items() if v.expires_at <= now]:
            del self._refresh[token]
        grace = self.settings.access_token_lifetime
        for sid in [s for s, v in self._sessions.items() if v.expires_at + grace <= now]:
            del self._sessions[sid]
