"""Logging in and out of the web application.

- ``GET /connexion``: the form (``Identifiant``, ``Mot de passe``, ``Se connecter``)
  and, when the operator has a Pro Santé Connect client, the link
  ``Se connecter avec Pro Santé Connect``.
- ``POST /connexion``: the password is checked by ``auth.passwordlogin`` exactly as at
  IMAP and submission: the same argon2 check, the same throttle per login and per
  address, the same password policy per kind of person (domain/logins.py). Then the
  second factor the operator requires of that person (``[psc.second_factor]``,
  ``runtime.second_factor``): a TOTP code, or for a patient a code sent to their
  personal address, typed at ``/connexion/code`` (``Code de vérification``).
- ``GET /connexion/psc`` sends the browser to the provider (authorization code with
  PKCE, auth/pscclient.py); ``GET /connexion/psc/retour`` takes the code back, checks
  the ID token and the access token, and maps the professional by idNatPs as IMAP
  does (``psctoken.token_login``).
- ``POST /deconnexion`` ends the web session, and the PSC session at the provider
  when it was opened with PSC (which then ends the IMAP sessions of that PSC session
  too, by back-channel logout).
Programs (APP mailboxes) have no web login: they use IMAP and submission with their
certificate.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mssante.audit.events import LOGIN, LOGIN_FAILED, AuditEvent, actor_of, clip
from mssante.auth import passwordlogin, psctoken
from mssante.auth.emailcode import CodeNotSent, CodeStart
from mssante.auth.identity import Identity
from mssante.auth.passwordlogin import LoginThrottled, PasswordLoginFailed, PasswordsDisabled
from mssante.auth.psctoken import ProviderUnavailable, TokenLoginFailed
from mssante.domain.logins import SecondFactor, SecondFactorUnavailable, WayIn
from mssante.web.context import WebContext
from mssante.web.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    PSC_COOKIE,
    SECOND_COOKIE,
    WebSession,
    cookie_header,
    current,
    same_token,
)

log = logging.getLogger(__name__)

LOGIN_PATH = "/connexion"
PSC_START_PATH = "/connexion/psc"
PSC_RETURN_PATH = "/connexion/psc/retour"
CODE_PATH = "/connexion/code"
LOGOUT_PATH = "/deconnexion"
HOME_PATH = "/courrier"
MAX_FIELD = 1024  # characters of a login or password looked at


def session_of(web: WebContext, request: Request) -> WebSession | None:
    """The browser's live session, if any (read once per request: sessions.py)."""
    return current(request)


def to_login() -> RedirectResponse:
    return RedirectResponse(LOGIN_PATH, status_code=303)


