"""The CA hierarchy on disk: creation, reload, issuing, revocation and CRLs."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mssante.errors import PKIError
from mssante.pki.ca import PKI, IssuedCertificate, serial_of
from mssante.pki.crl import crl_number

CAS = ("root", "organisations", "persons")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def _crl(pki: PKI, ca: str) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(pki.crl_der(ca))


# -- hierarchy ---------------------------------------------------------------------


def test_hierarchy_files_and_chain_of_trust(pki: PKI) -> None:
    for ca in CAS:
        assert pki.ca_cert_file(ca).is_file()
        assert (pki.directory / f"{ca}-ca.key").is_file()
        assert pki.crl_file(ca).is_file()
    assert pki.root_cert_file == pki.ca_cert_file("root")
    root = pki.ca_certificate("root")
    root.verify_directly_issued_by(root)
    for ca in ("organisations", "persons"):
        cert = pki.ca_certificate(ca)
        cert.verify_directly_issued_by(root)
        constraints = _ext(cert, x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        assert constraints.value.path_length == 0
        usage = _ext(cert, x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign
    assert _ext(root, x509.BasicConstraints).value.path_length == 1
    for ca in CAS:
        key = pki.ca_certificate(ca).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072


def test_ca_keys_are_private_from_creation(pki: PKI) -> None:
    for ca in CAS:
        assert _mode(pki.directory / f"{ca}-ca.key") == 0o600
        assert _mode(pki.ca_cert_file(ca)) == 0o644


def test_reload_keeps_the_same_hierarchy(pki: PKI) -> None:
    before = {ca: pki.ca_cert_file(ca).read_bytes() for ca in CAS}
    again = PKI.create_or_load(pki.directory)
    loaded = PKI.load(pki.directory)
    for ca in CAS:
        assert again.ca_cert_file(ca).read_bytes() == before[ca]
        assert loaded.ca_certificate(ca) == pki.ca_certificate(ca)


def test_unknown_ca_name_is_refused(pki: PKI) -> None:
    with pytest.raises(PKIError, match="unknown CA 'users'"):
        pki.ca_cert_file("users")


def test_load_without_a_pki_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(PKIError, match="mssante pki init"):
        PKI.load(tmp_path / "nothing")


def test_half_created_directory_is_created_again(tmp_path: Path) -> None:
    first = PKI.create_or_load(tmp_path / "pki", ca_key_size=2048)
    old_orgs = first.ca_cert_file("organisations").read_bytes()
    first.root_cert_file.unlink()  # as if creation had died before its last write
    second = PKI.create_or_load(tmp_path / "pki", ca_key_size=2048)
    assert second.ca_cert_file("organisations").read_bytes() != old_orgs
    second.ca_certificate("organisations").verify_directly_issued_by(
        second.ca_certificate("root"))
    assert second.issued() == []


def test_missing_root_with_issued_certificates_is_not_recreated(tmp_path: Path) -> None:
    first = PKI.create_or_load(tmp_path / "pki", ca_key_size=2048)
    first.issue_signing("whitelist signer", out_dir=tmp_path / "out", name="signer")
    first.root_cert_file.unlink()
    with pytest.raises(PKIError, match=r"root-ca\.pem is missing"):
        PKI.create_or_load(tmp_path / "pki", ca_key_size=2048)


# -- issuing -----------------------------------------------------------------------


def test_server_certificate(pki: PKI, mta: IssuedCertificate) -> None:
    assert mta.kind == "server"
    assert mta.subject_dn == ("CN=mta.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,"
                              "ST=Paris (75),C=FR")
    leaf, issuer = _chain(mta.cert_file)
    assert issuer == pki.ca_certificate("organisations")
    leaf.verify_directly_issued_by(issuer)
    assert leaf.serial_number == mta.serial == serial_of(mta.cert_file)
    assert leaf.not_valid_after_utc == mta.not_after
    assert mta.not_after - datetime.now(UTC) > timedelta(days=824)
    assert not _ext(leaf, x509.BasicConstraints).value.ca
    assert set(_ext(leaf, x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mta.ch-xyz.mssante.fr", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    aki = _ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(issuer, x509.SubjectKeyIdentifier).value.digest
    assert _ext(leaf, x509.KeyUsage).critical


def test_leaf_key_matches_certificate_and_is_private(mta: IssuedCertificate) -> None:
    assert _mode(mta.key_file) == 0o600
    key = serialization.load_pem_private_key(mta.key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    leaf = _chain(mta.cert_file)[0]
    assert leaf.public_key() == key.public_key()


def test_person_certificate(pki: PKI, person: IssuedCertificate) -> None:
    leaf, issuer = _chain(person.cert_file)
    assert issuer == pki.ca_certificate("persons")
    leaf.verify_directly_issued_by(issuer)
    assert leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "810102727017"
    assert leaf.subject.get_attributes_for_oid(NameOID.GIVEN_NAME)[0].value == "Jean"
    assert leaf.subject.get_attributes_for_oid(NameOID.SURNAME)[0].value == "Dupont"
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        _ext(leaf, x509.SubjectAlternativeName)


def test_organisation_certificate(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue_organisation("compte_rendu_patient_noreply", organisation="CH XYZ",
                                    organisation_unit="1580008803", out_dir=tmp_path,
                                    name="app", days=30)
    leaf, issuer = _chain(issued.cert_file)
    assert issuer == pki.ca_certificate("organisations")
    assert issued.subject_dn == "CN=compte_rendu_patient_noreply,OU=1580008803,O=CH XYZ,C=FR"
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert timedelta(days=29) < issued.not_after - datetime.now(UTC) <= timedelta(days=30)


def test_signing_certificate(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue_signing("MSSanté whitelist signer", out_dir=tmp_path, name="signer")
    leaf = _chain(issued.cert_file)[0]
    usage = _ext(leaf, x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert not usage.key_encipherment and not usage.key_cert_sign
    with pytest.raises(x509.ExtensionNotFound):
        _ext(leaf, x509.ExtendedKeyUsage)
    assert issued.kind == "signing"


def test_registry_records_each_issue(pki: PKI, mta: IssuedCertificate,
                                     person: IssuedCertificate) -> None:
    records = {r.serial: r for r in pki.issued()}
    assert records[mta.serial].kind == "server"
    assert records[mta.serial].ca == "organisations"
    assert records[mta.serial].cert_file == mta.cert_file
    assert records[mta.serial].subject_dn == mta.subject_dn
    assert records[person.serial].ca == "persons"
    stored = json.loads((pki.directory / "issued.json").read_text())
    assert {c["serial"] for c in stored["certificates"]} == set(records)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "../escape"}, "invalid file name"),
    ({"days": 0}, "at least one day"),
    ({"ip_addresses": ["999.1.1.1"]}, "invalid IP address"),
])
def test_bad_issue_requests_are_refused(pki: PKI, tmp_path: Path, kwargs: dict[str, object],
                                        message: str) -> None:
    args: dict[str, object] = {"organisation": "X", "out_dir": tmp_path, "name": "x"}
    args.update(kwargs)
    before = len(pki.issued())
    with pytest.raises(PKIError, match=message):
        pki.issue_server("mta.x.mssante.fr", **args)  # type: ignore[arg-type]
    assert len(pki.issued()) == before
    assert not (tmp_path / "x.key").exists()


# -- revocation and CRLs -------------------------------------------------------------


def test_fresh_crls_are_signed_and_carry_a_number(pki: PKI) -> None:
    for ca in CAS:
        crl = _crl(pki, ca)
        assert crl.is_signature_valid(pki.ca_certificate(ca).public_key())  # type: ignore[arg-type]
        assert crl.issuer == pki.ca_certificate(ca).subject
        assert crl_number(crl) >= 1
        assert crl.next_update_utc is not None
        assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
        _ext_crl = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        assert _ext_crl.value.key_identifier == _ext(
            pki.ca_certificate(ca), x509.SubjectKeyIdentifier).value.digest


def test_revoke_publishes_a_new_crl_at_once(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue_server("mta.old.mssante.fr", organisation="Old", out_dir=tmp_path,
                              name="old")
    number_before = crl_number(_crl(pki, "organisations"))
    persons_before = pki.crl_der("persons")

    pki.revoke(issued.serial, "keyCompromise")

    on_disk = x509.load_der_x509_crl(pki.crl_file_path("organisations").read_bytes())
    entry = on_disk.get_revoked_certificate_by_serial_number(issued.serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl_number(on_disk) > number_before
    assert pki.crl_der("persons") == persons_before  # other CAs untouched
    record = pki.record(issued.serial)
    assert record.revoked and record.reason == "keyCompromise"


def test_revoking_twice_is_a_no_op(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue_person("Marie Curie", given_name="Marie", surname="Curie",
                              id_nat_ps="810000000001", out_dir=tmp_path, name="curie")
    pki.revoke(issued.serial, "superseded")
    crl_after_first = pki.crl_der("persons")
    first = pki.record(issued.serial)
    pki.revoke(issued.serial, "keyCompromise")
    assert pki.crl_der("persons") == crl_after_first
    assert pki.record(issued.serial) == first


def test_unspecified_reason_is_left_out_of_the_entry(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue_signing("old signer", out_dir=tmp_path, name="s")
    pki.revoke(issued.serial)
    entry = _crl(pki, "organisations").get_revoked_certificate_by_serial_number(issued.serial)
    assert entry is not None
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280 §5.3.1
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_revoke_unknown_serial_or_reason(pki: PKI, mta: IssuedCertificate) -> None:
    with pytest.raises(PKIError, match="no certificate with serial 12345"):
        pki.revoke(12345)
    with pytest.raises(PKIError, match="unknown revocation reason 'stolen'"):
        pki.revoke(mta.serial, "stolen")
    assert not pki.record(mta.serial).revoked


def test_stale_crl_is_regenerated_when_served(tmp_path: Path) -> None:
    pki = PKI.create_or_load(tmp_path / "pki", ca_key_size=2048)
    revoked_person = pki.issue_person("A B", given_name="A", surname="B", id_nat_ps="8100",
                                      out_dir=tmp_path, name="ab")
    pki.revoke(revoked_person.serial)
    before = _crl(pki, "persons")
    # Opened with a longer validity, the 7-day CRL has less than half of it left.
    longer = PKI.load(pki.directory, crl_validity=timedelta(days=30))
    fresh = x509.load_der_x509_crl(longer.crl_der("persons"))
    assert crl_number(fresh) > crl_number(before)
    assert fresh.next_update_utc is not None
    assert fresh.next_update_utc - fresh.last_update_utc == timedelta(days=30)
    assert {e.serial_number for e in fresh} == {revoked_person.serial}
    # The file on disk is the new one, and it is fresh for the 7-day PKI too.
    assert pki.crl_file("persons").read_bytes() == longer.crl_der("persons")
    assert pki.crl_der("persons") == longer.crl_der("persons")


def test_serial_of_rejects_a_file_without_certificate(tmp_path: Path) -> None:
    path = tmp_path / "empty.pem"
    path.write_text("nothing here\n")
    with pytest.raises(PKIError, match="no certificate"):
        serial_of(path)


def test_lost_crl_file_is_rewritten_when_served(pki: PKI) -> None:
    number = crl_number(_crl(pki, "root"))
    pki.crl_file_path("root").unlink()
    assert crl_number(x509.load_der_x509_crl(pki.crl_der("root"))) > number
    assert pki.crl_file_path("root").is_file()


def test_concurrent_issuers_do_not_lose_registry_entries(pki: PKI, tmp_path: Path) -> None:
    # Two PKI objects on one directory stand for the trust space and `mssante pki`.
    handles = [pki, PKI.load(pki.directory)]
    issued: list[IssuedCertificate] = []
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for n in range(3):
                issued.append(handles[index % 2].issue_signing(
                    f"signer {index}-{n}", out_dir=tmp_path, name=f"s{index}-{n}"))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(issued) == 12
    recorded = {r.serial for r in pki.issued()}
    assert {i.serial for i in issued} <= recorded
    assert len({i.serial for i in issued}) == 12
