"""HTTP of the directory's FHIR API: ``create_fhir_router`` (FHIR R4 http.html).

Routes, relative to where the router is mounted (``/fhir``):

- ``GET /metadata``: the CapabilityStatement;
- ``GET /<type>/<id>``: read, for Practitioner, Organization, PractitionerRole;
- ``GET /<type>?...``, ``GET|POST /<type>/_search``: search (POST: form body, added to
  the query string's parameters), a searchset Bundle;
- ``PATCH /<type>?identifier=...`` (conditional) and ``PATCH /<type>/<id>``, for
  Practitioner and Organization: FHIRPath Patch of the mailboxes.

Invariants:

- Every response is ``application/fhir+json``; every error is an OperationOutcome,
  whatever raised it: ``FhirError`` (parsers, handlers), the ``HTTPException`` of
  ``authorise`` (401, 403, its headers kept), the store's errors (NotFound 404,
  Ambiguous 412, Conflict 422, PolicyViolation 403, an invalid address 422),
  anything else 500 (logged, its text not shown). A path this API does not serve
  is 404 and a method a path does not take 405 (with ``Allow``), as
  OperationOutcomes too: a last route catches them, since a router cannot install
  exception handlers on the application it joins.
- Absolute URLs (``fullUrl``, links) start with ``base_url``, the configured public
  URL of the API, never with the request's ``Host`` header: a client chooses that
  header, and a link a proxy or cache keeps would send the next reader elsewhere.
- A patch asks ``authorise`` first, before reading its parameters or its body: an
  anonymous or unknown caller gets 401/403 whatever it sent, learns nothing of the
  directory (no 404/412 on identifiers) and costs no database work. Then the body
  is parsed, the target resolved (by id, or by identifier: 0 matches 404, several
  412) and the store applies the operations in one transaction; the answer is the
  resource as a read returns it afterwards.
- Sizes: a PATCH body is read up to ``MAX_PATCH_BODY`` bytes (413 beyond); a query
  string and a POST search's form share ``params.MAX_QUERY_BYTES`` (414 for the
  query string, 413 for the form beyond), OperationOutcome ``too-costly``. A JSON
  body that cannot be decoded (syntax, an integer beyond Python's digit limit,
  nesting beyond the recursion limit) is 400 ``structure``. The other limits of a
  search are ``params``'.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException

from mssante.database import converted
from mssante.directory.fhir import queries
from mssante.directory.fhir.capability import PATCHABLE, capability_statement
from mssante.directory.fhir.outcome import FhirError, bad_request
from mssante.directory.fhir.params import (
    COUNT,
    CURSOR,
    MAX_QUERY_BYTES,
    RESOURCE_TYPES,
    Search,
    check_read,
    parse_conditional,
    parse_search,
    valid_id,
)
from mssante.directory.fhir.patch import MAX_PATCH_BODY, parse_patch
from mssante.directory.fhir.ports import Authorise, DirectoryPort
from mssante.directory.fhir.resources import render, searchset
from mssante.directory.model import ResourceKind
from mssante.errors import Ambiguous, Conflict, InvalidAddress, NotFound, PolicyViolation

FHIR_JSON = "application/fhir+json"
JSON_BODIES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
FORM = "application/x-www-form-urlencoded"
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


class FhirRoute(APIRoute):
    """A route whose every failure is answered with an OperationOutcome."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except FhirError as error:
                return error_response(error)
            except HTTPException as exc:
                return error_response(FhirError(exc.status_code, str(exc.detail),
                                                headers=exc.headers))
            except RequestValidationError as exc:
                return error_response(bad_request(f"invalid request: {exc.errors()}"))
            except Exception:
                log.exception("FHIR %s %s failed", request.method, request.url.path)
                return error_response(FhirError(500, "internal error"))

        return guarded


def error_response(error: FhirError) -> Response:
    return FhirResponse(error.outcome(), status_code=error.status, headers=error.headers)