async def _failed(web: WebContext, login: str, address: str, detail: str) -> None:
    """A failed web login, in the audit trail."""
    await web.runtime.store.audit_record([AuditEvent(
        LOGIN_FAILED, clip(login), source=f"HTTPS {address}", detail=clip(detail))])


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _opened(web: WebContext, identity: Identity, *, method: str, address: str,
                  id_token: str = "", strong: bool = False) -> RedirectResponse:
    """``strong``: opened with a second factor or with PSC, not a password alone. The
    audit trail records the login before the session exists."""
    await web.runtime.store.audit_record([AuditEvent(
        LOGIN, actor_of(identity.login, identity.psc.subject if identity.psc else None),
        source=f"HTTPS {address}", detail=method)])
    session = await web.sessions.open(identity, psc_id_token=id_token, strong=strong)
    response = RedirectResponse(HOME_PATH, status_code=303)
    response.headers.append("set-cookie", cookie_header(COOKIE, session.id))
    response.headers.append("set-cookie", cookie_header(LOGIN_COOKIE, "", clear=True))
    response.headers.append("set-cookie", cookie_header(PSC_COOKIE, "", clear=True))
    return response


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()

    def login_page(request: Request, *, error: str = "", login: str = "",
                   status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = web.page(request, "login.html", status=status, error=error, login=login,
                            token=token, psc=web.psc is not None)
        response.headers.append("set-cookie", cookie_header(LOGIN_COOKIE, token))
        return response

    @router.get("/")
    async def root(request: Request) -> Response:
        if session_of(web, request) is not None:
            return RedirectResponse(HOME_PATH, status_code=303)
        return to_login()

    @router.get(LOGIN_PATH)
    async def login_form(request: Request) -> Response:
        if session_of(web, request) is not None:
            return RedirectResponse(HOME_PATH, status_code=303)
        return login_page(request)

    @router.post(LOGIN_PATH)
    async def login_post(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        login = str(form.get("identifiant", ""))[:MAX_FIELD].strip()
        password = str(form.get("mot_de_passe", ""))[:MAX_FIELD]
        if not same_token(str(form.get("jeton", "")), request.cookies.get(LOGIN_COOKIE, "")):
            return login_page(request, login=login, status=400,
                              error="Le formulaire a expiré : saisissez à nouveau vos "
                                    "identifiants.")
        if not login or not password:
            return login_page(request, login=login, status=400,
                              error="Saisissez votre identifiant et votre mot de passe.")
        address = request.client.host if request.client else "unknown"
        runtime = web.runtime
        try:
            try:
                identity = await passwordlogin.password_login(
                    runtime.store, runtime.logins, login, password, address,
                    runtime.passwords, way=WayIn.WEB)
            except PasswordLoginFailed as exc:
                await _failed(web, login, address, f"password: {exc}")
                raise
        except LoginThrottled as exc:
            return login_page(request, login=login, status=429,
                              error=f"Trop d'essais infructueux : réessayez plus tard. ({exc})")
        except PasswordsDisabled as exc:
            return login_page(request, login=login, status=403, error=str(exc))
        except PasswordLoginFailed:
            return login_page(request, login=login, status=401,
                              error="Identifiant ou mot de passe incorrect.")
        try:
            factor = await runtime.second_factor(identity.login)
        except SecondFactorUnavailable as exc:
            return login_page(request, login=login, status=403, error=str(exc))
        if factor is SecondFactor.EMAIL_CODE:
            try:
                if await runtime.login_codes.start(identity.login) is CodeStart.NOT_NEEDED:
                    factor = None
            except CodeNotSent as exc:
                return login_page(request, login=login, status=503, error=str(exc))
        if factor is None:
            log.info("web login of %s from %s (password)", identity.login, address)
            return await _opened(web, identity, method="password", address=address)
        key = await web.sessions.await_second_factor(identity, factor.value)
        response = RedirectResponse(CODE_PATH, status_code=303)
        response.headers.append("set-cookie", cookie_header(SECOND_COOKIE, key))
        return response

    def code_page(request: Request, factor: str, *, error: str = "",
                  status: int = 200) -> Response:
        return web.page(request, "code.html", status=status, error=error,
                        by_mail=factor == SecondFactor.EMAIL_CODE.value)

    @router.get(CODE_PATH)
    async def code_form(request: Request) -> Response:
        waiting = await web.sessions.halfway(request.cookies.get(SECOND_COOKIE))
        if waiting is None:
            return to_login()
        return code_page(request, waiting[1])

    @router.post(CODE_PATH)
    async def code_post(request: Request) -> Response:
        key = request.cookies.get(SECOND_COOKIE, "")
        waiting = await web.sessions.halfway(key)
        if waiting is None:
            return login_page(request, status=400, error="Le délai est dépassé : "
                                                         "connectez-vous à nouveau.")
        identity, factor = waiting
        form = await request.form(max_files=0, max_fields=5)
        code = "".join(str(form.get("code", "")).split())[:16]
        runtime = web.runtime
        address = request.client.host if request.client else "unknown"
        if factor == SecondFactor.TOTP.value:
            right = await runtime.totp.verify(identity.login, code, address)
        else:
            right = await runtime.login_codes.verify(identity.login, code)
        if not right:
            await _failed(web, identity.login, address, f"password right, {factor} wrong")
            if await web.sessions.second_factor_failed(key):
                return code_page(request, factor, status=401,
                                 error="Code incorrect ou expiré : réessayez.")
            return login_page(request, status=401, error="Trop de codes incorrects : "
                                                         "connectez-vous à nouveau.")
        await web.sessions.second_factor_done(key)
        log.info("web login of %s from %s (password and %s)", identity.login, address,
                 factor)
        response = await _opened(web, identity, method=f"password and {factor}",
                                 address=address, strong=True)
        response.headers.append("set-cookie", cookie_header(SECOND_COOKIE, "", clear=True))
        return response

    @router.get(PSC_START_PATH)
    async def psc_start(request: Request) -> Response:
        if web.psc is None:
            return login_page(request, status=404, error="Pro Santé Connect n'est pas "
                                                         "proposé par cet opérateur.")
        try:
            start = await web.psc.start(base_url(request) + PSC_RETURN_PATH)
        except ProviderUnavailable:
            return login_page(request, status=503, error="Pro Santé Connect est "
                                                         "injoignable : réessayez plus tard.")
        key = await web.sessions.remember_login(start)
        response = RedirectResponse(start.url, status_code=303)
        response.headers.append("set-cookie", cookie_header(PSC_COOKIE, key))
        return response

    @router.get(PSC_RETURN_PATH)
    async def psc_return(request: Request) -> Response:
        if web.psc is None or web.runtime.tokens is None:
            return to_login()
        params = request.query_params
        start = await web.sessions.take_login(request.cookies.get(PSC_COOKIE),
                                        params.get("state", ""))
        if start is None:
            return login_page(request, status=400, error="Cette connexion Pro Santé Connect "
                                                         "a expiré : recommencez.")
        if params.get("error"):
            return login_page(request, status=401, error="Connexion Pro Santé Connect "
                                                         "refusée.")
        try:
            tokens = await web.psc.finish(params.get("code", ""), start)
            identity = await psctoken.token_login(web.runtime.tokens, web.runtime.store,
                                                  tokens.access_token, "")
        except ProviderUnavailable:
            return login_page(request, status=503, error="Pro Santé Connect est "
                                                         "injoignable : réessayez plus tard.")
        except TokenLoginFailed as exc:
            log.info("web PSC login refused: %s", exc)
            await _failed(web, "", request.client.host if request.client else "unknown",
                          f"Pro Santé Connect: {exc}")
            return login_page(request, status=401, error="Aucun compte de cet opérateur "
                                                         "pour ce professionnel.")
        log.info("web login of %s (Pro Santé Connect)", identity.login)
        return await _opened(web, identity, method="Pro Santé Connect",
                             address=request.client.host if request.client else "unknown",
                             id_token=tokens.id_token, strong=True)

    @router.post(LOGOUT_PATH)
    async def logout(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        session = session_of(web, request)
        if session is None or not same_token(str(form.get("csrf", "")), session.csrf):
            return to_login()
        await web.sessions.close(session.id)
        target = LOGIN_PATH
        if session.identity.psc is not None and web.psc is not None:
            # the ID token when this process logged the browser in (sessions.py), else
            # the client_id: the provider ends the session its own cookie names
            target = (await web.psc.end_session_url(
                session.psc_id_token, base_url(request) + LOGIN_PATH)) or LOGIN_PATH
        response = RedirectResponse(target, status_code=303)
        response.headers.append("set-cookie", cookie_header(COOKIE, "", clear=True))
        return response

    return router
