"""The trust space's state on disk.

Layout under ``data_dir``::

    pki/         the CA hierarchy, CRLs, issued certificates (mssante.pki)
    signing/     the whitelist signing certificate and key
    https/       the certificate and key of the HTTPS service
    whitelist/   the published whitelist set (XML, .sha256, .sig, signer chain)
    directory.sqlite3   the national directory (unless ``directory_url`` names another)
    extractions/ the published directory extract
    psc/         the PSC provider's signing keys and registered clients (mssante.psc)

``create_or_load`` is idempotent: it creates what is missing and reissues a
certificate that no longer verifies against the PKI (expired, revoked, issued by a
previous PKI, or lacking the configured hostname), then republishes the whitelist
when its signer changed.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from mssante.config import PSCSettings
from mssante.errors import CertificateRejected, PKIError
from mssante.files import private_dir
from mssante.pki.ca import PKI, IssuedCertificate
from mssante.pki.names import dn_string
from mssante.pki.verify import CertificateChecker
from mssante.whitelist.files import write_atomic
from mssante.whitelist.publisher import WhitelistPublisher

MANIFEST = "certificate.json"
RENEW_BEFORE = timedelta(days=30)  # reissue a service certificate this close to expiry
SIGNING_COMMON_NAME = "Liste blanche MSSante"
HTTPS_ORGANISATION = "Espace de confiance MSSante"
CA_NAMES = ("root", "organisations", "persons")


def _hosts(hostname: str) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses for the HTTPS certificate."""
    dns_names = ["localhost"]
    ips = ["127.0.0.1"]
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        if hostname not in dns_names:
            dns_names.append(hostname)
    else:
        if hostname not in ips:
            ips.append(hostname)
    return dns_names, ips


@dataclass
class TrustSpace:
    """The PKI, the whitelist publisher and the HTTPS certificate of one trust space."""

    data_dir: Path
    pki: PKI
    publisher: WhitelistPublisher
    https_cert: IssuedCertificate
    signing_cert: IssuedCertificate
    hostname: str = "127.0.0.1"
    directory_url: str = ""  # SQLAlchemy URL; empty: directory.sqlite3 in data_dir
    extract_interval: float = 60.0  # seconds between two rewrites of the public extract
    public_url: str = ""  # where clients reach it (config.TrustSpaceSettings.public_url)
    psc: PSCSettings = field(default_factory=PSCSettings)  # the PSC-like provider

    def base_url(self, port: int) -> str:
        """The public URL, or by default the HTTPS address served on ``port``."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"https://{host}:{port}"

    @property
    def directory_database(self) -> str:
        """The directory's database URL."""
        return self.directory_url or f"sqlite:///{self.data_dir / 'directory.sqlite3'}"

    @property
    def extract_dir(self) -> Path:
        return self.data_dir / "extractions"

    @property
    def psc_dir(self) -> Path:
        """The PSC provider's keys and clients (0700)."""
        return private_dir(self.data_dir / "psc")

    @staticmethod
    def psc_issuer(base_url: str) -> str:
        """The PSC provider's issuer, under the trust space's public URL."""
        return f"{base_url.rstrip('/')}/psc"

    @classmethod
    def create_or_load(cls, data_dir: Path, *, hostname: str = "127.0.0.1",
                       crl_validity: timedelta = timedelta(days=7),
                       directory_url: str = "", extract_interval: float = 60.0,
                       public_url: str = "", psc: PSCSettings | None = None) -> TrustSpace:
        private_dir(data_dir)
        pki = PKI.create_or_load(data_dir / "pki", crl_validity=crl_validity)
        checker = checker_for(pki)
        dns_names, ips = _hosts(hostname)

        signing_dir = data_dir / "signing"
        signing = _load(signing_dir, checker)
        signing_changed = signing is None
        if signing is None:
            signing = pki.issue_signing(SIGNING_COMMON_NAME, out_dir=signing_dir,
                                        name="whitelist-signing")
            _save(signing_dir, signing)

        https_dir = data_dir / "https"
        https = _load(https_dir, checker)
        if https is not None and not _covers(https, dns_names, ips):
            https = None
        if https is None:
            https = pki.issue_server(hostname, organisation=HTTPS_ORGANISATION,
                                     dns_names=dns_names, ip_addresses=ips,
                                     out_dir=https_dir, name="trust-space")
            _save(https_dir, https)

        publisher = WhitelistPublisher(data_dir / "whitelist", signing.cert_file,
                                       signing.key_file)
        if signing_changed or not publisher.is_published():
            publisher.republish()
        return cls(data_dir=data_dir, pki=pki, publisher=publisher, https_cert=https,
                   signing_cert=signing, hostname=hostname, directory_url=directory_url,
                   extract_interval=extract_interval, public_url=public_url,
                   psc=psc or PSCSettings())

    @property
    def root_cert_file(self) -> Path:
        return self.pki.root_cert_file

    def ca_cert_file(self, ca: str) -> Path:
        return self.pki.root_cert_file if ca == "root" else self.pki.ca_cert_file(ca)


def checker_for(pki: PKI) -> CertificateChecker:
    """A checker of the PKI's current state: root, intermediates and CRLs."""
    return CertificateChecker(
        pki.root_cert_file.read_bytes(),
        ca_pems=[pki.ca_cert_file(ca).read_bytes() for ca in CA_NAMES if ca != "root"],
        crls=[pki.crl_der(ca) for ca in CA_NAMES])


def _save(directory: Path, issued: IssuedCertificate) -> None:
    """Remember which files hold the certificate (the PKI decides their names)."""
    manifest = {"cert_file": issued.cert_file.name, "key_file": issued.key_file.name,
                "kind": issued.kind}
    write_atomic(directory / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def _load(directory: Path, checker: CertificateChecker) -> IssuedCertificate | None:
    """The certificate recorded in ``directory`` if it is still good, else None."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        cert_file = directory / str(manifest["cert_file"])
        key_file = directory / str(manifest["key_file"])
        chain = cert_file.read_bytes()
        if not key_file.exists():
            return None
        peer = checker.check_chain_pem(chain)
    except (OSError, ValueError, KeyError, TypeError, CertificateRejected, PKIError):
        return None
    if peer.not_after - datetime.now(UTC) < RENEW_BEFORE:
        return None
    cert = peer.certificate
    return IssuedCertificate(cert_file=cert_file, key_file=key_file, serial=cert.serial_number,
                             subject_dn=dn_string(cert.subject), not_after=peer.not_after,
                             kind=str(manifest["kind"]))


def _covers(issued: IssuedCertificate, dns_names: list[str], ips: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificates(issued.cert_file.read_bytes())[0]
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(dns_names) <= have_dns and set(ips) <= have_ips
