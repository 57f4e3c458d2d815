"""The trust space's certificate authority, standing in for IGC-Santé.

Directory layout (``PKI.create_or_load(directory)``)::

    root-ca.pem  root-ca.key                 self-signed root, path length 1
    organisations-ca.pem  organisations-ca.key   servers, organisations, signing
    persons-ca.pem  persons-ca.key           professionals (what a CPS card carries)
    crl/root.crl  crl/organisations.crl  crl/persons.crl   DER, kept fresh
    issued.json                              registry of end-entity certificates
    .lock                                    flock taken by every mutation

Invariants:
- ``root-ca.pem`` is written last when the hierarchy is created: its presence
  means the hierarchy is complete; without it a half-created directory is
  created again from scratch.
- Every mutation (issue, revoke, CRL regeneration) holds the directory lock and
  re-reads the registry, so the trust-space process and ``mssante pki`` can work
  on the same directory concurrently. The registry is written before the CRL.
- Serial numbers are random 63-bit integers, unique across the three CAs, so
  that ``revoke(serial)`` needs no CA name.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mssante.errors import PKIError
from mssante.files import private_dir
from mssante.pki import profiles
from mssante.pki.crl import Revocation, build_crl, crl_number, load_crl, reason_name
from mssante.pki.files import locked, read_bytes, write_atomic, write_private
from mssante.pki.names import dn_string, subject_name
from mssante.pki.registry import IssuedCertificateRecord, load_registry, save_registry

CA_NAMES = ("root", "organisations", "persons")
_ORGANISATION = "MSSanté trust space"
_CA_COMMON_NAMES = {
    "root": "MSSanté Root CA",
    "organisations": "MSSanté Organisations CA",
    "persons": "MSSanté Persons CA",
}
_ISSUER_OF_KIND = {
    "server": "organisations",
    "organisation": "organisations",
    "signing": "organisations",
    "person": "persons",
}
ROOT_VALIDITY = timedelta(days=20 * 365)
INTERMEDIATE_VALIDITY = timedelta(days=10 * 365)
CLOCK_SKEW = timedelta(minutes=5)  # notBefore is set this far back
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


@dataclass(frozen=True)
class IssuedCertificate:
    """What issuing produced: the files written and the certificate's identity."""

    cert_file: Path  # PEM chain: leaf then issuing CA
    key_file: Path  # PEM private key (PKCS#8, unencrypted, mode 0600)
    serial: int
    subject_dn: str
    not_after: datetime
    kind: str  # "server" | "organisation" | "person" | "signing"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _new_serial(used: set[int]) -> int:
    # RFC 5280 §4.1.2.2: positive, at most 20 octets; unpredictable (CA/B BR §7.1).
    while True:
        serial = secrets.randbits(63)
        if serial >= 1 << 32 and serial not in used:
            return serial


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_bytes(path))
    except ValueError as exc:
        raise PKIError(f"{path}: not a PEM certificate ({exc})") from exc


def _check_ca(ca: str) -> str:
    if ca not in CA_NAMES:
        raise PKIError(f"unknown CA {ca!r} (known: {', '.join(CA_NAMES)})")
    return ca


def serial_of(cert_file: Path) -> int:
    """Serial number of the first certificate in a PEM (or DER) file."""
    data = read_bytes(cert_file)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)[0].serial_number
        return x509.load_der_x509_certificate(data).serial_number
    except ValueError as exc:
        raise PKIError(f"{cert_file}: no certificate found ({exc})") from exc


