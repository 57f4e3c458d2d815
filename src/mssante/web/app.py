"""The operator's web application: one router per concern, mounted here.

A new concern (a page, an API, a provider's call-back) is a module of this package
exposing ``create_router(runtime, config) -> APIRouter``, added to ``ROUTERS``.
Every router receives the operator's runtime (settings, store, trust view, token
checker) and its configuration; none reads global state, none opens anything at
import time.

No OpenAPI documents nor interactive docs are served: nothing here is an API for
third parties yet.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI

from mssante.config import OperatorConfig
from mssante.operator.runtime import OperatorRuntime
from mssante.web import autoconfig, psclogout

RouterFactory = Callable[[OperatorRuntime, OperatorConfig], APIRouter]

ROUTERS: tuple[RouterFactory, ...] = (
    autoconfig.create_router,  # Thunderbird-style client autoconfiguration
    psclogout.create_router,  # PSC back-channel logout (ends IMAP and submission sessions)
)


def create_app(runtime: OperatorRuntime, config: OperatorConfig) -> FastAPI:
    """The application of one operator process."""
    app = FastAPI(title="MSSanté operator", docs_url=None, redoc_url=None,
                  openapi_url=None)
    for create_router in ROUTERS:
        app.include_router(create_router(runtime, config))
    return app
