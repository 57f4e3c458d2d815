"""The trust space's HTTPS application: whitelist set, CA certificates, CRLs.

Every response is read from disk at request time, so a change made by the CLI in
another process (whitelist add/remove, revocation) is served at once. Files are
small (the real whitelist is a few MB), so no cache is kept.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Response

from mssante.errors import PKIError
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


def create_app(trust_space: TrustSpace) -> FastAPI:
    app = FastAPI(title="MSSanté trust space", docs_url=None, redoc_url=None)
    app.include_router(create_router(trust_space))
    return app