class PKI:
    """The three-CA hierarchy kept in one directory; see the module docstring."""

    def __init__(self, directory: Path, cas: dict[str, x509.Certificate],
                 crl_validity: timedelta) -> None:
        self._directory = directory
        self._cas = cas
        self._crl_validity = crl_validity

    # -- opening -----------------------------------------------------------------

    @classmethod
    def create_or_load(cls, directory: Path, *, crl_validity: timedelta = timedelta(days=7),
                       ca_key_size: int = profiles.CA_KEY_SIZE) -> PKI:
        """Open the PKI in ``directory``, creating the hierarchy on first call.

        ``ca_key_size`` (RSA bits of the three CA keys) matters only at creation.
        """
        directory = directory.absolute()
        if crl_validity <= timedelta(0):
            raise PKIError("the CRL validity must be positive")
        try:
            private_dir(directory)
        except OSError as exc:
            raise PKIError(f"cannot create {directory}: {exc.strerror or exc}") from exc
        with locked(directory):
            if not (directory / "root-ca.pem").exists():
                cls._create(directory, crl_validity, ca_key_size)
        return cls.load(directory, crl_validity=crl_validity)

    @classmethod
    def load(cls, directory: Path, *, crl_validity: timedelta = timedelta(days=7)) -> PKI:
        """Open an existing PKI; PKIError when ``directory`` holds none."""
        directory = directory.absolute()
        if crl_validity <= timedelta(0):
            raise PKIError("the CRL validity must be positive")
        if not (directory / "root-ca.pem").exists():
            raise PKIError(f"no PKI in {directory} (create it with `mssante pki init`)")
        cas = {ca: _load_certificate(directory / f"{ca}-ca.pem") for ca in CA_NAMES}
        for ca in ("organisations", "persons"):
            try:
                cas[ca].verify_directly_issued_by(cas["root"])
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise PKIError(f"{directory / f'{ca}-ca.pem'} is not issued by the root "
                               f"CA of {directory}") from exc
        pki = cls(directory, cas, crl_validity)
        for ca in CA_NAMES:
            if not pki.crl_file_path(ca).exists():
                with locked(directory):
                    pki._write_crl(ca, load_registry(directory))
        return pki

    @classmethod
    def _create(cls, directory: Path, crl_validity: timedelta, ca_key_size: int) -> None:
        if ca_key_size < 2048:
            raise PKIError(f"CA keys need at least 2048 bits, not {ca_key_size}")
        if load_registry(directory):
            raise PKIError(f"{directory}: root-ca.pem is missing but certificates were "
                           f"issued; restore it rather than creating a new hierarchy")
        now = _now()
        root_key = profiles.new_key(ca_key_size)
        root = profiles.root_certificate(cls._ca_subject("root"), root_key,
                                         _new_serial(set()), now - CLOCK_SKEW,
                                         now + ROOT_VALIDITY)
        cas = {"root": root}
        keys = {"root": root_key}
        for ca in ("organisations", "persons"):
            key = profiles.new_key(ca_key_size)
            cas[ca] = profiles.intermediate_certificate(
                cls._ca_subject(ca), key.public_key(), root, root_key,
                _new_serial({c.serial_number for c in cas.values()}),
                now - CLOCK_SKEW, now + INTERMEDIATE_VALIDITY)
            keys[ca] = key
        pki = cls(directory, cas, crl_validity)
        save_registry(directory, [])
        for ca in ("organisations", "persons", "root"):  # root-ca.pem last: the marker
            write_private(directory / f"{ca}-ca.key", _key_pem(keys[ca]))
            pki._write_crl(ca, [])
            write_atomic(directory / f"{ca}-ca.pem", _pem(cas[ca]))

    @staticmethod
    def _ca_subject(ca: str) -> x509.Name:
        return subject_name(common_name=_CA_COMMON_NAMES[ca], organisation=_ORGANISATION)

    # -- the CAs -----------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def crl_validity(self) -> timedelta:
        return self._crl_validity

    @property
    def root_cert_file(self) -> Path:
        return self._directory / "root-ca.pem"

    def ca_cert_file(self, ca: str) -> Path:
        """PEM file of one CA certificate (``root``, ``organisations`` or ``persons``)."""
        return self._directory / f"{_check_ca(ca)}-ca.pem"

    def ca_certificate(self, ca: str) -> x509.Certificate:
        return self._cas[_check_ca(ca)]

    def _ca_key(self, ca: str) -> rsa.RSAPrivateKey:
        path = self._directory / f"{ca}-ca.key"
        try:
            key = serialization.load_pem_private_key(read_bytes(path), password=None)
        except (ValueError, TypeError) as exc:
            raise PKIError(f"{path}: not an unencrypted PEM private key") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PKIError(f"{path}: not an RSA key")
        return key

    # -- issuing -----------------------------------------------------------------

    def issue_server(self, common_name: str, *, organisation: str,
                     organisation_unit: str | None = None, state: str | None = None,
                     dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = (),
                     out_dir: Path, name: str, days: int = 825) -> IssuedCertificate:
        """An MTA / TLS endpoint certificate (serverAuth and clientAuth).

        The common name is added as a DNS subjectAltName when it is a host name.
        """
        subject = subject_name(common_name=common_name, organisation=organisation,
                               organisation_unit=organisation_unit, state=state)
        dns = ([common_name] if _HOSTNAME_RE.match(common_name) else []) + list(dns_names)
        return self._issue("server", subject, out_dir=out_dir, name=name, days=days,
                           dns_names=dns, ip_addresses=ip_addresses)

    def issue_organisation(self, common_name: str, *, organisation: str,
                           organisation_unit: str | None = None, out_dir: Path,
                           name: str, days: int = 825) -> IssuedCertificate:
        """An organisation certificate (clientAuth), e.g. for an APP mailbox."""
        subject = subject_name(common_name=common_name, organisation=organisation,
                               organisation_unit=organisation_unit)
        return self._issue("organisation", subject, out_dir=out_dir, name=name, days=days)

    def issue_person(self, common_name: str, *, given_name: str, surname: str,
                     id_nat_ps: str, out_dir: Path, name: str,
                     days: int = 825) -> IssuedCertificate:
        """A professional's authentication certificate (clientAuth), from the persons CA.

        The idNatPs goes in the subject's serialNumber attribute.
        """
        if not id_nat_ps.strip():
            raise PKIError("a person certificate needs the professional's idNatPs")
        subject = subject_name(common_name=common_name, given_name=given_name,
                               surname=surname, serial_number=id_nat_ps.strip())
        return self._issue("person", subject, out_dir=out_dir, name=name, days=days)

    def issue_signing(self, common_name: str, *, out_dir: Path, name: str,
                      days: int = 825) -> IssuedCertificate:
        """A signing certificate (digitalSignature, nonRepudiation) for the whitelist."""
        subject = subject_name(common_name=common_name, organisation=_ORGANISATION)
        return self._issue("signing", subject, out_dir=out_dir, name=name, days=days)

    def _issue(self, kind: str, subject: x509.Name, *, out_dir: Path, name: str, days: int,
               dns_names: Sequence[str] = (),
               ip_addresses: Sequence[str] = ()) -> IssuedCertificate:
        if not _FILE_NAME_RE.match(name):
            raise PKIError(f"invalid file name {name!r}: letters, digits, '.', '_', '-'")
        if days < 1:
            raise PKIError(f"validity must be at least one day, not {days}")
        ca = _ISSUER_OF_KIND[kind]
        issuer = self._cas[ca]
        out_dir = out_dir.absolute()
        cert_file, key_file = out_dir / f"{name}.pem", out_dir / f"{name}.key"
        key = profiles.new_key(profiles.LEAF_KEY_SIZE)  # slow: outside the lock
        with locked(self._directory):
            records = load_registry(self._directory)
            used = {r.serial for r in records} | {c.serial_number for c in self._cas.values()}
            now = _now()
            not_after = min(now + timedelta(days=days), issuer.not_valid_after_utc)
            cert = profiles.leaf_certificate(
                kind, subject, key.public_key(), issuer, self._ca_key(ca), _new_serial(used),
                now - CLOCK_SKEW, not_after, dns_names=dns_names, ip_addresses=ip_addresses)
            write_private(key_file, _key_pem(key))
            write_atomic(cert_file, _pem(cert) + _pem(issuer))
            subject_dn = dn_string(cert.subject)
            records.append(IssuedCertificateRecord(
                serial=cert.serial_number, kind=kind, subject_dn=subject_dn, ca=ca,
                issued_at=now, not_after=not_after, cert_file=cert_file))
            save_registry(self._directory, records)
        return IssuedCertificate(cert_file=cert_file, key_file=key_file,
                                 serial=cert.serial_number, subject_dn=subject_dn,
                                 not_after=not_after, kind=kind)

    # -- registry and revocation ---------------------------------------------------

    def issued(self) -> list[IssuedCertificateRecord]:
        """Every end-entity certificate issued, oldest first."""
        return load_registry(self._directory)

    def record(self, serial: int) -> IssuedCertificateRecord:
        """The registry entry of one serial; PKIError when this PKI never issued it."""
        for record in load_registry(self._directory):
            if record.serial == serial:
                return record
        raise PKIError(f"no certificate with serial {serial} was issued by this PKI")

    def revoke(self, serial: int, reason: str = "unspecified") -> None:
        """Revoke and publish a new CRL of the issuing CA at once; twice is a no-op."""
        reason = reason_name(reason)
        with locked(self._directory):
            records = load_registry(self._directory)
            index = next((i for i, r in enumerate(records) if r.serial == serial), None)
            if index is None:
                raise PKIError(f"no certificate with serial {serial} was issued by this PKI")
            if records[index].revoked:
                return
            records[index] = records[index].revoke(_now(), reason)
            save_registry(self._directory, records)
            self._write_crl(records[index].ca, records)

    # -- CRLs ----------------------------------------------------------------------

    def crl_file_path(self, ca: str) -> Path:
        """Where the DER CRL of ``ca`` lives, without refreshing it."""
        return self._directory / "crl" / f"{_check_ca(ca)}.crl"

    def crl_file(self, ca: str) -> Path:
        """The DER CRL file of ``ca``, regenerated first if it is getting old."""
        self.crl_der(ca)
        return self.crl_file_path(ca)

    def crl_der(self, ca: str) -> bytes:
        """The current CRL of ``ca`` (DER).

        It is regenerated when less than half of ``crl_validity`` remains before its
        nextUpdate, so a long-running trust space keeps serving fresh CRLs.
        """
        path = self.crl_file_path(ca)
        data = read_bytes(path) if path.exists() else b""
        if self._fresh(data):
            return data
        with locked(self._directory):
            # Another process may have refreshed it meanwhile; a lost file is rewritten.
            data = read_bytes(path) if path.exists() else b""
            if self._fresh(data):
                return data
            return self._write_crl(ca, load_registry(self._directory))

    def _fresh(self, data: bytes) -> bool:
        try:
            next_update = load_crl(data).next_update_utc
        except PKIError:
            return False
        return next_update is not None and next_update - _now() > self._crl_validity / 2

    def _write_crl(self, ca: str, records: Sequence[IssuedCertificateRecord]) -> bytes:
        """Build, sign and write the CRL of ``ca``; the caller holds the lock."""
        path = self.crl_file_path(ca)
        previous_number = 0
        if path.exists():
            with contextlib.suppress(PKIError):  # unreadable: the clock decides alone
                previous_number = crl_number(load_crl(read_bytes(path)))
        revocations = [Revocation(r.serial, r.revoked_at, r.reason or "unspecified")
                       for r in records if r.ca == ca and r.revoked_at is not None]
        now = _now()
        # RFC 5280 §5.2.3: monotonically increasing. Seconds since the epoch keep it so
        # even if the previous file was lost; +1 when two CRLs share a second.
        number = max(previous_number + 1, int(now.timestamp()))
        crl = build_crl(self._cas[ca], self._ca_key(ca), revocations,
                        number=number, last_update=now,
                        next_update=now + self._crl_validity)
        der = crl.public_bytes(serialization.Encoding.DER)
        write_atomic(path, der)
        return der
