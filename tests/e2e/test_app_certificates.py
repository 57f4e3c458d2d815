"""`mssante up` gives each APP mailbox a certificate of its own DN: each certificate
logs in to its own mailbox (one certificate DN identifies one APP mailbox, which the
store would refuse otherwise)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from mssante.pki.names import dn_string
from tests.conftest import RunningEnvironment, environment_json


def test_each_app_mailbox_has_a_certificate_of_its_own(
        environment: RunningEnvironment) -> None:
    applications = environment_json(environment)["applications"]
    assert len(applications) >= 2
    dns = []
    for application in applications:
        cert = x509.load_pem_x509_certificate(Path(application["cert_file"]).read_bytes())
        dn = dn_string(cert.subject)
        dns.append(dn)
        domain = application["mailbox"].rpartition("@")[2]
        store = environment.service(domain).store
        found = environment.runner.call(store.mailboxes_for_certificate(dn))
        assert [m.address for m in found] == [application["mailbox"]]
    assert len(set(dns)) == len(dns)
