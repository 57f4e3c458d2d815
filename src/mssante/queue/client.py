"""The outbound SMTP client: mutual TLS to the next operator, with a small connection pool.

The server's certificate must chain to the trust-space root (checked by the TLS
layer with the root as the only CA), must not be revoked, and its DN must be
listed on the whitelist for the recipient's domain (MSSanté: "deliver only to an
MTA whose certificate chains to IGC-Santé and whose DN is listed for the
recipient's domain"). The DN is checked on every transaction, since one pooled
connection can serve several domains.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

from mssante.errors import CertificateRejected
from mssante.pki.verify import PeerCertificate
from mssante.queue.nexthop import Hop
from mssante.queue.smtpclient import SMTPClient, SMTPClientError
from mssante.smtp.context import TrustView

POOL_IDLE_SECONDS = 30.0
POOL_MAX_PER_HOP = 32


class DeliveryError(Exception):
    """A failure for the whole transaction; ``permanent`` decides bounce or retry."""

    def __init__(self, code: int, status: str, text: str, *, permanent: bool) -> None:
        super().__init__(f"{code} {status} {text}")
        self.code = code
        self.status = status
        self.text = text
        self.permanent = permanent

    @property
    def diagnostic(self) -> str:
        return f"smtp; {self.code} {self.text}"


@dataclass
class Connection:
    hop: Hop
    smtp: SMTPClient
    peer: PeerCertificate
    last_used: float = field(default_factory=time.monotonic)

    def supports(self, extension: str) -> bool:
        return self.smtp.supports(extension)


class ConnectionPool:
    def __init__(self, tls: ssl.SSLContext, trust: TrustView, hostname: str,
                 connect_timeout: float) -> None:
        self._tls = tls
        self._trust = trust
        self._hostname = hostname
        self._timeout = connect_timeout
        self._idle: dict[Hop, list[Connection]] = {}

    async def get(self, hop: Hop) -> Connection:
        idle = self._idle.get(hop, [])
        while idle:
            conn = idle.pop()
            if time.monotonic() - conn.last_used < POOL_IDLE_SECONDS and not conn.smtp.closed:
                return conn
            await conn.smtp.quit()
        return await self._connect(hop)

    def put(self, conn: Connection) -> None:
        idle = self._idle.setdefault(conn.hop, [])
        if len(idle) >= POOL_MAX_PER_HOP or conn.smtp.closed:
            conn.smtp.abort()
            return
        conn.last_used = time.monotonic()
        idle.append(conn)

    @staticmethod
    def discard(conn: Connection) -> None:
        conn.smtp.abort()

    async def close(self) -> None:
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        await asyncio.gather(*(c.smtp.quit() for c in conns), return_exceptions=True)

    async def _connect(self, hop: Hop) -> Connection:
        try:
            smtp = await SMTPClient.connect(hop.host, hop.port, local_hostname=self._hostname,
                                            tls=self._tls, timeout=self._timeout)
        except (SMTPClientError, OSError, ssl.SSLError, TimeoutError) as exc:
            raise DeliveryError(421, "4.4.1", f"cannot connect to {hop}: {exc}",
                                permanent=False) from None
        der = smtp.peer_certificate()
        if der is None:
            smtp.abort()
            raise DeliveryError(421, "4.7.0", f"{hop} presented no certificate", permanent=False)
        try:
            peer = self._trust.checker.check(der)
        except CertificateRejected as exc:
            smtp.abort()
            raise DeliveryError(421, "4.7.5", f"certificate of {hop} refused: {exc}",
                                permanent=False) from None
        return Connection(hop, smtp, peer)
