"""The PSC-like provider's HTTP routes, mounted by the trust space under ``/psc``.

Paths follow PSC's Keycloak (``<issuer>/protocol/openid-connect/...``); clients find
them by discovery (``<issuer>/.well-known/openid-configuration``, and PSC's
``wallet-openid-configuration`` name for the same document).

Invariants:
- Form bodies are ``application/x-www-form-urlencoded``, at most ``MAX_FORM`` bytes; a
  parameter given twice is refused (RFC 6749 §3.1).
- Token, introspection and userinfo answers are never cached (RFC 6749 §5.1).
- The approval page may not be framed (clickjacking of the approval button).
- When ``settings.simulator`` is off, the authorize endpoint shows that the simulator
  is disabled and nothing else: nobody can log in.
"""

from __future__ import annotations

import base64
import binascii
import html
import urllib.parse
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from mssante.errors import OAuthError
from mssante.psc.provider import (
    ACCESS_DENIED,
    ACR,
    INVALID_REQUEST,
    INVALID_TOKEN,
    S256,
    SCOPES,
    AuthorizationRequest,
    Provider,
)

MAX_FORM = 64 * 1024
AUTH_PATH = "/protocol/openid-connect/auth"
TOKEN_PATH = "/protocol/openid-connect/token"
USERINFO_PATH = "/protocol/openid-connect/userinfo"
INTROSPECT_PATH = "/protocol/openid-connect/token/introspect"
JWKS_PATH = "/protocol/openid-connect/certs"
LOGOUT_PATH = "/protocol/openid-connect/logout"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                           "frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer"}
ID_FIELD = "id_nat_ps"
CLAIMS = ("sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "sid",
          "SubjectNameID", "preferred_username", "given_name", "family_name", "SubjectRefPro")


def discovery(issuer: str) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3, and RFC 8414 for introspection."""
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTH_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "userinfo_endpoint": issuer + USERINFO_PATH,
        "introspection_endpoint": issuer + INTROSPECT_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "end_session_endpoint": issuer + LOGOUT_PATH,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "userinfo_signing_alg_values_supported": ["none"],
        "scopes_supported": list(SCOPES),
        "acr_values_supported": [ACR],
        "claims_supported": list(CLAIMS),
        "code_challenge_methods_supported": [S256],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body, each parameter once; OAuthError otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError(INVALID_REQUEST, "the body must be application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise OAuthError(INVALID_REQUEST, "the body is too large", 413)
    return _single(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                          keep_blank_values=True))


def _single(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise OAuthError(INVALID_REQUEST, f"parameter {name} given more than once")
        out[name] = value
    return out


def _basic(request: Request) -> tuple[str, str] | None:
    """client_secret_basic credentials (RFC 6749 §2.3.1: form-urlencoded, then Basic)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise OAuthError(INVALID_TOKEN, "a Bearer access token is required", 401)
    return token.strip()


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        if exc.error == INVALID_TOKEN:  # RFC 6750 §3
            headers["WWW-Authenticate"] = (f'Bearer error="{exc.error}", '
                                           f'error_description="{exc.description}"')
        else:
            headers["WWW-Authenticate"] = 'Basic realm="psc"'
    return JSONResponse({"error": exc.error, "error_description": exc.description},
                        status_code=exc.status, headers=headers)


def _redirect(uri: str, params: Mapping[str, str]) -> RedirectResponse:
    separator = "&" if urllib.parse.urlsplit(uri).query else "?"
    return RedirectResponse(uri + separator + urllib.parse.urlencode(params), status_code=303)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = f"""<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} — Pro Santé Connect (simulé)</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; }}
label {{ display: block; font-weight: bold; margin-top: 1rem; }}
input {{ font-size: 1.1rem; padding: .4rem; width: 100%; box-sizing: border-box; }}
button {{ font-size: 1.1rem; padding: .5rem 1rem; margin-top: 1rem; }}
[role=alert] {{ border: 2px solid #a00; padding: .5rem; color: #a00; }}
</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
{body}
</main>
</body>
</html>
"""
    return HTMLResponse(text, status_code=status, headers=PAGE_HEADERS)


def _approval_page(action: str, request: AuthorizationRequest, *, id_nat_ps: str = "",
                   error: str = "", status: int = 200) -> HTMLResponse:
    hidden = "\n".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                       for k, v in request.hidden_fields().items())
    alert = (f'<p role="alert" id="error">{html.escape(error)}</p>' if error else "")
    invalid = ' aria-invalid="true"' if error else ""
    client = html.escape(request.client.name or request.client.client_id)
    body = f"""<p>Simulateur de l'e-CPS : l'application <strong>{client}</strong> demande à
vous identifier avec Pro Santé Connect (niveau {ACR}).</p>
{alert}
<form method="post" action="{html.escape(action)}">
{hidden}
<label for="{ID_FIELD}">Identifiant e-CPS</label>
<p id="{ID_FIELD}-hint">Votre identifiant national (idNatPs) : 8 suivi du numéro RPPS.</p>
<input id="{ID_FIELD}" name="{ID_FIELD}" value="{html.escape(id_nat_ps)}" required
       inputmode="numeric" autocomplete="username"
       aria-describedby="{ID_FIELD}-hint{' error' if error else ''}"{invalid}>
<button type="submit" name="action" value="approve">Se connecter</button>
<button type="submit" name="action" value="deny" formnovalidate>Refuser</button>
</form>
"""
    return _page("Connexion avec Pro Santé Connect", body, status)


