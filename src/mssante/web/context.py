"""What every router of the web application shares: the operator's runtime and
configuration, the web sessions, the templates, and the operator's client at Pro Santé
Connect. Built once per process by ``app.create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mssante.auth.pscclient import RelyingParty
from mssante.config import OperatorConfig
from mssante.operator.directorysearch import DirectorySearch
from mssante.operator.runtime import OperatorRuntime
from mssante.web.sessions import Sessions, WebSession

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {"Cache-Control": "no-store"}
WEB_PROTOCOL = "HTTPS"  # the mail log's and Received's name of a message sent from the web


def templates() -> Environment:
    """Jinja2 with autoescaping of every template (HTML only here)."""
    return Environment(loader=FileSystemLoader(TEMPLATES),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True)


@dataclass
class WebContext:
    runtime: OperatorRuntime
    config: OperatorConfig
    sessions: Sessions
    pages: Environment
    psc: RelyingParty | None  # None: the operator takes no PSC logins
    directory: DirectorySearch | None = None  # recipient suggestions (directory.py)

    def page(self, request: Request, template: str, *, session: WebSession | None = None,
             status: int = 200, headers: dict[str, str] | None = None,
             **values: Any) -> HTMLResponse:
        """A page, with the session (its CSRF token, its notice shown once)."""
        notice = ""
        if session is not None and session.notice:
            notice, session.notice = session.notice, ""
        text = self.pages.get_template(template).render(
            session=session, notice=notice, path=request.url.path, **values)
        return HTMLResponse(text, status_code=status, headers={**PAGE_HEADERS,
                                                                **(headers or {})})
