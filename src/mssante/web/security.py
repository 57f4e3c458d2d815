"""Headers on every answer of the web application, and the origin check of forms.

- Content-Security-Policy: scripts, styles, images, fonts and connections from the
  application itself only; no inline script or style, no plugin, no framing; forms
  post only to the application, whose answers may redirect to the Pro Santé Connect
  provider (logging out there too), the one other ``form-action`` allowed. HTML mail
  is sanitised before it is shown (render.py); this policy is the second wall.
- ``Strict-Transport-Security``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin`` (a URL naming a message never leaves for another
  site; ``no-referrer`` would also make the browser send ``Origin: null`` with the
  application's own forms, Fetch §3.2.5), a
  ``Permissions-Policy`` turning off what a mail page never needs, and
  ``Cross-Origin-Opener-Policy``.
- A form post whose ``Origin`` (or, failing it, ``Referer``) is another site is
  refused with 403 before any route runs (CSRF, beside the per-session tokens).
"""

from __future__ import annotations

import urllib.parse

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; form-action 'self'{targets}; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"strict-transport-security", b"max-age=31536000"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# paths posted by other servers (no browser, no Origin): the provider's back-channel
MACHINE_PATHS = ("/psc/backchannel-logout",)


def _origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


class SecurityHeaders:
    """ASGI middleware: the headers above on every response, and the origin check."""

    def __init__(self, app: ASGIApp, form_targets: tuple[str, ...] = ()) -> None:
        self.app = app
        targets = "".join(f" {t}" for t in form_targets)
        self.headers = [(b"content-security-policy", CSP.format(targets=targets).encode()),
                        *HEADERS]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in UNSAFE_METHODS and scope["path"] not in MACHINE_PATHS \
                and not self._same_origin(scope):
            await self._forbidden(send, self.headers)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in self.headers if k not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)

    @staticmethod
    def _same_origin(scope: Scope) -> bool:
        headers: dict[str, str] = {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
                                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        mine = f"https://{host}".lower()
        origin = headers.get("origin")
        if origin is not None:  # "null" (a sandboxed frame, a data: page) is not ours
            return bool(origin.lower() == mine)
        referer = headers.get("referer")
        if referer:
            return _origin_of(referer) == mine
        return True  # neither: no browser sends a cross-site form without them

    @staticmethod
    async def _forbidden(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        body = "Requête refusée : elle vient d'un autre site.\n".encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})
