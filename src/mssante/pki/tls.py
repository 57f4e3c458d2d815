"""TLS contexts of the trust space: the trust-space root is the only trusted CA.

TLS 1.2 minimum, TLS 1.2 suites ECDHE-RSA with AES-GCM or AES-CBC only, TLS 1.3
with OpenSSL's default suites (all AEAD). Certificate paths are checked with
X509_V_FLAG_X509_STRICT (RFC 5280 conformance of every certificate in the path).
Revocation is not checked here: contexts live long
and CRLs change; ``mssante.pki.verify.CertificateChecker`` checks the peer's
certificate after the handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from mssante.errors import PKIError

# MSSanté Réf#2: TLS 1.2 suites ECDHE-RSA with AES-GCM or AES-CBC only, IGC-Santé the
# only CA. RFC 5289 §3.2 suites, as OpenSSL spells them; the SHA-1 CBC suites are left
# out (ANSSI guide TLS: the MAC must use SHA-2).
TLS12_CIPHERS = ":".join([
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-SHA384",
    "ECDHE-RSA-AES128-SHA256",
])

_VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def _harden(context: ssl.SSLContext, ca_file: Path) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        context.load_verify_locations(cafile=str(ca_file))  # only this: no system CAs
    except (OSError, ssl.SSLError) as exc:
        raise PKIError(f"cannot load the CA file {ca_file}: {exc}") from exc


def _load_chain(context: ssl.SSLContext, cert_file: Path, key_file: Path | None) -> None:
    try:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise PKIError(f"cannot load the certificate {cert_file} and key "
                       f"{key_file or cert_file}: {exc}") from exc


def server_context(cert_file: Path, key_file: Path, ca_file: Path, *,
                   client_cert: Literal["none", "optional", "required"]) -> ssl.SSLContext:
    """A server context; ``client_cert`` says whether clients must present a certificate.

    The MTA between operators uses ``"required"`` (mutual TLS); submission and IMAP
    use ``"optional"`` (a CPS card or organisation certificate may authenticate).
    """
    if client_cert not in _VERIFY_MODES:
        raise PKIError(f"client_cert must be one of {', '.join(_VERIFY_MODES)}, "
                       f"not {client_cert!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context, ca_file)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.check_hostname = False
    context.verify_mode = _VERIFY_MODES[client_cert]
    _load_chain(context, cert_file, key_file)
    return context


def client_context(ca_file: Path, cert_file: Path | None = None,
                   key_file: Path | None = None, *,
                   check_hostname: bool = False) -> ssl.SSLContext:
    """A client context verifying the server against ``ca_file`` only.

    With ``cert_file`` the client presents that certificate (``key_file`` defaults to
    a key held in ``cert_file``). Between operators the name check is the whitelist's
    DN check, so ``check_hostname`` is off by default.
    """
    if key_file is not None and cert_file is None:
        raise PKIError("a client key was given without its certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context, ca_file)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if cert_file is not None:
        _load_chain(context, cert_file, key_file)
    return context
