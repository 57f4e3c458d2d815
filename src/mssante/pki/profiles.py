"""Certificate profiles: the keys and X.509 v3 extensions of each kind of certificate.

| kind           | issuer         | key usage                           | extended key usage     |
|----------------|----------------|-------------------------------------|------------------------|
| root CA        | itself         | keyCertSign, cRLSign                | —                      |
| organisations, | root           | keyCertSign, cRLSign                | —                      |
|   persons CA   |                |                                     |                        |
| server         | organisations  | digitalSignature, keyEncipherment   | serverAuth, clientAuth |
| organisation   | organisations  | digitalSignature, keyEncipherment   | clientAuth             |
| person         | persons        | digitalSignature                    | clientAuth             |
| signing        | organisations  | digitalSignature, nonRepudiation    | —                      |

An MTA certificate carries both serverAuth and clientAuth: the same certificate
answers on port 25 and presents itself when delivering to another operator.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from mssante.errors import PKIError

CA_KEY_SIZE = 3072
LEAF_KEY_SIZE = 2048
KINDS = ("server", "organisation", "person", "signing")


def new_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False,
               key_encipherment: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=content_commitment,
        key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
        key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
        decipher_only=False)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey,
             serial: int, not_before: datetime, not_after: datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            # RFC 5280 §4.2.1.2: every CA certificate MUST carry a SKI; leaves SHOULD.
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # RFC 5280 §4.2.1.1: MUST be present in all but self-signed certificates.
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def root_certificate(subject: x509.Name, key: rsa.RSAPrivateKey, serial: int,
                     not_before: datetime, not_after: datetime) -> x509.Certificate:
    """A self-signed root; path length 1 (root -> intermediate -> leaf)."""
    builder = (_builder(subject, subject, key.public_key(), serial, not_before, not_after)
               # RFC 5280 §4.2.1.9: critical in CA certificates.
               .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
               # RFC 5280 §4.2.1.3: SHOULD be critical.
               .add_extension(_key_usage(cert_sign=True), critical=True))
    return builder.sign(key, hashes.SHA256())


def intermediate_certificate(subject: x509.Name, public_key: rsa.RSAPublicKey,
                             issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey,
                             serial: int, not_before: datetime,
                             not_after: datetime) -> x509.Certificate:
    """An issuing CA under the root; it may sign only end-entity certificates."""
    builder = (_builder(subject, issuer.subject, public_key, serial, not_before, not_after)
               .add_extension(_authority_key_id(issuer), critical=False)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(_key_usage(cert_sign=True), critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


def leaf_certificate(kind: str, subject: x509.Name, public_key: rsa.RSAPublicKey,
                     issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey, serial: int,
                     not_before: datetime, not_after: datetime, *,
                     dns_names: Sequence[str] = (),
                     ip_addresses: Sequence[str] = ()) -> x509.Certificate:
    """An end-entity certificate of one of ``KINDS``."""
    builder = (_builder(subject, issuer.subject, public_key, serial, not_before, not_after)
               .add_extension(_authority_key_id(issuer), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if kind == "server":
        builder = (builder
                   .add_extension(_key_usage(digital_signature=True, key_encipherment=True),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]),
                                  critical=False)
                   .add_extension(_subject_alt_name(dns_names, ip_addresses), critical=False))
    elif kind == "organisation":
        builder = (builder
                   .add_extension(_key_usage(digital_signature=True, key_encipherment=True),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                  critical=False))
    elif kind == "person":
        builder = (builder
                   .add_extension(_key_usage(digital_signature=True), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                  critical=False))
    elif kind == "signing":
        builder = builder.add_extension(
            _key_usage(digital_signature=True, content_commitment=True), critical=True)
    else:
        raise PKIError(f"unknown certificate kind {kind!r} (known: {', '.join(KINDS)})")
    return builder.sign(issuer_key, hashes.SHA256())


def _subject_alt_name(dns_names: Sequence[str],
                      ip_addresses: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for dns in dns_names:
        dns = dns.strip().lower().rstrip(".")
        if not dns or dns in seen:
            continue
        seen.add(dns)
        try:
            names.append(x509.DNSName(dns))
        except ValueError as exc:  # non-ASCII: the caller must give the A-label
            raise PKIError(f"invalid DNS name {dns!r}: {exc}") from exc
    for ip in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip.strip())))
        except ValueError as exc:
            raise PKIError(f"invalid IP address {ip!r}") from exc
    if not names:
        raise PKIError("a server certificate needs at least one DNS name or IP address")
    return x509.SubjectAlternativeName(names)
