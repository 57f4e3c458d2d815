"""Checking a peer's certificate against the trust-space material an operator holds.

The ssl module verifies chains during the handshake; this second check, run on the
certificate the peer presented, is what makes revocation work without rebuilding
SSL contexts: a ``CertificateChecker`` is rebuilt each time the operator downloads
fresh CRLs, and checking is then pure computation.

Decisions:
- A CA without a CRL is not a reason to refuse: the trust client decides how old a
  CRL may get (``crl_updated``, ``crl_next_update``) and logs loudly. A CRL past its
  nextUpdate is still applied: an old list of revoked certificates is better than none.
- When several CRLs of the same CA are given, the one with the highest CRL number
  (then the latest thisUpdate) wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from mssante.errors import CertificateRejected, PKIError
from mssante.pki.crl import crl_number, load_crl, revocation_reason
from mssante.pki.names import dn_string


@dataclass(frozen=True)
class PeerCertificate:
    """A certificate that passed the checks."""

    subject_dn: str
    issuer_dn: str
    serial: int
    not_after: datetime
    certificate: x509.Certificate


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(cert: x509.Certificate) -> str:
    return f"serial {cert.serial_number} ({dn_string(cert.subject)})"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# The key types a CA of the trust space may sign with. DSA is not among them: IGC-Santé
# issues RSA and EC keys, and cryptography ≥ 51 deprecates DSA.
_ISSUER_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                     ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)


def _signed_crl(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    if crl.issuer != ca.subject or not isinstance(key, _ISSUER_KEY_TYPES):
        return False
    try:
        return crl.is_signature_valid(key)
    except (TypeError, ValueError):
        return False


def _certificates(data: bytes) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateRejected(f"not a certificate: {exc}") from exc


class CertificateChecker:
    """The root, the intermediate CAs and their CRLs, as downloaded from the trust space.

    ``root_pem`` starts with the root; further certificates in it count as
    intermediates, like those of ``ca_pems``. CRLs are DER or PEM.
    """

    def __init__(self, root_pem: bytes, ca_pems: Sequence[bytes] = (),
                 crls: Sequence[bytes] = ()) -> None:
        root, *bundled = _certificates(root_pem)
        if not (_is_ca(root) and _issued_by(root, root)):
            raise CertificateRejected(
                f"the trust-space root {dn_string(root.subject)} is not a self-signed CA")
        self._root = root
        self._intermediates: list[x509.Certificate] = []
        candidates = bundled + [cert for pem in ca_pems for cert in _certificates(pem)]
        for cert in candidates:
            if cert == root or cert in self._intermediates:
                continue
            if not (_is_ca(cert) and _issued_by(cert, root)):
                raise CertificateRejected(f"CA certificate {_describe(cert)} is not a CA "
                                          f"issued by the trust-space root")
            self._intermediates.append(cert)
        self._crls: dict[x509.Certificate, x509.CertificateRevocationList] = {}
        for data in crls:
            self._add_crl(data)

    def _add_crl(self, data: bytes) -> None:
        try:
            crl = load_crl(data)
        except PKIError as exc:
            raise CertificateRejected(str(exc)) from exc
        issuer = next((ca for ca in self._cas if _signed_crl(crl, ca)), None)
        if issuer is None:
            raise CertificateRejected(f"the CRL of {dn_string(crl.issuer)} is not signed by "
                                      f"a CA of the trust space")
        current = self._crls.get(issuer)
        if current is None or ((crl_number(crl), crl.last_update_utc)
                               > (crl_number(current), current.last_update_utc)):
            self._crls[issuer] = crl

    @property
    def _cas(self) -> list[x509.Certificate]:
        return [self._root, *self._intermediates]

    @property
    def crl_updated(self) -> datetime | None:
        """The latest thisUpdate among the CRLs held, None without CRLs."""
        return max((crl.last_update_utc for crl in self._crls.values()), default=None)

    @property
    def crl_next_update(self) -> datetime | None:
        """The earliest nextUpdate among the CRLs held: fetch again before it."""
        dates = [crl.next_update_utc for crl in self._crls.values()
                 if crl.next_update_utc is not None]
        return min(dates, default=None)

    def check_chain_pem(self, pem: bytes, *, at: datetime | None = None) -> PeerCertificate:
        """Check the first certificate of a PEM bundle (the rest is ignored)."""
        return self.check(_certificates(pem)[0], at=at)

    def check(self, leaf: x509.Certificate | bytes, *,
              at: datetime | None = None) -> PeerCertificate:
        """Check an end-entity certificate (object, DER or PEM) at ``at`` (default: now).

        The certificate must be signed by a known CA, not be a CA itself, be within its
        validity period (so must its issuer and the root), not be on its issuer's CRL,
        and its issuing CA must not be on the root's CRL.

        Raises CertificateRejected with a reason a person understands.
        """
        cert = leaf if isinstance(leaf, x509.Certificate) else _certificates(leaf)[0]
        now = at or datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)  # a naive time is taken as UTC
        issuer = next((ca for ca in self._cas
                       if ca.subject == cert.issuer and _issued_by(cert, ca)), None)
        if issuer is None:
            raise CertificateRejected(f"certificate {_describe(cert)} is not issued by the "
                                      f"trust-space PKI")
        if _is_ca(cert):
            raise CertificateRejected(f"certificate {_describe(cert)} is a CA certificate, "
                                      f"not an end-entity one")
        # RFC 5280 §6.1.3 (a)(2): every certificate of the path must be within validity.
        for item, what in ((cert, "certificate"), (issuer, "issuing CA"),
                           (self._root, "root CA")):
            if now < item.not_valid_before_utc:
                raise CertificateRejected(f"{what} {_describe(item)} is not valid before "
                                          f"{_when(item.not_valid_before_utc)}")
            if now > item.not_valid_after_utc:
                raise CertificateRejected(f"{what} {_describe(item)} expired on "
                                          f"{_when(item.not_valid_after_utc)}")
        # RFC 5280 §6.3.3: the certificate against its issuer's CRL, and the issuing
        # CA against the root's.
        self._check_not_revoked(cert, issuer, "certificate")
        if issuer is not self._root:
            self._check_not_revoked(issuer, self._root, "issuing CA")
        return PeerCertificate(subject_dn=dn_string(cert.subject),
                               issuer_dn=dn_string(cert.issuer), serial=cert.serial_number,
                               not_after=cert.not_valid_after_utc, certificate=cert)

    def _check_not_revoked(self, cert: x509.Certificate, issuer: x509.Certificate,
                           what: str) -> None:
        crl = self._crls.get(issuer)
        if crl is None:
            return
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is None:
            return
        reason = revocation_reason(entry)
        because = "" if reason == "unspecified" else f" (reason: {reason})"
        raise CertificateRejected(f"{what} {_describe(cert)} was revoked on "
                                  f"{_when(entry.revocation_date_utc)}{because}")
