"""Publishing the whitelist: the file set, standard tools agree, no lost updates."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mssante.errors import WhitelistError
from mssante.pki.ca import IssuedCertificate
from mssante.trustspace.service import TrustSpace
from mssante.whitelist.files import check_checksum
from mssante.whitelist.model import Whitelist, WhitelistEntry
from mssante.whitelist.publisher import WhitelistPublisher
from mssante.whitelist.xmlformat import from_xml

DN = "CN=mta.medecin.example,O=Medecins,C=FR"


def test_the_published_set_is_consistent(trust_space: TrustSpace, mta: IssuedCertificate) -> None:
    publisher = trust_space.publisher
    before = datetime.now(UTC).replace(microsecond=0)
    published = publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins libéraux", DN))
    assert published.generated_at >= before
    xml = publisher.xml_file.read_bytes()
    assert from_xml(xml) == published == publisher.current()
    assert published.allows("ch-xyz.mssante.fr", mta.subject_dn)  # kept from before
    checksum = publisher.sha256_file.read_text(encoding="ascii")
    assert checksum.endswith("  listeblanchemssante.xml\n")
    check_checksum(xml, checksum)
    assert publisher.signer_file.read_bytes() == trust_space.signing_cert.cert_file.read_bytes()
    assert not list(publisher.directory.glob("*.tmp"))


def test_sha256sum_and_openssl_accept_the_files(trust_space: TrustSpace, tmp_path: Path) -> None:
    publisher = trust_space.publisher
    publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins", DN))
    subprocess.run(["sha256sum", "--check", "--strict", publisher.sha256_file.name],
                   cwd=publisher.directory, check=True, capture_output=True)
    pub = tmp_path / "signer.pub"
    subprocess.run(["openssl", "x509", "-in", str(publisher.signer_file), "-pubkey", "-noout",
                    "-out", str(pub)], check=True, capture_output=True)
    command = ["openssl", "dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss",
               "-sigopt", "rsa_pss_saltlen:32", "-verify", str(pub),
               "-signature", str(publisher.sig_file)]
    ok = subprocess.run([*command, str(publisher.xml_file)], capture_output=True, text=True)
    assert ok.returncode == 0 and "Verified OK" in ok.stdout
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(publisher.xml_file.read_bytes().replace(b"medecin", b"medecim"))
    bad = subprocess.run([*command, str(tampered)], capture_output=True, text=True)
    assert bad.returncode != 0


def test_concurrent_changes_are_not_lost(trust_space: TrustSpace) -> None:
    # Separate publisher objects, as separate CLI invocations would have.
    def add(i: int) -> None:
        publisher = WhitelistPublisher(trust_space.publisher.directory,
                                       trust_space.signing_cert.cert_file,
                                       trust_space.signing_cert.key_file)
        publisher.add(WhitelistEntry(f"cabinet-{i}.mssante.fr", f"Cabinet {i}", DN))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(16)))
    current = trust_space.publisher.current()
    assert {f"cabinet-{i}.mssante.fr" for i in range(16)} <= current.domains
    check_checksum(trust_space.publisher.xml_file.read_bytes(),
                   trust_space.publisher.sha256_file.read_bytes())


def test_remove_one_dn_then_the_domain(trust_space: TrustSpace) -> None:
    publisher = trust_space.publisher
    other = "CN=mta2.medecin.example,O=Medecins,C=FR"
    publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins", DN))
    publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins", other))
    assert publisher.current().dns_for("medecin.mssante.fr") == (DN, other)
    assert publisher.remove("MEDECIN.mssante.fr", DN).dns_for("medecin.mssante.fr") == (other,)
    with pytest.raises(WhitelistError, match="not on the whitelist with DN"):
        publisher.remove("medecin.mssante.fr", DN)
    assert not publisher.remove("medecin.mssante.fr").is_listed("medecin.mssante.fr")
    with pytest.raises(WhitelistError, match="not on the whitelist"):
        publisher.remove("medecin.mssante.fr")


def test_add_replaces_the_same_domain_and_dn(trust_space: TrustSpace) -> None:
    publisher = trust_space.publisher
    size = len(publisher.current())
    publisher.add(WhitelistEntry("medecin.mssante.fr", "old", DN))
    updated = publisher.add(WhitelistEntry("medecin.mssante.fr", "new", DN))
    assert len(updated) == size + 1
    assert [e.description for e in updated.entries_for("medecin.mssante.fr")] == ["new"]


def test_nothing_published_reads_as_empty(trust_space: TrustSpace, tmp_path: Path) -> None:
    publisher = WhitelistPublisher(tmp_path / "empty", trust_space.signing_cert.cert_file,
                                   trust_space.signing_cert.key_file)
    assert publisher.current().entries == ()
    assert not publisher.is_published()
    publisher.publish(Whitelist.empty())
    assert publisher.is_published()
    assert len(publisher.current()) == 0
