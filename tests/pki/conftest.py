"""Two independent PKIs, made once per session: the trust space's and a foreign one.

RSA key generation is the slow part, so the hierarchies and the certificates most
tests need are issued here once. Tests that revoke issue their own certificate first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mssante.pki.ca import PKI, IssuedCertificate
from mssante.pki.verify import CertificateChecker

INTERMEDIATES = ("organisations", "persons")
ALL_CAS = ("root", *INTERMEDIATES)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create_or_load(tmp_path_factory.mktemp("trust-space") / "pki")


@pytest.fixture(scope="session")
def leaves_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("leaves")


@pytest.fixture(scope="session")
def mta(pki: PKI, leaves_dir: Path) -> IssuedCertificate:
    """The MTA certificate of ch-xyz.mssante.fr, valid for 127.0.0.1."""
    return pki.issue_server("mta.ch-xyz.mssante.fr", organisation="CH XYZ",
                            organisation_unit="318310021300028", state="Paris (75)",
                            dns_names=["localhost"], ip_addresses=["127.0.0.1"],
                            out_dir=leaves_dir, name="mta-ch-xyz")


@pytest.fixture(scope="session")
def peer_mta(pki: PKI, leaves_dir: Path) -> IssuedCertificate:
    """The MTA certificate of a second operator, medecin.mssante.fr."""
    return pki.issue_server("mta.medecin.mssante.fr", organisation="Medecin SAS",
                            ip_addresses=["127.0.0.1"], out_dir=leaves_dir,
                            name="mta-medecin")


@pytest.fixture(scope="session")
def person(pki: PKI, leaves_dir: Path) -> IssuedCertificate:
    return pki.issue_person("Jean Dupont", given_name="Jean", surname="Dupont",
                            id_nat_ps="810102727017", out_dir=leaves_dir, name="dupont")


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A second hierarchy with the very same CA names but its own keys."""
    return PKI.create_or_load(tmp_path_factory.mktemp("foreign") / "pki", ca_key_size=2048)


@pytest.fixture(scope="session")
def foreign_mta(foreign_pki: PKI, tmp_path_factory: pytest.TempPathFactory
                ) -> IssuedCertificate:
    return foreign_pki.issue_server("mta.ch-xyz.mssante.fr", organisation="CH XYZ",
                                    organisation_unit="318310021300028",
                                    state="Paris (75)", ip_addresses=["127.0.0.1"],
                                    out_dir=tmp_path_factory.mktemp("foreign-leaves"),
                                    name="impostor")


@pytest.fixture()
def make_checker() -> Callable[[PKI], CertificateChecker]:
    """A checker built from what an operator downloads: root, intermediates, CRLs."""

    def make(source: PKI) -> CertificateChecker:
        return CertificateChecker(
            source.root_cert_file.read_bytes(),
            [source.ca_cert_file(ca).read_bytes() for ca in INTERMEDIATES],
            [source.crl_der(ca) for ca in ALL_CAS])

    return make
