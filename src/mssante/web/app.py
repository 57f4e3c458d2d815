"""The operator's web application: one router per concern, mounted here.

A new concern (a page, an API, a provider's call-back) is a module of this package
exposing ``create_router(web: WebContext) -> APIRouter``, added to ``ROUTERS``. Every
router receives the shared context (context.py: the operator's runtime and
configuration, the web sessions, the templates, the PSC relying party); none reads
global state, none opens anything at import time.

Every answer carries the security headers of security.py (strict CSP and the rest),
and cross-site form posts are refused there. The browser's session is read from the
store once per request, before the routers run (sessions.py, ``SessionLoader``).
Static files (one stylesheet, one small script) are served under ``/static`` from the
package. No OpenAPI document nor
interactive docs are served.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from mssante.auth.pscclient import RelyingParty
from mssante.config import OperatorConfig
from mssante.operator.runtime import OperatorRuntime
from mssante.web import (
    actions,
    api,
    apppasswords,
    autoconfig,
    compose,
    directory,
    login,
    mail,
    patients,
    psclogout,
)
from mssante.web.context import STATIC, WebContext, templates
from mssante.web.security import SecurityHeaders
from mssante.web.sessions import SessionLoader, Sessions

RouterFactory = Callable[[WebContext], APIRouter]

ROUTERS: tuple[RouterFactory, ...] = (
    autoconfig.create_router,  # Thunderbird-style client autoconfiguration
    psclogout.create_router,  # PSC back-channel logout (ends IMAP, submission, web sessions)
    login.create_router,  # log in and out: password, Pro Santé Connect
    mail.create_router,  # the webmail: mailboxes, folders, messages
    compose.create_router,  # writing, drafts and sending, through operator/sending.py
    api.create_router,  # the REST path of clinical documents (session or PSC token)
    actions.create_router,  # deleting, moving, marking messages: the store's IMAP operations
    patients.create_router,  # a professional's conversations with patients
    directory.create_router,  # recipient suggestions from the national directory
    apppasswords.create_router,  # the person's application passwords for mail clients
)


def create_app(runtime: OperatorRuntime, config: OperatorConfig) -> FastAPI:
    """The application of one operator process."""
    tokens = runtime.tokens
    psc = (RelyingParty(tokens, config.psc.client_id, config.psc.client_secret,
                        config.tls.ca_file, timeout=config.trust.timeout)
           if tokens is not None and config.psc.client_secret else None)
    web = WebContext(runtime, config,
                     Sessions(runtime.store.sessions,
                              ended=tokens.ended if tokens is not None else None),
                     templates(), psc, runtime.directory)
    app = FastAPI(title="MSSanté operator", docs_url=None, redoc_url=None,
                  openapi_url=None)
    issuer = urllib.parse.urlsplit(config.psc.issuer) if psc is not None else None
    app.add_middleware(SecurityHeaders, form_targets=(
        (f"{issuer.scheme}://{issuer.netloc}",) if issuer is not None else ()))
    app.add_middleware(SessionLoader, sessions=web.sessions)  # one read per request
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for create_router in ROUTERS:
        app.include_router(create_router(web))
    return app
