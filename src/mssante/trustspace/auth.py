"""Who may publish in the directory: an operator authenticated by its TLS certificate.

MSSanté reference, "National directory": operators publish their mailboxes with FHIR
PATCH. The trust space identifies the operator by the client certificate of the
HTTPS connection and lets it publish only addresses of the domains that the
whitelist binds to that certificate's DN.

Checks, in order (each failure is a FHIR OperationOutcome for the client):
1. a certificate was presented (else 401);
2. it chains to the trust space's PKI, is valid now and not revoked, by the same
   CertificateChecker the MTAs use, rebuilt when a CRL file changes (else 403);
3. the current whitelist binds at least one domain to its subject DN (else 403).

The whitelist and the CRLs are read from disk, so a domain removed or a certificate
revoked by the CLI in another process counts from the next request.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from mssante.directory.fhir import Publisher
from mssante.errors import CertificateRejected, MSSanteError
from mssante.pki.verify import CertificateChecker
from mssante.trustspace.service import CA_NAMES, TrustSpace, checker_for
from mssante.trustspace.tls import peer_certificate


class Authoriser:
    """``await authoriser(request)`` returns the Publisher or raises HTTPException."""

    def __init__(self, trust_space: TrustSpace) -> None:
        self._trust_space = trust_space
        self._checker: CertificateChecker | None = None
        self._stamp: tuple[float, ...] = ()

    def _current_checker(self) -> CertificateChecker:
        pki = self._trust_space.pki
        stamp = tuple(pki.crl_file_path(ca).stat().st_mtime for ca in CA_NAMES)
        if self._checker is None or stamp != self._stamp:
            self._checker, self._stamp = checker_for(pki), stamp
        return self._checker

    async def __call__(self, request: Request) -> Publisher:
        der = peer_certificate(request)
        if der is None:
            raise HTTPException(401, "publishing needs the operator's TLS client certificate")
        try:
            peer = self._current_checker().check(der)
        except CertificateRejected as exc:
            raise HTTPException(403, f"client certificate refused: {exc}") from None
        except (MSSanteError, OSError) as exc:
            raise HTTPException(503, f"cannot check certificates now: {exc}") from None
        domains = self._trust_space.publisher.current().domains_for_dn(peer.subject_dn)
        if not domains:
            raise HTTPException(403, f"no domain of the whitelist is bound to {peer.subject_dn}")
        return Publisher(dn=peer.subject_dn, domains=frozenset(domains))
