"""Certificate revocation lists: reasons, building and reading CRLs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from mssante.errors import PKIError

# RFC 5280 §5.3.1 CRLReason; removeFromCRL belongs to delta CRLs only and is refused.
_REASONS: dict[str, x509.ReasonFlags] = {
    flag.value.lower(): flag for flag in x509.ReasonFlags
    if flag is not x509.ReasonFlags.remove_from_crl
}
_REASONS.update({flag.name.replace("_", ""): flag for flag in list(_REASONS.values())})
REASON_NAMES = tuple(flag.value for flag in x509.ReasonFlags
                     if flag is not x509.ReasonFlags.remove_from_crl)


def reason_name(reason: str) -> str:
    """The RFC 5280 name of a revocation reason given as ``keyCompromise``,
    ``key_compromise`` or ``key-compromise``; PKIError when unknown."""
    flag = _REASONS.get(reason.strip().lower().replace("_", "").replace("-", ""))
    if flag is None:
        raise PKIError(f"unknown revocation reason {reason!r} "
                       f"(known: {', '.join(REASON_NAMES)})")
    return flag.value


@dataclass(frozen=True, slots=True)
class Revocation:
    serial: int
    revoked_at: datetime
    reason: str  # an RFC 5280 name from REASON_NAMES


def build_crl(issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey,
              revocations: Iterable[Revocation], *, number: int, last_update: datetime,
              next_update: datetime) -> x509.CertificateRevocationList:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.subject)
               .last_update(last_update)
               .next_update(next_update)
               # RFC 5280 §5.2.1: conforming CRL issuers MUST include the AKI.
               .add_extension(x509.AuthorityKeyIdentifier
                              .from_issuer_subject_key_identifier(ski), critical=False)
               # RFC 5280 §5.2.3: MUST include a monotonically increasing CRL number.
               .add_extension(x509.CRLNumber(number), critical=False))
    for revocation in sorted(revocations, key=lambda r: r.serial):
        entry = (x509.RevokedCertificateBuilder()
                 .serial_number(revocation.serial)
                 .revocation_date(revocation.revoked_at))
        flag = x509.ReasonFlags(revocation.reason)
        # RFC 5280 §5.3.1: the reason code "unspecified" SHOULD be absent.
        if flag is not x509.ReasonFlags.unspecified:
            entry = entry.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer_key, hashes.SHA256())


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in DER or PEM; PKIError when it is neither."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise PKIError(f"not a CRL (DER or PEM): {exc}") from exc


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def revocation_reason(entry: x509.RevokedCertificate) -> str:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except x509.ExtensionNotFound:
        return x509.ReasonFlags.unspecified.value
