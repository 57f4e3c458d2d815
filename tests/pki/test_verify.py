"""CertificateChecker: what an operator runs on each peer certificate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mssante.errors import CertificateRejected
from mssante.pki import profiles
from mssante.pki.ca import PKI, IssuedCertificate
from mssante.pki.crl import Revocation, build_crl
from mssante.pki.names import subject_name
from mssante.pki.verify import CertificateChecker

MakeChecker = Callable[[PKI], CertificateChecker]


def _ca_key(pki: PKI, ca: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(
        (pki.directory / f"{ca}-ca.key").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _leaf(issued: IssuedCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificates(issued.cert_file.read_bytes())[0]


def test_accepts_a_certificate_of_the_trust_space(pki: PKI, mta: IssuedCertificate,
                                                  make_checker: MakeChecker) -> None:
    peer = make_checker(pki).check_chain_pem(mta.cert_file.read_bytes())
    assert peer.subject_dn == mta.subject_dn
    assert peer.issuer_dn == "CN=MSSanté Organisations CA,O=MSSanté trust space,C=FR"
    assert peer.serial == mta.serial
    assert peer.not_after == mta.not_after
    assert peer.certificate == _leaf(mta)


def test_accepts_der_and_objects_and_person_certificates(
        pki: PKI, mta: IssuedCertificate, person: IssuedCertificate,
        make_checker: MakeChecker) -> None:
    checker = make_checker(pki)
    der = _leaf(mta).public_bytes(serialization.Encoding.DER)
    assert checker.check(der).serial == mta.serial
    assert checker.check(_leaf(person)).issuer_dn.startswith("CN=MSSanté Persons CA")


def test_rejects_a_revoked_certificate_once_the_crl_is_known(
        pki: PKI, tmp_path: Path, make_checker: MakeChecker) -> None:
    issued = pki.issue_server("mta.gone.mssante.fr", organisation="Gone", out_dir=tmp_path,
                              name="gone")
    before_revocation = make_checker(pki)
    pki.revoke(issued.serial, "keyCompromise")
    after_revocation = make_checker(pki)

    with pytest.raises(CertificateRejected) as rejected:
        after_revocation.check_chain_pem(issued.cert_file.read_bytes())
    message = str(rejected.value)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f"certificate serial {issued.serial} (CN=mta.gone.mssante.fr,O=Gone,C=FR)" in message
    assert f"was revoked on {today}" in message
    assert "keyCompromise" in message
    # A checker is a snapshot: the operator rebuilds it when it fetches new CRLs.
    assert before_revocation.check_chain_pem(issued.cert_file.read_bytes()).serial \
        == issued.serial


def test_the_newest_crl_of_a_ca_wins(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue_organisation("app", organisation="O", out_dir=tmp_path, name="app")
    old_crl = pki.crl_der("organisations")
    pki.revoke(issued.serial)
    new_crl = pki.crl_der("organisations")
    root, orgs = pki.root_cert_file.read_bytes(), pki.ca_cert_file("organisations").read_bytes()
    for crls in ([old_crl, new_crl], [new_crl, old_crl]):
        checker = CertificateChecker(root, [orgs], crls)
        with pytest.raises(CertificateRejected, match="was revoked on"):
            checker.check(_leaf(issued))


def test_rejects_a_certificate_of_another_pki(pki: PKI, foreign_mta: IssuedCertificate,
                                              make_checker: MakeChecker) -> None:
    # Same subject, same CA names: only the signatures differ.
    with pytest.raises(CertificateRejected,
                       match="is not issued by the trust-space PKI"):
        make_checker(pki).check_chain_pem(foreign_mta.cert_file.read_bytes())


def test_rejects_an_expired_certificate(pki: PKI, make_checker: MakeChecker) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    issuer = pki.ca_certificate("organisations")
    key = profiles.new_key(2048)
    expired = profiles.leaf_certificate(
        "server", subject_name(common_name="mta.old.mssante.fr", organisation="Old"),
        key.public_key(), issuer, _ca_key(pki, "organisations"), 4242424242,
        now - timedelta(days=30), now - timedelta(days=1), dns_names=["mta.old.mssante.fr"])
    ended = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
    with pytest.raises(CertificateRejected,
                       match=f"certificate serial 4242424242 .* expired on {ended}"):
        make_checker(pki).check(expired)


def test_validity_window_is_checked_at_the_given_time(pki: PKI, mta: IssuedCertificate,
                                                      make_checker: MakeChecker) -> None:
    checker = make_checker(pki)
    with pytest.raises(CertificateRejected, match="is not valid before"):
        checker.check_chain_pem(mta.cert_file.read_bytes(),
                                at=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(CertificateRejected, match="expired on"):
        checker.check_chain_pem(mta.cert_file.read_bytes(),
                                at=mta.not_after + timedelta(seconds=1))


def test_rejects_everything_under_a_revoked_intermediate(pki: PKI, mta: IssuedCertificate,
                                                         person: IssuedCertificate) -> None:
    orgs = pki.ca_certificate("organisations")
    now = datetime.now(UTC).replace(microsecond=0)
    root_crl = build_crl(pki.ca_certificate("root"), _ca_key(pki, "root"),
                         [Revocation(orgs.serial_number, now, "cACompromise")], number=99,
                         last_update=now, next_update=now + timedelta(days=7))
    checker = CertificateChecker(
        pki.root_cert_file.read_bytes(),
        [pki.ca_cert_file("organisations").read_bytes(),
         pki.ca_cert_file("persons").read_bytes()],
        [root_crl.public_bytes(serialization.Encoding.PEM)])
    with pytest.raises(CertificateRejected,
                       match=r"issuing CA serial \d+ \(CN=MSSanté Organisations CA.*"
                             r"was revoked on .*cACompromise"):
        checker.check(_leaf(mta))
    assert checker.check(_leaf(person)).serial == person.serial  # other branch unaffected


def test_rejects_a_ca_certificate_presented_as_a_peer(pki: PKI,
                                                      make_checker: MakeChecker) -> None:
    with pytest.raises(CertificateRejected, match="is a CA certificate"):
        make_checker(pki).check(pki.ca_certificate("persons"))


def test_refuses_trust_material_that_does_not_chain_to_the_root(
        pki: PKI, foreign_pki: PKI) -> None:
    root = pki.root_cert_file.read_bytes()
    with pytest.raises(CertificateRejected, match="not a CA issued by the trust-space root"):
        CertificateChecker(root, [foreign_pki.ca_cert_file("organisations").read_bytes()])
    with pytest.raises(CertificateRejected, match="not signed by a CA of the trust space"):
        CertificateChecker(root, [pki.ca_cert_file("organisations").read_bytes()],
                           [foreign_pki.crl_der("organisations")])
    with pytest.raises(CertificateRejected, match="not a CRL"):
        CertificateChecker(root, crls=[b"garbage"])
    with pytest.raises(CertificateRejected, match="not a self-signed CA"):
        CertificateChecker(pki.ca_cert_file("organisations").read_bytes())


def test_crl_dates_and_no_crl_behaviour(pki: PKI, mta: IssuedCertificate,
                                        make_checker: MakeChecker) -> None:
    bare = CertificateChecker(pki.root_cert_file.read_bytes(),
                              [pki.ca_cert_file("organisations").read_bytes()])
    assert bare.crl_updated is None and bare.crl_next_update is None
    assert bare.check(_leaf(mta)).serial == mta.serial  # no CRL: not a reason to refuse
    checker = make_checker(pki)
    crls = [x509.load_der_x509_crl(pki.crl_der(ca)) for ca in ("root", "organisations",
                                                               "persons")]
    assert checker.crl_updated == max(c.last_update_utc for c in crls)
    assert checker.crl_next_update == min(c.next_update_utc for c in crls
                                          if c.next_update_utc is not None)


def test_root_bundle_may_carry_the_intermediates(pki: PKI, person: IssuedCertificate) -> None:
    bundle = b"".join(pki.ca_cert_file(ca).read_bytes()
                      for ca in ("root", "organisations", "persons"))
    checker = CertificateChecker(bundle, crls=[pki.crl_der("persons")])
    assert checker.check(_leaf(person)).serial == person.serial
