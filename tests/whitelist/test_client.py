"""The operator's trust client against a real trust space over HTTPS."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from mssante.errors import CertificateRejected, TrustSpaceUnavailable
from mssante.pki.ca import IssuedCertificate
from mssante.trustspace.server import RunningTrustSpace
from mssante.trustspace.service import TrustSpace
from mssante.whitelist.client import CURRENT_NAME, TrustClient
from mssante.whitelist.files import SHA256_NAME, XML_NAME, checksum_text
from mssante.whitelist.model import WhitelistEntry

from .conftest import Foreign

DN = "CN=mta.medecin.example,O=Medecins,C=FR"


def cached_set(client: TrustClient) -> Path:
    return client.cache_dir / (client.cache_dir / CURRENT_NAME).read_text().strip()


async def test_refresh_fetches_verifies_and_caches(client: TrustClient,
                                                   mta: IssuedCertificate) -> None:
    assert not client.ready and client.last_refresh is None
    with pytest.raises(TrustSpaceUnavailable):
        client.checker  # noqa: B018
    assert await client.refresh()
    assert client.whitelist.allows("CH-XYZ.mssante.fr", mta.subject_dn)
    peer = client.checker.check_chain_pem(mta.cert_file.read_bytes())
    assert peer.subject_dn == mta.subject_dn
    assert client.last_refresh is not None
    cached = cached_set(client)
    assert {p.name for p in cached.iterdir()} >= {
        XML_NAME, SHA256_NAME, "listeblanchemssante.xml.sig", "listeblanchemssante.signer.pem",
        "organisations-ca.pem", "persons-ca.pem", "root.crl", "organisations.crl",
        "persons.crl"}
    assert not (cached / "root-ca.pem").exists()  # the root never comes from the network


async def test_added_and_removed_domains_are_seen_after_refresh(
        client: TrustClient, trust_space: TrustSpace) -> None:
    changes: list[int] = []
    client.on_change(lambda: changes.append(len(client.whitelist)))
    assert await client.refresh()
    trust_space.publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins", DN))
    assert not client.whitelist.is_listed("medecin.mssante.fr")
    assert await client.refresh()
    assert client.whitelist.allows("medecin.mssante.fr", DN)
    assert await client.refresh()  # nothing changed: no callback
    trust_space.publisher.remove("medecin.mssante.fr")
    assert await client.refresh()
    assert not client.whitelist.is_listed("medecin.mssante.fr")
    assert changes == [1, 2, 1]


async def test_a_revoked_certificate_is_refused_after_refresh(
        client: TrustClient, trust_space: TrustSpace, mta: IssuedCertificate) -> None:
    assert await client.refresh()
    client.checker.check_chain_pem(mta.cert_file.read_bytes())
    trust_space.pki.revoke(mta.serial, "keyCompromise")
    client.checker.check_chain_pem(mta.cert_file.read_bytes())  # old CRL until refreshed
    assert await client.refresh()
    with pytest.raises(CertificateRejected, match="revoked"):
        client.checker.check_chain_pem(mta.cert_file.read_bytes())


async def test_trust_space_down_keeps_the_last_good_copy(
        client: TrustClient, running: RunningTrustSpace, trust_space: TrustSpace,
        caplog: pytest.LogCaptureFixture) -> None:
    assert await client.refresh()
    before, checker, when = client.whitelist, client.checker, client.last_refresh
    await running.stop()
    with caplog.at_level(logging.WARNING, logger="mssante.whitelist.client"):
        assert not await client.refresh()
    assert client.whitelist is before and client.checker is checker
    assert client.last_refresh == when
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "keeping the copy" in record.message
    # back up: refreshes again
    trust_space.publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins", DN))
    await running.start()
    assert await client.refresh()
    assert client.whitelist.is_listed("medecin.mssante.fr")


async def test_a_stale_copy_is_reported_as_an_error(
        client: TrustClient, running: RunningTrustSpace,
        caplog: pytest.LogCaptureFixture) -> None:
    assert await client.refresh()
    assert client.last_refresh is not None
    client.stale_after = 3600.0
    client._last_refresh = client.last_refresh - timedelta(hours=30)  # as if long ago
    await running.stop()
    with caplog.at_level(logging.WARNING, logger="mssante.whitelist.client"):
        assert not await client.refresh()
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "whitelist last refreshed 30.0 hours ago" in record.message


async def test_a_new_client_starts_from_the_cache_while_the_trust_space_is_down(
        client: TrustClient, running: RunningTrustSpace, trust_space: TrustSpace,
        mta: IssuedCertificate) -> None:
    assert await client.refresh()
    await running.stop()
    restarted = TrustClient(running.url, trust_space.pki.root_cert_file, client.cache_dir,
                            timeout=1.0)
    await restarted.start()
    try:
        assert restarted.whitelist == client.whitelist
        assert restarted.last_refresh == client.last_refresh
        restarted.checker.check_chain_pem(mta.cert_file.read_bytes())
    finally:
        await restarted.stop()


async def test_start_without_cache_or_trust_space_fails(running: RunningTrustSpace,
                                                        trust_space: TrustSpace,
                                                        tmp_path: Path) -> None:
    await running.stop()
    client = TrustClient(running.url, trust_space.pki.root_cert_file, tmp_path / "empty",
                         timeout=1.0)
    with pytest.raises(TrustSpaceUnavailable, match="no valid cached copy"):
        await client.start()


async def test_a_tampered_cache_is_refused(client: TrustClient, trust_space: TrustSpace,
                                           running: RunningTrustSpace) -> None:
    assert await client.refresh()
    cached = cached_set(client)
    xml = (cached / XML_NAME).read_bytes().replace(b"</ListeDomaines>", b"""<Domaine>
      <Nom>evil.mssante.fr</Nom><DNCertificatOperateur>CN=evil,C=FR</DNCertificatOperateur>
      </Domaine></ListeDomaines>""")
    (cached / XML_NAME).write_bytes(xml)
    fresh = TrustClient(running.url, trust_space.pki.root_cert_file, client.cache_dir)
    assert not fresh.load_cache()  # checksum mismatch
    (cached / SHA256_NAME).write_text(checksum_text(xml))
    assert not fresh.load_cache()  # checksum fixed, signature still wrong
    assert not fresh.ready and not fresh.whitelist.is_listed("evil.mssante.fr")
    assert client.load_cache() is False
    assert client.ready  # the copy already in memory stays


async def test_a_tampered_publication_is_refused(client: TrustClient, trust_space: TrustSpace,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    assert await client.refresh()
    publisher = trust_space.publisher
    xml = publisher.xml_file.read_bytes().replace(b"ch-xyz", b"ch-xyy")
    publisher.xml_file.write_bytes(xml)
    assert not await client.refresh()
    assert "checksum mismatch" in caplog.text
    publisher.sha256_file.write_text(checksum_text(xml))
    assert not await client.refresh()
    assert "signature does not match" in caplog.text
    assert client.whitelist.is_listed("ch-xyz.mssante.fr")
    assert not client.whitelist.is_listed("ch-xyy.mssante.fr")


async def test_an_older_whitelist_is_refused(client: TrustClient, trust_space: TrustSpace,
                                             caplog: pytest.LogCaptureFixture) -> None:
    assert await client.refresh()
    current = client.whitelist
    older = replace(current.with_entry(WhitelistEntry("medecin.mssante.fr", "M", DN)),
                    generated_at=current.generated_at - timedelta(days=1))
    trust_space.publisher.publish(older)
    assert not await client.refresh()
    assert "older than the one in use" in caplog.text
    assert not client.whitelist.is_listed("medecin.mssante.fr")


async def test_a_trust_space_with_another_root_is_refused(
        running: RunningTrustSpace, foreign: Foreign, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    client = TrustClient(running.url, foreign.pki.root_cert_file, tmp_path / "cache",
                         timeout=2.0)
    assert not await client.refresh()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text or "certificate verify" in caplog.text
    assert not client.ready and not (tmp_path / "cache" / CURRENT_NAME).exists()


async def test_background_refresh_picks_up_changes(client: TrustClient,
                                                   trust_space: TrustSpace) -> None:
    await client.start()
    try:
        trust_space.publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins", DN))
        for _ in range(100):
            if client.whitelist.is_listed("medecin.mssante.fr"):
                break
            await asyncio.sleep(0.05)
        assert client.whitelist.is_listed("medecin.mssante.fr")
    finally:
        await client.stop()
    assert client._task is None


async def test_processes_sharing_a_cache_never_remove_the_set_another_writes(
        running: RunningTrustSpace, trust_space: TrustSpace, tmp_path: Path) -> None:
    """The workers of one operator share its trust cache and start together: one
    removing the older sets must not remove the set another is still writing (a worker
    then started with "no whitelist in use" and stopped the operator's start)."""
    cache = tmp_path / "shared-cache"

    def worker() -> list[bool]:
        client = TrustClient(running.url, trust_space.pki.root_cert_file, cache, timeout=5.0)

        async def refreshes() -> list[bool]:
            return [await client.refresh() for _ in range(5)]

        return asyncio.run(refreshes())

    results = await asyncio.gather(*(asyncio.to_thread(worker) for _ in range(4)))
    assert all(all(r) for r in results), results
    fresh = TrustClient(running.url, trust_space.pki.root_cert_file, cache)
    assert fresh.load_cache()
    assert len(list(cache.glob("set-*"))) == 1  # older sets removed, the current one kept
