"""The person's application passwords, in the webmail's settings.

- ``GET /compte/mots-de-passe-application``: the list (``Nom de l'appareil``, created,
  last used and from where), the form to create one, a ``Révoquer`` button for each.
- ``POST /compte/mots-de-passe-application``: create one (auth/apppasswords.py) named
  ``nom``, then back to the list (303, so that reloading the page does not create
  another), where the password is shown in the ``role=status`` region, once: the
  session holds it in memory until that page takes it; the store has its hash only.
- ``POST /compte/mots-de-passe-application/{id}/revoquer``: revoke it; from the next
  login on it opens nothing (store/logins.py), then back to the list with a status.

Creating and revoking are recorded in the audit trail (``admin.person.app-password.
create``, ``.revoke``: store/logins.py) as the session's login's, from ``HTTPS
<client address>``.

Every form posts the session's CSRF token. Creating one needs a session opened with
more than a password (its second factor, or Pro Santé Connect, ``WebSession.strong``):
a stolen account password alone, which the web takes for a person without a second
factor, does not make itself a lasting way in. Listing and revoking need a session
only.
"""

from __future__ import annotations

import contextlib
import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mssante.audit.events import acting, actor_of
from mssante.auth import apppasswords
from mssante.auth.apppasswords import InvalidLabel
from mssante.errors import NotFound
from mssante.store.logins import MAX_APP_PASSWORDS, AppPassword, TooManyAppPasswords
from mssante.web.context import WebContext
from mssante.web.login import session_of, to_login
from mssante.web.render import local_time as when
from mssante.web.sessions import ONCE_COOKIE, WebSession, cookie_header, same_token

log = logging.getLogger(__name__)

PATH = "/compte/mots-de-passe-application"
MAX_FORM_LABEL = 1024  # characters of a label looked at (check_label allows fewer)
# the password just created and its label, in the session until the page shows them
_CREATED = "app_password"
_CREATED_LABEL = "app_password_label"


def _acting(request: Request, session: WebSession) -> contextlib.AbstractContextManager[None]:
    """The audit trail's actor and source for what this request changes."""
    identity = session.identity
    address = request.client.host if request.client else "unknown"
    return acting(actor_of(identity.login, identity.psc.subject if identity.psc else None),
                  f"HTTPS {address}")


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    logins = web.runtime.store.logins

    async def page(request: Request, session: WebSession, *, status: int = 200,
                   error: str = "", label: str = "") -> Response:
        entries: list[AppPassword] = await logins.app_passwords(session.identity.login)
        once = web.sessions.take_once(session, request)
        created = (once.get(_CREATED_LABEL, ""), once.get(_CREATED, "")) if once else ("", "")
        response = web.page(request, "app_passwords.html", session=session, status=status,
                            entries=entries, when=when, error=error, label=label,
                            created=created if created[1] else None, path_base=PATH,
                            limit=MAX_APP_PASSWORDS)
        if once is not None:  # shown once: the browser forgets it now
            response.headers.append("set-cookie", cookie_header(ONCE_COOKIE, "", clear=True))
        return response

    @router.get(PATH)
    async def show(request: Request) -> Response:
        session = session_of(web, request)
        if session is None:
            return to_login()
        return await page(request, session)

    @router.post(PATH)
    async def create(request: Request) -> Response:
        session = session_of(web, request)
        if session is None:
            return to_login()
        form = await request.form(max_files=0, max_fields=5)
        label = str(form.get("nom", ""))[:MAX_FORM_LABEL]
        if not same_token(str(form.get("csrf", "")), session.csrf):
            return await page(request, session, status=400, label=label,
                              error="Le formulaire a expiré : recommencez.")
        if not session.strong:
            return await page(request, session, status=403, label=label,
                              error="Pour créer un mot de passe d'application, connectez-vous "
                                    "avec votre second facteur ou Pro Santé Connect.")
        login = session.identity.login
        try:
            with _acting(request, session):
                created = await apppasswords.create(logins, login, label)
        except InvalidLabel as exc:
            return await page(request, session, status=400, label=label,
                              error=f"Nom de l'appareil refusé : {_french(exc)}.")
        except TooManyAppPasswords:
            return await page(request, session, status=409, label=label,
                              error=f"Vous avez déjà {MAX_APP_PASSWORDS} mots de passe "
                                    "d'application : révoquez-en un d'abord.")
        except NotFound:
            return to_login()
        log.info("application password %d (%r) created for %s at the web",
                 created.entry.id, created.entry.label, login)
        # shown once by the page the browser is sent to, whichever process serves it;
        # never written to the database (sessions.keep_once)
        sealed = web.sessions.keep_once(session, {_CREATED_LABEL: created.entry.label,
                                                  _CREATED: created.password})
        return RedirectResponse(PATH, status_code=303, headers={"set-cookie": sealed})

    @router.post(PATH + "/{app_password_id}/revoquer")
    async def revoke(request: Request, app_password_id: int) -> Response:
        session = session_of(web, request)
        if session is None:
            return to_login()
        form = await request.form(max_files=0, max_fields=5)
        if not same_token(str(form.get("csrf", "")), session.csrf):
            return await page(request, session, status=400,
                              error="Le formulaire a expiré : recommencez.")
        login = session.identity.login
        label = next((e.label for e in await logins.app_passwords(login)
                      if e.id == app_password_id), None)
        with _acting(request, session):
            revoked = label is not None and await logins.revoke_app_password(
                login, app_password_id)
        if revoked:
            log.info("application password %d revoked for %s at the web",
                     app_password_id, login)
            session.notice = (f"Le mot de passe d'application « {label} » est révoqué : "
                              "il n'ouvre plus de session.")
        else:
            session.notice = "Ce mot de passe d'application n'existe plus."
        return RedirectResponse(PATH, status_code=303)

    return router


_LABEL_REFUSALS = {
    InvalidLabel.EMPTY: "donnez un nom à l'appareil ou au logiciel",
    InvalidLabel.TOO_LONG: f"{apppasswords.MAX_LABEL} caractères au plus",
    InvalidLabel.CONTROL: "caractères de contrôle interdits",
}


def _french(exc: InvalidLabel) -> str:
    """The label's refusal in French (auth/apppasswords.py words it in English, for
    the command line)."""
    return _LABEL_REFUSALS.get(exc.reason, str(exc))