def _error_page(exc: OAuthError) -> HTMLResponse:
    return _page("Connexion impossible",
                 f'<p role="alert">{html.escape(exc.description)} ({html.escape(exc.error)})</p>',
                 exc.status if exc.status >= 400 else 400)


def create_psc_router(provider: Provider, *, simulator: bool) -> APIRouter:
    """The provider's routes, relative to the issuer's path."""
    router = APIRouter()
    issuer = provider.issuer
    action = urllib.parse.urlsplit(issuer).path + AUTH_PATH

    @router.get("/.well-known/openid-configuration")
    @router.get("/.well-known/wallet-openid-configuration")
    def configuration() -> JSONResponse:
        return JSONResponse(discovery(issuer))

    @router.get(JWKS_PATH)
    def jwks() -> JSONResponse:
        return JSONResponse(provider.keys.jwks(), media_type="application/jwk-set+json",
                            headers={"Cache-Control": "no-cache"})

    async def authorize_request(params: Mapping[str, str]
                                ) -> AuthorizationRequest | Response:
        try:
            client, redirect_uri = provider.client_and_redirect(params)
        except OAuthError as exc:
            return _error_page(exc)  # never redirected: RFC 6749 §4.1.2.1
        try:
            return provider.authorization_request(params, client, redirect_uri)
        except OAuthError as exc:
            return _redirect(redirect_uri, {"error": exc.error,
                                            "error_description": exc.description,
                                            "state": params.get("state", ""), "iss": issuer})

    def disabled() -> HTMLResponse:
        return _page("Simulateur désactivé",
                     '<p role="alert">Le simulateur e-CPS est désactivé sur cet espace de '
                     "confiance (<code>[psc] simulator = false</code>) : aucune connexion "
                     "n'est possible ici.</p>", 403)

    @router.get(AUTH_PATH)
    async def authorize(request: Request) -> Response:
        if not simulator:
            return disabled()
        try:
            params = _single(list(request.query_params.multi_items()))
        except OAuthError as exc:
            return _error_page(exc)
        checked = await authorize_request(params)
        if isinstance(checked, Response):
            return checked
        return _approval_page(action, checked)

    @router.post(AUTH_PATH)
    async def approve(request: Request) -> Response:
        if not simulator:
            return disabled()
        try:
            form = await _form(request)
        except OAuthError as exc:
            return _error_page(exc)
        checked = await authorize_request(form)
        if isinstance(checked, Response):
            return checked
        if form.get("action") == "deny":
            return _redirect(checked.redirect_uri, {
                "error": ACCESS_DENIED, "error_description": "the professional refused",
                "state": checked.state, "iss": issuer})
        id_nat_ps = form.get(ID_FIELD, "").strip()
        if not id_nat_ps:
            return _approval_page(action, checked, error="Saisissez votre identifiant "
                                  "national (idNatPs).", status=400)
        code = await provider.approve(checked, id_nat_ps)
        if code is None:
            return _approval_page(action, checked, id_nat_ps=id_nat_ps, status=400,
                                  error=f"Identifiant national inconnu : {id_nat_ps}. "
                                        "Aucun professionnel de l'annuaire santé ne porte "
                                        "cet idNatPs (8 suivi du RPPS, ou 0 suivi de "
                                        "l'ADELI).")
        params = {"code": code, "iss": issuer}  # RFC 9207
        if checked.state:
            params["state"] = checked.state
        return _redirect(checked.redirect_uri, params)

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        try:
            form = await _form(request)
            client = provider.authenticate_client(form, _basic(request))
            answer = await provider.token(client, form)
        except OAuthError as exc:
            return _oauth_error(exc)
        return JSONResponse(answer, headers=NO_STORE)

    @router.get(USERINFO_PATH)
    @router.post(USERINFO_PATH)
    async def userinfo(request: Request) -> JSONResponse:
        try:
            claims = await provider.userinfo(_bearer(request))
        except OAuthError as exc:
            return _oauth_error(exc)
        return JSONResponse(claims, headers=NO_STORE)

    @router.post(INTROSPECT_PATH)
    async def introspect(request: Request) -> JSONResponse:
        try:
            form = await _form(request)
            provider.authenticate_client(form, _basic(request))
        except OAuthError as exc:
            return _oauth_error(exc)
        return JSONResponse(provider.introspect(form.get("token", "")), headers=NO_STORE)

    async def logout(params: Mapping[str, str]) -> Response:
        hint = params.get("id_token_hint", "")
        target = params.get("post_logout_redirect_uri", "")
        claims: dict[str, Any] = {}
        if hint:
            try:
                claims = await provider.end_session(hint)
            except OAuthError as exc:
                return _error_page(exc)
        if target:
            client = provider.clients.get(str(claims.get("aud", params.get("client_id", ""))))
            if client is None or target not in client.post_logout_redirect_uris:
                return _error_page(OAuthError(INVALID_REQUEST, "post_logout_redirect_uri is "
                                              "not registered for this client"))
            state = params.get("state", "")
            return _redirect(target, {"state": state} if state else {})
        return _page("Déconnexion", "<p>Vous êtes déconnecté de Pro Santé Connect.</p>")

    @router.get(LOGOUT_PATH)
    async def logout_get(request: Request) -> Response:
        try:
            params = _single(list(request.query_params.multi_items()))
        except OAuthError as exc:
            return _error_page(exc)
        return await logout(params)

    @router.post(LOGOUT_PATH)
    async def logout_post(request: Request) -> Response:
        try:
            form = await _form(request)
        except OAuthError as exc:
            return _error_page(exc)
        return await logout(form)

    return router
