"""``GET /annuaire?q=``: recipient suggestions for the compose form's fields, from the
national directory (operator/directorysearch.py: the trust space's people search with
the operator's certificate, answers cached briefly).

JSON, a list of ``{"address", "label", "detail"}`` (``label`` the name or service,
``detail`` profession, specialty, organisation and mailbox type), for a person logged
in; a patient gets 403 (a patient never starts a conversation). The directory out of
reach is a 503 with ``{"error": "Annuaire indisponible"}``: the form still works
without suggestions.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mssante.errors import DirectoryUnavailable
from mssante.operator.directorysearch import Suggestion
from mssante.web.context import WebContext
from mssante.web.login import session_of

MAX_QUERY = 200
NO_STORE = {"Cache-Control": "no-store"}


def as_json(found: Suggestion) -> dict[str, str]:
    detail = " · ".join(part for part in (found.profession, found.specialty,
                                          found.service, found.organisation, found.city,
                                          f"boîte {found.mailbox_type_label.lower()}")
                        if part)
    return {"address": found.address, "label": found.display_name, "detail": detail}


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()

    @router.get("/annuaire")
    async def suggestions(request: Request, q: str = "") -> JSONResponse:
        session = session_of(web, request)
        if session is None:
            return JSONResponse({"error": "Connexion nécessaire"}, status_code=401,
                                headers=NO_STORE)
        if session.identity.is_patient:
            return JSONResponse({"error": "Réservé aux professionnels"}, status_code=403,
                                headers=NO_STORE)
        if web.directory is None:
            return JSONResponse([], headers=NO_STORE)
        try:
            found = await web.directory.search(q[:MAX_QUERY])
        except DirectoryUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers=NO_STORE)
        return JSONResponse([as_json(s) for s in found], headers=NO_STORE)

    return router
