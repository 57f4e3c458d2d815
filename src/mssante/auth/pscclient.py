"""The operator as a Pro Santé Connect relying party: the web application logs a
professional in with the authorization code flow (OpenID Connect Core §3.1, PKCE per
RFC 7636), with the operator's own client at the provider (``[psc]`` client_id and
client_secret).

- ``start`` gives the provider's authorization URL (``scope=openid scope_all``,
  ``acr_values=eidas1``, as PSC asks) with a fresh ``state``, ``nonce`` and PKCE
  verifier; the caller keeps them for the browser it redirects (never in a URL).
- ``finish`` exchanges the code (client_secret_basic, the verifier), checks the ID
  token (signature, issuer, audience, expiry and the nonce: ``TokenChecker.id_token``)
  and returns the tokens; the access token is then checked as any other
  (``psctoken.token_login``), so that the web, IMAP and submission map a token to a
  person by the same rule.
- The endpoints come from the provider's discovery document (``TokenChecker.metadata``).
- Tokens are kept only in the memory of the process that logged the browser in (the
  MSSanté rule for software: never store the PSC token permanently); the store keeps
  of a PSC login only its sid, subject and iat (web/sessions.py, store/sessions.py).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mssante.auth.psctoken import ACR, ProviderUnavailable, TokenChecker, TokenLoginFailed
from mssante.pki.tls import client_context

SCOPE = "openid scope_all"  # MSSanté reference, "Pro Santé Connect"


@dataclass(frozen=True, slots=True)
class AuthorizationStart:
    """What the browser's login attempt must come back with."""

    url: str  # where to send the browser
    state: str
    nonce: str
    verifier: str  # PKCE code_verifier (RFC 7636 §4.1)
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class PscTokens:
    access_token: str
    id_token: str
    refresh_token: str
    id_claims: dict[str, Any]


class RelyingParty:
    """The operator's client at the provider; one per operator process."""

    def __init__(self, checker: TokenChecker, client_id: str, client_secret: str,
                 ca_file: Path, *, timeout: float = 10.0) -> None:
        self.checker = checker
        self.client_id = client_id
        self._secret = client_secret
        self._ca_file = ca_file
        self._timeout = timeout

    async def start(self, redirect_uri: str) -> AuthorizationStart:
        metadata = await self.checker.metadata()
        endpoint = str(metadata.get("authorization_endpoint", ""))
        if not endpoint.startswith("https://"):
            raise ProviderUnavailable("The provider names no HTTPS authorization endpoint")
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": redirect_uri, "scope": SCOPE, "acr_values": ACR,
            "state": state, "nonce": nonce, "code_challenge": challenge,
            "code_challenge_method": "S256"})
        separator = "&" if "?" in endpoint else "?"
        return AuthorizationStart(f"{endpoint}{separator}{query}", state, nonce, verifier,
                                  redirect_uri)

    async def finish(self, code: str, start: AuthorizationStart) -> PscTokens:
        """The tokens for the code the browser brought back; TokenLoginFailed when the
        provider refuses the code or gives tokens that do not check."""
        metadata = await self.checker.metadata()
        endpoint = str(metadata.get("token_endpoint", ""))
        if not endpoint.startswith("https://"):
            raise ProviderUnavailable("The provider names no HTTPS token endpoint")
        context = client_context(self._ca_file, check_hostname=False)
        try:
            async with httpx.AsyncClient(verify=context, timeout=self._timeout) as http:
                response = await http.post(
                    endpoint, auth=(self.client_id, self._secret),
                    data={"grant_type": "authorization_code", "code": code,
                          "redirect_uri": start.redirect_uri,
                          "code_verifier": start.verifier})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"The identity provider cannot be reached: {exc}") \
                from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            reason = data.get("error_description") if isinstance(data, dict) else None
            raise TokenLoginFailed(
                f"The provider refused the login: {reason or response.status_code}")
        access, id_token = data.get("access_token"), data.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise TokenLoginFailed("The provider gave no access or ID token")
        claims = await self.checker.id_token(id_token, start.nonce)
        refresh = data.get("refresh_token")
        return PscTokens(access, id_token, refresh if isinstance(refresh, str) else "", claims)

    async def end_session_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser to log out at the provider (RP-Initiated Logout
        1.0 §2); None when the provider names no end-session endpoint."""
        try:
            endpoint = str((await self.checker.metadata()).get("end_session_endpoint", ""))
        except ProviderUnavailable:
            return None
        if not endpoint.startswith("https://"):
            return None
        # §2: without the ID token (kept in one process's memory only, web/sessions.py)
        # the client_id names who asks for the post_logout_redirect_uri
        hint = {"id_token_hint": id_token} if id_token else {"client_id": self.client_id}
        query = urllib.parse.urlencode({**hint,
                                        "post_logout_redirect_uri": post_logout_redirect_uri})
        separator = "&" if "?" in endpoint else "?"
        return f"{endpoint}{separator}{query}"
