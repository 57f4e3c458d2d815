"""``POST /psc/backchannel-logout``: the Pro Santé Connect provider tells the operator
that a session ended (OpenID Connect Back-Channel Logout 1.0).

- The body is a form with one ``logout_token`` (§2.5), at most ``MAX_BODY`` octets.
- The token is checked by ``auth.psctoken.TokenChecker.logout`` (§2.6); once taken,
  the IMAP and submission sessions opened with that session's tokens end
  (auth/pscsessions.py).
- Answers (§2.8): ``200`` when the logout was done; ``400`` with a JSON
  ``{"error": "invalid_request", "error_description": ...}`` when the token is not a
  valid one; ``503`` when the provider's keys cannot be read (the provider may try
  again); ``404`` when the operator takes no PSC tokens. Every answer carries
  ``Cache-Control: no-store`` (§2.8).
- The operator registers ``https://<its web address>/psc/backchannel-logout`` as its
  ``backchannel_logout_uri`` at the provider (``mssante up`` does).
"""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mssante.auth.psctoken import LogoutRefused, ProviderUnavailable
from mssante.web.context import WebContext

PATH = "/psc/backchannel-logout"
MAX_BODY = 16 * 1024  # octets; a logout token is a few hundred
NO_STORE = {"Cache-Control": "no-store"}


def _refused(status: int, description: str, error: str = "invalid_request") -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description},
                        status_code=status, headers=NO_STORE)


def create_router(web: WebContext) -> APIRouter:
    runtime = web.runtime
    router = APIRouter()

    @router.post(PATH)
    async def backchannel_logout(request: Request) -> Response:
        tokens = runtime.tokens
        if tokens is None:
            return _refused(404, "This operator takes no Pro Santé Connect tokens")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            return _refused(400, "The body must be a form (application/x-www-form-urlencoded)")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _refused(413, "The body is too large")
        try:
            fields = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True,
                                           max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            return _refused(400, "The body is not a form")
        values = fields.get("logout_token", [])
        if len(values) != 1:
            return _refused(400, "One logout_token is needed")
        try:
            await tokens.logout(values[0])
        except LogoutRefused as exc:
            return _refused(400, str(exc))
        except ProviderUnavailable as exc:
            return _refused(503, str(exc), "temporarily_unavailable")
        return Response(status_code=200, headers=NO_STORE)

    return router
