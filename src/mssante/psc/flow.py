"""The client side of the authorization code flow with PKCE, against a PSC-like provider
whose e-CPS approval is simulated: what ``mssante psc token`` runs, over HTTPS.

Discovery, the authorize request (S256 challenge, ``state``, ``nonce``,
``acr_values=eidas1``), the approval form posted back as a browser would (its hidden
fields read from the page), the redirect's ``code``, ``state`` and ``iss`` checked
(RFC 9207), then the code exchange with the client's secret (client_secret_basic).
"""

from __future__ import annotations

import html
import secrets
import urllib.parse
from html.parser import HTMLParser
from typing import Any

import httpx

from mssante.errors import OAuthError
from mssante.psc.provider import ACR, S256, s256

SCOPE = "openid scope_all"


class _FormReader(HTMLParser):
    """The first form of a page: its action and its named input fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None and not self._done:
            self.action = values.get("action", "")
        elif tag == "input" and self.action is not None and not self._done and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.action is not None:
            self._done = True


def pkce_pair() -> tuple[str, str]:
    """A fresh code verifier (RFC 7636 §4.1) and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    response = await http.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    if document.get("issuer") != issuer.rstrip("/"):
        raise OAuthError("invalid_issuer", f"the discovery document names issuer "
                         f"{document.get('issuer')!r}, not {issuer!r}")
    return document


def _error_of(response: httpx.Response) -> OAuthError:
    try:
        body = response.json()
        return OAuthError(str(body.get("error", "error")),
                          str(body.get("error_description", "")), response.status_code)
    except ValueError:
        return OAuthError("error", f"HTTP {response.status_code}", response.status_code)


async def approve(http: httpx.AsyncClient, configuration: dict[str, Any], *, client_id: str,
                  redirect_uri: str, id_nat_ps: str, challenge: str, state: str,
                  nonce: str) -> str:
    """Ask for a code, approve on the simulated e-CPS page, and return the code."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": SCOPE, "state": state, "nonce": nonce, "code_challenge": challenge,
              "code_challenge_method": S256, "acr_values": ACR}
    endpoint = str(configuration["authorization_endpoint"])
    page = await http.get(endpoint, params=params)
    if page.status_code != 200:
        raise OAuthError("authorize_failed", f"the authorize endpoint answered "
                         f"{page.status_code}: {_text_of(page.text)}", page.status_code)
    form = _FormReader()
    form.feed(page.text)
    if form.action is None:
        raise OAuthError("authorize_failed", "the authorize page has no approval form")
    fields = {**form.fields, "id_nat_ps": id_nat_ps, "action": "approve"}
    posted = await http.post(urllib.parse.urljoin(endpoint, form.action), data=fields)
    if posted.status_code not in (302, 303):
        raise OAuthError("login_failed", f"approval refused ({posted.status_code}): "
                         f"{_text_of(posted.text)}", posted.status_code)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        posted.headers["location"]).query))
    if "error" in query:
        raise OAuthError(query["error"], query.get("error_description", ""))
    if query.get("state") != state:
        raise OAuthError("invalid_state", "the redirect's state is not the one sent")
    if query.get("iss") != configuration["issuer"]:
        raise OAuthError("invalid_issuer", "the redirect names another issuer")  # RFC 9207
    return query["code"]


def _text_of(page: str) -> str:
    """The alert of a provider's page, or its start."""
    start = page.find('role="alert"')
    if start >= 0:
        text = page[page.find(">", start) + 1:]
        return html.unescape(" ".join(text[:text.find("</")].split()))
    return html.unescape(" ".join(page.split())[:200])


async def token_flow(http: httpx.AsyncClient, issuer: str, *, client_id: str,
                     client_secret: str, redirect_uri: str, id_nat_ps: str) -> dict[str, Any]:
    """The whole flow: the token endpoint's answer (access, refresh and ID tokens)."""
    configuration = await discover(http, issuer)
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    code = await approve(http, configuration, client_id=client_id, redirect_uri=redirect_uri,
                         id_nat_ps=id_nat_ps, challenge=challenge, state=state, nonce=nonce)
    response = await http.post(str(configuration["token_endpoint"]),
                               auth=(client_id, client_secret),
                               data={"grant_type": "authorization_code", "code": code,
                                     "redirect_uri": redirect_uri, "code_verifier": verifier})
    if response.status_code != 200:
        raise _error_of(response)
    tokens: dict[str, Any] = response.json()
    return tokens
