"""The trust space's HTTPS application: whitelist set, CA certificates, CRLs, and the
national directory (FHIR API, autocomplete, published extract).

Every whitelist, certificate and CRL response is read from disk at request time, so a
change made by the CLI in another process (whitelist add/remove, revocation) is served
at once. Files are small (the real whitelist is a few MB), so no cache is kept.

Directory routes (present when the app is given a DirectoryService):

- ``/fhir/...``: the FHIR R4 API (``mssante.directory.fhir``); PATCH needs the
  operator's client certificate (``auth.Authoriser``);
- ``/directory/autocomplete?q=…&limit=…``: people search for recipient fields, JSON
  (words of names, professions, organisations, places; a ``q`` with an ``@``: the
  beginning of an address);
- ``/extractions/Extraction_Correspondance_MSSante.txt``: the current public extract;
- ``/psc/...``: the Pro Santé Connect-like OpenID provider (``mssante.psc``), whose
  claims come from the directory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from mssante.directory.fhir.router import create_fhir_router
from mssante.directory.service import AUTOCOMPLETE_MAX, EXTRACT_NAME, DirectoryService
from mssante.errors import PKIError
from mssante.psc.app import create_psc_router
from mssante.psc.clients import Clients
from mssante.psc.keys import SigningKeys
from mssante.psc.provider import Provider
from mssante.trustspace.auth import Authoriser
from mssante.trustspace.service import CA_NAMES, TrustSpace
from mssante.whitelist.files import SHA256_NAME, SIG_NAME, SIGNER_NAME, XML_NAME

PEM = "application/x-pem-file"
NO_CACHE = {"Cache-Control": "no-cache"}


def _file_response(path: Path, media_type: str) -> Response:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail=f"{path.name} is not published") from None
    return Response(content=data, media_type=media_type, headers=NO_CACHE)


def _known_ca(ca: str) -> str:
    if ca not in CA_NAMES:
        raise HTTPException(status_code=404, detail=f"unknown CA {ca!r}")
    return ca


def create_router(trust_space: TrustSpace) -> APIRouter:
    """The trust space's routes (the directory is mounted beside them later)."""
    router = APIRouter()
    publisher = trust_space.publisher

    @router.get(f"/{XML_NAME}", response_class=Response)
    def whitelist_xml() -> Response:
        return _file_response(publisher.xml_file, "application/xml")

    @router.get(f"/{SHA256_NAME}", response_class=Response)
    def whitelist_sha256() -> Response:
        return _file_response(publisher.sha256_file, "text/plain; charset=us-ascii")

    @router.get(f"/{SIG_NAME}", response_class=Response)
    def whitelist_signature() -> Response:
        return _file_response(publisher.sig_file, "application/octet-stream")

    @router.get(f"/{SIGNER_NAME}", response_class=Response)
    def whitelist_signer() -> Response:
        return _file_response(publisher.signer_file, PEM)

    @router.get("/pki/{ca}-ca.pem", response_class=Response)
    def ca_certificate(ca: str) -> Response:
        return _file_response(trust_space.ca_cert_file(_known_ca(ca)), PEM)

    @router.get("/crl/{ca}.crl", response_class=Response)
    def crl(ca: str) -> Response:
        try:
            der = trust_space.pki.crl_der(_known_ca(ca))
        except PKIError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return Response(content=der, media_type="application/pkix-crl", headers=NO_CACHE)

    @router.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return router


def create_directory_router(directory: DirectoryService) -> APIRouter:
    router = APIRouter()

    @router.get("/directory/autocomplete")
    async def autocomplete(
        q: str = Query("", max_length=200, description=(
            "Free text, e.g. dupont cardio lyon, or the beginning of an address")),
        limit: int = Query(10, ge=1, le=AUTOCOMPLETE_MAX),
    ) -> JSONResponse:
        found = await directory.autocomplete(q, limit)
        return JSONResponse({"query": q, "results": [s.as_json() for s in found]})

    @router.get(f"/extractions/{EXTRACT_NAME}", response_class=FileResponse)
    async def extract() -> FileResponse:
        path, etag = await directory.current_extract()
        return FileResponse(path, media_type="text/plain; charset=utf-8",
                            headers={**NO_CACHE, "ETag": etag}, filename=EXTRACT_NAME)

    return router


def create_app(trust_space: TrustSpace, directory: DirectoryService | None = None, *,
               base_url: str) -> FastAPI:
    """The trust space's HTTP application; ``base_url`` (its public URL) starts the
    absolute URLs of the directory's FHIR API."""
    app = FastAPI(title="MSSanté trust space", docs_url=None, redoc_url=None)
    app.include_router(create_router(trust_space))
    if directory is not None:
        app.include_router(create_directory_router(directory))
        app.include_router(create_fhir_router(directory.store, Authoriser(trust_space),
                                              base_url=f"{base_url}/fhir"),
                           prefix="/fhir")
        settings = trust_space.psc
        provider = Provider(issuer=trust_space.psc_issuer(base_url),
                            keys=SigningKeys(trust_space.psc_dir, settings.access_token_lifetime),
                            clients=Clients(trust_space.psc_dir), referential=directory.store,
                            settings=settings, ca_file=trust_space.root_cert_file)
        provider.keys.signing_key()  # the first key is made now, not at the first request
        app.include_router(create_psc_router(provider, simulator=settings.simulator),
                           prefix="/psc")

        @app.middleware("http")
        async def follow_publications(request: Request,
                                      call_next: Callable[[Request], Awaitable[Response]]
                                      ) -> Response:
            response = await call_next(request)
            if request.method == "PATCH":
                directory.invalidate()  # the next search sees the publication
            return response
    return app
