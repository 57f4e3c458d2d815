"""The trust space's HTTPS service, over real TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from mssante.httpserve import bind
from mssante.pki.tls import client_context
from mssante.trustspace.server import RunningTrustSpace, serve
from mssante.trustspace.service import TrustSpace
from mssante.whitelist.model import WhitelistEntry
from mssante.whitelist.xmlformat import from_xml


def http(ts: TrustSpace, base_url: str) -> httpx.AsyncClient:
    context = client_context(ts.pki.root_cert_file, check_hostname=True)
    return httpx.AsyncClient(base_url=base_url, verify=context, timeout=5.0)


async def test_every_published_file_is_served(trust_space: TrustSpace,
                                              running: RunningTrustSpace) -> None:
    async with http(trust_space, running.url) as client:
        xml = await client.get("/listeblanchemssante.xml")
        assert xml.status_code == 200
        assert xml.headers["content-type"] == "application/xml"
        assert from_xml(xml.content).is_listed("ch-xyz.mssante.fr")
        sha = await client.get("/listeblanchemssante.xml.sha256")
        assert sha.headers["content-type"].startswith("text/plain")
        assert sha.text == f"{hashlib.sha256(xml.content).hexdigest()}  listeblanchemssante.xml\n"
        sig = await client.get("/listeblanchemssante.xml.sig")
        assert sig.content == trust_space.publisher.sig_file.read_bytes()
        signer = await client.get("/listeblanchemssante.signer.pem")
        assert signer.content == trust_space.signing_cert.cert_file.read_bytes()
        root = await client.get("/pki/root-ca.pem")
        assert root.content == trust_space.pki.root_cert_file.read_bytes()
        for ca in ("organisations", "persons"):
            pem = await client.get(f"/pki/{ca}-ca.pem")
            assert pem.content == trust_space.pki.ca_cert_file(ca).read_bytes()
        for ca in ("root", "organisations", "persons"):
            crl = await client.get(f"/crl/{ca}.crl")
            assert crl.headers["content-type"] == "application/pkix-crl"
            issuer = x509.load_pem_x509_certificate(trust_space.ca_cert_file(ca).read_bytes())
            assert x509.load_der_x509_crl(crl.content).issuer == issuer.subject
        health = await client.get("/health")
        assert health.json() == {"status": "ok"}


async def test_unknown_ca_and_paths_are_404(trust_space: TrustSpace,
                                            running: RunningTrustSpace) -> None:
    async with http(trust_space, running.url) as client:
        for path in ("/pki/evil-ca.pem", "/crl/evil.crl", "/crl/..%2Froot-ca.key",
                     "/pki/root-ca.key", "/nothing"):
            assert (await client.get(path)).status_code == 404, path


async def test_changes_and_revocations_are_served_without_restart(
        trust_space: TrustSpace, running: RunningTrustSpace, tmp_path: Path) -> None:
    cert = trust_space.pki.issue_organisation("DPI", organisation="CH XYZ", out_dir=tmp_path,
                                              name="dpi")
    async with http(trust_space, running.url) as client:
        trust_space.publisher.add(WhitelistEntry("medecin.mssante.fr", "Médecins",
                                                 "CN=mta.medecin.example,C=FR"))
        xml = (await client.get("/listeblanchemssante.xml")).content
        assert from_xml(xml).is_listed("medecin.mssante.fr")
        trust_space.pki.revoke(cert.serial)
        crl = x509.load_der_x509_crl((await client.get("/crl/organisations.crl")).content)
        assert crl.get_revoked_certificate_by_serial_number(cert.serial) is not None


async def test_the_certificate_names_the_host(trust_space: TrustSpace,
                                              running: RunningTrustSpace) -> None:
    async with http(trust_space, f"https://localhost:{running.port}") as client:
        assert (await client.get("/health")).status_code == 200
    san = x509.load_pem_x509_certificates(trust_space.https_cert.cert_file.read_bytes())[0] \
        .extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)


def test_create_or_load_reuses_then_reissues_on_new_hostname(trust_space: TrustSpace) -> None:
    again = TrustSpace.create_or_load(trust_space.data_dir)
    assert again.https_cert.serial == trust_space.https_cert.serial
    assert again.signing_cert.serial == trust_space.signing_cert.serial
    assert again.publisher.current() == trust_space.publisher.current()
    renamed = TrustSpace.create_or_load(trust_space.data_dir, hostname="trust.mssante.test")
    assert renamed.https_cert.serial != trust_space.https_cert.serial
    san = x509.load_pem_x509_certificates(renamed.https_cert.cert_file.read_bytes())[0] \
        .extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "trust.mssante.test"} <= set(san.get_values_for_type(x509.DNSName))


def test_a_revoked_signing_certificate_is_replaced(trust_space: TrustSpace) -> None:
    old = trust_space.signing_cert
    trust_space.pki.revoke(old.serial, "keyCompromise")
    again = TrustSpace.create_or_load(trust_space.data_dir)
    assert again.signing_cert.serial != old.serial
    # the list was signed again by the new certificate
    assert (again.publisher.signer_file.read_bytes()
            == again.signing_cert.cert_file.read_bytes())


async def test_serve_listens_then_stops_on_cancel(trust_space: TrustSpace) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = asyncio.Event()
    task = asyncio.create_task(serve(trust_space, "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    async with http(trust_space, f"https://127.0.0.1:{port}") as client:
        assert (await client.get("/health")).status_code == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


async def test_a_busy_port_is_an_error(running: RunningTrustSpace,
                                       trust_space: TrustSpace) -> None:
    with pytest.raises(OSError):
        bind("127.0.0.1", running.port).close()
    with pytest.raises(OSError):
        await serve(trust_space, "127.0.0.1", running.port)