def create_fhir_router(store: DirectoryPort, authorise: Authorise, *,
                       base_url: str) -> APIRouter:
    """The FHIR API's routes on ``store``; ``authorise`` admits the publishers;
    ``base_url`` is the API's public URL (``https://host[:port]/fhir``), the start of
    every absolute URL it answers with."""
    api = _Api(store, authorise, base_url.rstrip("/"))
    router = APIRouter(route_class=FhirRoute, default_response_class=FhirResponse)
    router.add_api_route("/metadata", api.metadata, methods=["GET"],
                         summary="CapabilityStatement", operation_id="fhir_metadata")
    for resource in RESOURCE_TYPES:
        routes: list[tuple[str, str, Handler, str]] = [
            ("", "GET", api.searcher(resource), "search"),
            ("/_search", "GET", api.searcher(resource), "search_get"),
            ("/_search", "POST", api.searcher(resource), "search_post"),
            ("/{fhir_id}", "GET", api.reader(resource), "read"),
        ]
        if resource in PATCHABLE:
            routes += [("", "PATCH", api.patcher(resource, by_id=False), "conditional_patch"),
                       ("/{fhir_id}", "PATCH", api.patcher(resource, by_id=True), "patch")]
        for suffix, method, handler, operation in routes:
            router.add_api_route(f"/{resource}{suffix}", handler, methods=[method],
                                 summary=f"{operation.replace('_', ' ')} {resource}",
                                 operation_id=f"fhir_{resource}_{operation}")
    router.add_api_route("/{path:path}", api.fallback, methods=_ALL_METHODS,
                         include_in_schema=False)
    return router


def allowed_methods(path: str) -> list[str]:
    """The methods of a path relative to the FHIR base (``[]``: not served)."""
    segments = path.strip("/").split("/")
    if segments == ["metadata"]:
        return ["GET"]
    if not segments or segments[0] not in RESOURCE_TYPES or len(segments) > 2:
        return []
    if len(segments) == 2 and segments[1] == "_search":
        return ["GET", "POST"]
    return ["GET", "PATCH"] if segments[0] in PATCHABLE else ["GET"]


class _Api:
    def __init__(self, store: DirectoryPort, authorise: Authorise, base_url: str) -> None:
        self.store = store
        self.authorise = authorise
        self.base_url = base_url

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        with converted():
            async with self.store.engine.connect() as conn:
                await queries.begin_read(conn)
                yield conn

    async def metadata(self, request: Request) -> Response:
        check_read(_query(request))
        return FhirResponse(capability_statement(self.base_url))

    def searcher(self, resource: str) -> Handler:
        async def search(request: Request) -> Response:
            items = _query(request)
            if request.method == "POST":
                items += await _form(request, MAX_QUERY_BYTES - _query_size(request))
            query = parse_search(resource, items)
            async with self.reading() as conn:
                result = await queries.search(conn, query)
            base = self.base_url
            next_url = (None if result.next_cursor is None
                        else search_url(base, query, result.next_cursor))
            return FhirResponse(searchset(
                base, result.matches, result.included, total=result.total,
                self_url=search_url(base, query, query.cursor), next_url=next_url))

        return search

    def reader(self, resource: str) -> Handler:
        async def read(request: Request) -> Response:
            check_read(_query(request))
            return FhirResponse(render(await self._read(resource,
                                                        request.path_params["fhir_id"])))

        return read

    async def _read(self, resource: str, fhir_id: str) -> Any:
        if not valid_id(fhir_id):
            raise FhirError(404, f"{fhir_id!r} is not a valid FHIR id", code="not-found")
        async with self.reading() as conn:
            view = await queries.read(conn, resource, fhir_id)
        if view is None:
            raise FhirError(404, f"{resource}/{fhir_id} is not known")
        return view

    def patcher(self, resource: str, *, by_id: bool) -> Handler:
        kind = ResourceKind(resource)

        async def patch(request: Request) -> Response:
            # Who calls, before anything else (module docstring).
            publisher = await self.authorise(request)
            items = _query(request)
            if by_id:
                check_read(items)
            else:
                criterion = parse_conditional(resource, items)
            ops = parse_patch(kind, await _json(request))
            if by_id:
                target = (await self._read(resource, request.path_params["fhir_id"])).fhir_id
            else:
                async with self.reading() as conn:
                    found = await queries.resolve(conn, resource, criterion)
                if not found:
                    raise FhirError(404, f"no {resource} has the identifier given")
                if len(found) > 1:
                    raise FhirError(412, f"several {resource} resources have the identifier "
                                    "given: name it with its system")
                target = found[0]
            try:
                await self.store.patch_telecom(kind, target, ops, publisher=publisher.dn,
                                               allowed_domains=publisher.domains)
            except PolicyViolation as exc:
                raise FhirError(403, str(exc), code="forbidden") from None
            except NotFound as exc:
                raise FhirError(404, str(exc)) from None
            except Ambiguous as exc:
                raise FhirError(412, str(exc)) from None
            except Conflict as exc:
                raise FhirError(422, str(exc), code="business-rule") from None
            except InvalidAddress as exc:
                raise FhirError(422, str(exc), code="value") from None
            return FhirResponse(render(await self._read(resource, target)))

        return patch

    async def fallback(self, request: Request) -> Response:
        methods = allowed_methods(request.path_params.get("path", ""))
        if not methods or request.method in methods:  # the latter: a trailing "/"
            raise FhirError(404, f"{request.url.path} is not served by this FHIR API")
        raise FhirError(405, f"{request.method} is not supported on {request.url.path}",
                        code="not-supported", headers={"Allow": ", ".join(methods)})


