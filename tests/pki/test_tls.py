"""Real TLS handshakes on 127.0.0.1 with the project's own certificates."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mssante.errors import PKIError
from mssante.pki.ca import PKI, IssuedCertificate
from mssante.pki.tls import TLS12_CIPHERS, client_context, server_context
from mssante.pki.verify import CertificateChecker

GREETING = b"220 ready\r\n"


@dataclass
class Side:
    """What one end of the connection saw."""

    error: BaseException | None = None
    peer_der: bytes | None = None
    version: str | None = None
    cipher: str | None = None
    received: bytes = b""


def _cipher(tls: ssl.SSLSocket) -> str | None:
    cipher = tls.cipher()
    return cipher[0] if cipher else None


def handshake(server: ssl.SSLContext, client: ssl.SSLContext,
              server_hostname: str | None = None) -> tuple[Side, Side]:
    """One connection: the server greets after the handshake, the client reads the greeting.

    With TLS 1.3 a client learns that the server refused its certificate only when it
    reads, so the client side always tries to read.
    """
    server_side, client_side = Side(), Side()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(5)
            with server.wrap_socket(conn, server_side=True) as tls:
                server_side.peer_der = tls.getpeercert(binary_form=True)
                server_side.version, server_side.cipher = tls.version(), _cipher(tls)
                tls.sendall(GREETING)
                tls.recv(1)  # wait for the client to close
        except (OSError, ssl.SSLError) as exc:
            server_side.error = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client.wrap_socket(raw, server_hostname=server_hostname) as tls:
            client_side.peer_der = tls.getpeercert(binary_form=True)
            client_side.version, client_side.cipher = tls.version(), _cipher(tls)
            while len(client_side.received) < len(GREETING):
                chunk = tls.recv(64)
                if not chunk:
                    break
                client_side.received += chunk
    except (OSError, ssl.SSLError) as exc:
        client_side.error = exc
    finally:
        thread.join(10)
        listener.close()
    assert not thread.is_alive()
    return server_side, client_side


def _der(issued: IssuedCertificate) -> bytes:
    return x509.load_pem_x509_certificates(issued.cert_file.read_bytes())[0].public_bytes(
        Encoding.DER)


def _server(issued: IssuedCertificate, pki: PKI,
            client_cert: Literal["none", "optional", "required"] = "required"
            ) -> ssl.SSLContext:
    return server_context(issued.cert_file, issued.key_file, pki.root_cert_file,
                          client_cert=client_cert)


def test_mutual_tls_between_two_operators(pki: PKI, mta: IssuedCertificate,
                                          peer_mta: IssuedCertificate,
                                          make_checker: Callable[[PKI], CertificateChecker]
                                          ) -> None:
    server, client = handshake(
        _server(mta, pki),
        client_context(pki.root_cert_file, peer_mta.cert_file, peer_mta.key_file))
    assert server.error is None and client.error is None
    assert client.received == GREETING
    assert server.peer_der == _der(peer_mta)
    assert client.peer_der == _der(mta)
    assert server.version == "TLSv1.3"
    # What the MTA does next: check the presented certificate, then its DN.
    assert server.peer_der is not None
    peer = make_checker(pki).check(server.peer_der)
    assert peer.subject_dn == peer_mta.subject_dn


def test_tls12_negotiates_an_ecdhe_rsa_aes_suite(pki: PKI, mta: IssuedCertificate,
                                                 peer_mta: IssuedCertificate) -> None:
    client_ctx = client_context(pki.root_cert_file, peer_mta.cert_file, peer_mta.key_file)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server, client = handshake(_server(mta, pki), client_ctx)
    assert server.error is None and client.received == GREETING
    assert server.version == "TLSv1.2"
    assert server.cipher in TLS12_CIPHERS.split(":")


def test_tls12_without_an_allowed_suite_is_refused(pki: PKI, mta: IssuedCertificate,
                                                   peer_mta: IssuedCertificate) -> None:
    client_ctx = client_context(pki.root_cert_file, peer_mta.cert_file, peer_mta.key_file)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305")  # good, but not Réf#2's
    server, client = handshake(_server(mta, pki), client_ctx)
    assert isinstance(server.error, ssl.SSLError)
    assert "NO_SHARED_CIPHER" in str(server.error).upper()
    assert client.received == b""


def test_handshake_fails_without_a_client_certificate(pki: PKI, mta: IssuedCertificate) -> None:
    server, client = handshake(_server(mta, pki), client_context(pki.root_cert_file))
    assert isinstance(server.error, ssl.SSLError)
    assert "PEER DID NOT RETURN A CERTIFICATE" in str(server.error).upper()
    assert client.error is not None
    assert client.received == b""


def test_handshake_fails_with_a_foreign_client_certificate(
        pki: PKI, mta: IssuedCertificate, foreign_mta: IssuedCertificate) -> None:
    server, client = handshake(
        _server(mta, pki),
        client_context(pki.root_cert_file, foreign_mta.cert_file, foreign_mta.key_file))
    assert isinstance(server.error, ssl.SSLCertVerificationError)
    assert client.error is not None
    assert client.received == b""


def test_client_refuses_a_server_of_another_pki(pki: PKI, foreign_pki: PKI,
                                                 foreign_mta: IssuedCertificate,
                                                 peer_mta: IssuedCertificate) -> None:
    server, client = handshake(
        _server(foreign_mta, foreign_pki, client_cert="none"),
        client_context(pki.root_cert_file, peer_mta.cert_file, peer_mta.key_file))
    assert isinstance(client.error, ssl.SSLCertVerificationError)
    assert server.error is not None


def test_optional_client_certificate(pki: PKI, mta: IssuedCertificate,
                                     person: IssuedCertificate) -> None:
    without, client = handshake(_server(mta, pki, "optional"),
                                client_context(pki.root_cert_file))
    assert without.error is None and client.received == GREETING
    assert without.peer_der is None
    # A professional's card certificate (persons CA) authenticates a client.
    with_card, client = handshake(
        _server(mta, pki, "optional"),
        client_context(pki.root_cert_file, person.cert_file, person.key_file))
    assert with_card.error is None and client.received == GREETING
    assert with_card.peer_der == _der(person)


def test_hostname_check_uses_the_subject_alt_names(pki: PKI, mta: IssuedCertificate) -> None:
    checking = client_context(pki.root_cert_file, check_hostname=True)
    _, client = handshake(_server(mta, pki, "none"), checking, server_hostname="127.0.0.1")
    assert client.error is None and client.received == GREETING
    _, client = handshake(_server(mta, pki, "none"), checking,
                          server_hostname="mta.medecin.mssante.fr")
    assert isinstance(client.error, ssl.SSLCertVerificationError)


def test_unreadable_files_raise_pki_errors(pki: PKI, mta: IssuedCertificate,
                                           tmp_path: Path) -> None:
    with pytest.raises(PKIError, match="cannot load the certificate"):
        server_context(mta.cert_file, tmp_path / "missing.key", pki.root_cert_file,
                       client_cert="required")
    with pytest.raises(PKIError, match="cannot load the CA file"):
        client_context(tmp_path / "missing-ca.pem")
    with pytest.raises(PKIError, match="without its certificate"):
        client_context(pki.root_cert_file, key_file=mta.key_file)
    with pytest.raises(PKIError, match="client_cert must be one of"):
        _server(mta, pki, "sometimes")  # type: ignore[arg-type]
