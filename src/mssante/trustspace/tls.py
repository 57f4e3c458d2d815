"""Client certificates on the trust space's HTTPS listener.

uvicorn does not pass the TLS peer certificate to the application. The protocol
class below copies it, once per connection, into the connection's ASGI ``state``
(which uvicorn copies into every request's ``scope["state"]``), under
``PEER_CERT_KEY`` as DER bytes, or None when the client sent none.

The listener asks for a certificate without requiring one (``CERT_OPTIONAL``):
reading the whitelist, the CRLs and the directory is public; only publishing in
the directory needs one. OpenSSL checks the chain against the trust space's root;
revocation and the whitelist are checked by the application (``authorise``).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from starlette.requests import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

PEER_CERT_KEY = "mssante_tls_peer_der"


class PeerCertificateProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11), plus the peer certificate in the connection
    state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        state: dict[str, Any] = dict(self.app_state)
        state[PEER_CERT_KEY] = der
        self.app_state = state


def peer_certificate(request: Request) -> bytes | None:
    """The DER certificate the client authenticated with, if any."""
    state = request.scope.get("state") or {}
    der = state.get(PEER_CERT_KEY)
    return der if isinstance(der, bytes) else None
