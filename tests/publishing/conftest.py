"""A trust space with a seeded directory, served over real TLS on 127.0.0.1, and an
operator configuration whose MTA certificate the whitelist binds to ch-xyz.mssante.fr.

The PKI, the HTTPS and MTA certificates come from the whitelist suite's session
template (key generation is slow); each test gets its own copy of the trust space.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.whitelist.conftest import foreign, mta, template, trust_space

from mssante.config import OperatorConfig, load_operator_config
from mssante.directory.model import Organisation, Practitioner
from mssante.directory.store import open_directory
from mssante.pki.ca import IssuedCertificate
from mssante.trustspace.server import RunningTrustSpace
from mssante.trustspace.service import TrustSpace

__all__ = ["foreign", "mta", "template", "trust_space"]

DOMAIN = "ch-xyz.mssante.fr"  # bound to the MTA certificate by the template's whitelist
RPPS = "10101010101"
ID_NAT_PS = "8" + RPPS
UNKNOWN_RPPS = "19999999999"  # no such professional in the directory
ID_NAT_ST = "1750000001"
PRACTITIONER = Practitioner(id_nat_ps=ID_NAT_PS, id_type="8", pp_id=RPPS, civility="DR",
                            family_name="MARTIN", given_name="Alice", profession_code="10",
                            profession_label="Médecin")
ORGANISATION = Organisation(id_nat_st=ID_NAT_ST, id_type="1",
                            legal_name="CENTRE HOSPITALIER XYZ", routing_line="75013 PARIS",
                            postal_code="75013", department="75", country="FRANCE")


@pytest.fixture
async def seeded(trust_space: TrustSpace) -> TrustSpace:
    directory = await open_directory(trust_space.directory_database)
    try:
        await directory.add_practitioner(PRACTITIONER)
        await directory.add_organisation(ORGANISATION)
        await directory.add_role(ID_NAT_PS, ID_NAT_ST)
    finally:
        await directory.close()
    return trust_space


@pytest.fixture
async def server(seeded: TrustSpace) -> AsyncIterator[RunningTrustSpace]:
    running = RunningTrustSpace(seeded)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def operator_config(tmp_path: Path, seeded: TrustSpace, server: RunningTrustSpace,
                    mta: IssuedCertificate) -> OperatorConfig:
    """An operator without listeners (ports 0): store, trust client, publisher, queue."""
    path = tmp_path / "operator" / "operator.toml"
    path.parent.mkdir()
    path.write_text(f"""
[operator]
domains = ["{DOMAIN}"]
hostname = "mta.{DOMAIN}"
data_dir = "."
[tls]
cert_file = "{mta.cert_file}"
key_file = "{mta.key_file}"
ca_file = "{seeded.pki.root_cert_file}"
[trust]
url = "{server.url}"
timeout = 3.0
[queue]
poll_interval = 0.2
""")
    return load_operator_config(path)
