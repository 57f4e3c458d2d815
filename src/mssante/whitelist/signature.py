"""Detached signature of the whitelist XML by the trust-space signing certificate.

Format: the raw signature over the exact bytes of ``listeblanchemssante.xml``,
RSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 8017 §8.1), or ECDSA
with SHA-256 for an EC key; the signer certificate chain is published beside it
(``listeblanchemssante.signer.pem``). A CMS detached signature was the first
choice, but ``cryptography`` can create one and not verify it. The same check
with OpenSSL::

    openssl x509 -in listeblanchemssante.signer.pem -pubkey -noout > signer.pub
    openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \\
        -verify signer.pub -signature listeblanchemssante.xml.sig listeblanchemssante.xml
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from mssante.errors import PKIError, WhitelistError
from mssante.pki.verify import CertificateChecker

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)  # RFC 8017 §9.1
MAX_SIGNATURE = 16 * 1024


def sign(data: bytes, cert_file: Path, key_file: Path) -> bytes:
    """Sign ``data`` with the private key in ``key_file`` (checked against ``cert_file``)."""
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    except (OSError, ValueError) as exc:
        raise WhitelistError(f"cannot load the signing certificate or key: {exc}") from None
    if cert.public_key() != key.public_key():
        raise WhitelistError(f"{key_file} is not the key of {cert_file}")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _PSS, hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise WhitelistError(f"unsupported signing key type {type(key).__name__}")


def is_signing_certificate(cert: x509.Certificate) -> bool:
    """An end-entity certificate for signing content (RFC 5280 §4.2.1.3, §4.2.1.12)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    # The trust space's signing profile: digitalSignature and nonRepudiation
    # (contentCommitment), which no TLS certificate of the PKI carries.
    if not (usage.digital_signature and usage.content_commitment):
        return False
    try:
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    # A TLS server or client certificate must not sign the whitelist.
    tls = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    return not tls.intersection(extended)


def verify(data: bytes, signature: bytes, signer_chain_pem: bytes,
           checker: CertificateChecker) -> None:
    """Check the signer (trust-space PKI, not revoked, a signing certificate), then the
    signature of ``data``; raise WhitelistError on any failure."""
    if not signature or len(signature) > MAX_SIGNATURE:
        raise WhitelistError("whitelist signature is empty or too large")
    try:
        peer = checker.check_chain_pem(signer_chain_pem)
    except (PKIError, ValueError) as exc:
        raise WhitelistError(f"whitelist signer certificate rejected: {exc}") from None
    cert = peer.certificate
    if not is_signing_certificate(cert):
        raise WhitelistError(f"whitelist signer {peer.subject_dn} is not a signing certificate")
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _PSS, hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise WhitelistError(f"unsupported signer key type {type(key).__name__}")
    except InvalidSignature:
        raise WhitelistError(
            f"whitelist signature does not match (signer {peer.subject_dn})") from None
