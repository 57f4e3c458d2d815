"""The SMTP greeting names the operator's host and ESMTP, nothing about the software.

Threat: aiosmtpd's default greeting ("Python SMTP 1.4.6") told anyone who connects
which library and version to attack (issue 9 §2.8).
"""

from __future__ import annotations

import smtplib
import ssl
from typing import Any

import pytest

HOSPITAL = "ch-xyz.mssante.fr"


class ImplicitTLS(smtplib.SMTP_SSL):
    """smtplib's SMTP_SSL, keeping the host name for the certificate check when
    connect() is called by hand (to read the greeting)."""

    def connect(self, host: str = "localhost", port: int = 0,
                source_address: tuple[str, int] | None = None) -> tuple[int, bytes]:
        self._host = host
        return super().connect(host, port, source_address)


@pytest.mark.parametrize("listener", ["smtp", "submission", "submissions"])
def test_smtp_banner_does_not_name_the_software(environment: Any, listener: str) -> None:
    endpoint = environment.operator(HOSPITAL)[listener]
    hostname = environment.service(HOSPITAL).config.operator.hostname
    client: smtplib.SMTP
    if listener == "submissions":  # implicit TLS (RFC 8314 §3.3)
        client = ImplicitTLS(context=ssl.create_default_context(cafile=environment.ca_file),
                             timeout=30)
    else:
        client = smtplib.SMTP(timeout=30)
    try:
        code, greeting = client.connect(endpoint["host"], endpoint["port"])
        assert code == 220
        assert greeting == f"{hostname} ESMTP".encode()
        code, ehlo = client.ehlo("client.test")
        assert code == 250 and ehlo.split(b"\n")[0] == hostname.encode()
    finally:
        client.close()