def search_url(base: str, query: Search, cursor: int | None) -> str:
    """The GET URL of a page of ``query``: its criteria, ``_count``, the cursor."""
    items: list[tuple[str, str]] = [*query.link_items, (COUNT, str(query.count))]
    if cursor is not None:
        items.append((CURSOR, str(cursor)))
    return f"{base}/{query.resource}?{urlencode(items)}"


def _query_size(request: Request) -> int:
    return len(request.scope.get("query_string", b""))


def _query(request: Request) -> list[tuple[str, str]]:
    """The query string's parameters, once its size is checked."""
    size = _query_size(request)
    if size > MAX_QUERY_BYTES:
        raise FhirError(414, f"the query string is {size} bytes, more than the "
                        f"{MAX_QUERY_BYTES} this server takes", code="too-costly")
    return list(request.query_params.multi_items())


async def _body(request: Request, limit: int, too_large: str) -> bytes:
    """The body, of at most ``limit`` bytes (413 ``too_large`` beyond: the declared
    length is checked first, then what actually comes)."""
    declared = request.headers.get("content-length", "")
    if (declared.isascii() and declared.isdigit()
            and (len(declared) > 18 or int(declared) > limit)):
        raise FhirError(413, too_large, code="too-costly")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(413, too_large, code="too-costly")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _json(request: Request) -> Any:
    media_type = _media_type(request)
    if media_type not in JSON_BODIES:
        raise FhirError(415, f"the body must be {FHIR_JSON} (FHIRPath Patch Parameters), "
                        f"not {media_type or 'untyped'}", code="not-supported")
    body = await _body(request, MAX_PATCH_BODY,
                       f"the body exceeds the {MAX_PATCH_BODY} bytes of a patch")
    try:
        return json.loads(body)
    except RecursionError:
        raise bad_request("the body nests too deeply", code="structure") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise bad_request(f"the body is not JSON: {exc}", code="structure") from None


async def _form(request: Request, limit: int) -> Iterable[tuple[str, str]]:
    """FHIR R4 http.html#search: POST _search carries the parameters as a form (of at
    most ``limit`` bytes: what the query string left of ``MAX_QUERY_BYTES``)."""
    body = await _body(request, limit, f"the form and the query string exceed the "
                                       f"{MAX_QUERY_BYTES} bytes of a search")
    if not body:
        return []
    if _media_type(request) != FORM:
        raise FhirError(415, f"a POST search takes a {FORM} body", code="not-supported")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise bad_request("the form is not UTF-8") from None
