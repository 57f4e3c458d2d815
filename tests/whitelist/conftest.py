"""Trust spaces for the whitelist tests.

One trust space (PKI, signing and HTTPS certificates, an operator MTA certificate) is
created per session, because RSA key generation is slow; each test that changes
something gets its own copy of its directory, loaded with ``TrustSpace.create_or_load``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mssante.pki.ca import PKI, IssuedCertificate
from mssante.trustspace.server import RunningTrustSpace
from mssante.trustspace.service import TrustSpace
from mssante.whitelist.client import TrustClient
from mssante.whitelist.model import WhitelistEntry

OPERATOR_DOMAIN = "ch-xyz.mssante.fr"


@dataclass(frozen=True)
class Template:
    data_dir: Path
    mta: IssuedCertificate  # an operator MTA certificate issued by its PKI


@dataclass(frozen=True)
class Foreign:
    pki: PKI
    signing: IssuedCertificate


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    data_dir = tmp_path_factory.mktemp("trust-space")
    ts = TrustSpace.create_or_load(data_dir)
    mta = ts.pki.issue_server(f"mta.{OPERATOR_DOMAIN}", organisation="CH XYZ",
                              organisation_unit="318310021300028", state="Paris (75)",
                              out_dir=tmp_path_factory.mktemp("operator"), name="mta")
    ts.publisher.add(WhitelistEntry(OPERATOR_DOMAIN, "CENTRE HOSPITALIER XYZ", mta.subject_dn))
    return Template(data_dir, mta)


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Foreign:
    """Another PKI, which the trust space's operators must not trust."""
    directory = tmp_path_factory.mktemp("foreign")
    pki = PKI.create_or_load(directory / "pki")
    signing = pki.issue_signing("Liste blanche MSSante", out_dir=directory, name="signing")
    return Foreign(pki, signing)


@pytest.fixture
def trust_space(template: Template, tmp_path: Path) -> TrustSpace:
    """A private copy of the session's trust space."""
    data_dir = tmp_path / "trust-space"
    shutil.copytree(template.data_dir, data_dir)
    return TrustSpace.create_or_load(data_dir)


@pytest.fixture
def mta(template: Template) -> IssuedCertificate:
    return template.mta


@pytest.fixture
async def running(trust_space: TrustSpace) -> AsyncIterator[RunningTrustSpace]:
    async with RunningTrustSpace(trust_space) as server:
        yield server


@pytest.fixture
def client(running: RunningTrustSpace, trust_space: TrustSpace, tmp_path: Path) -> TrustClient:
    return TrustClient(running.url, trust_space.pki.root_cert_file, tmp_path / "cache",
                       refresh_interval=0.2, timeout=2.0)
