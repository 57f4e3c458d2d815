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
from mssante.operator.maillog import reason
from mssante.operator.runtime import TrustView
from mssante.pki.verify import PeerCertificate
from mssante.queue.nexthop import Hop
from mssante.queue.smtpclient import SMTPClient, SMTPClientError

POOL_IDLE_SECONDS = 30.0
POOL_MAX_PER_HOP = 32


class DeliveryError(Exception):
    """A failure for the whole transaction; ``permanent`` decides bounce or retry.

    ``reply_code`` is set when a remote server answered (its reply is ``text``); a
    failure decided here (no connection, a certificate refused, the domain off the
    whitelist) has none, and its DSN says so (RFC 3464 §2.3.5-2.3.6).
    """

    def __init__(self, status: str, text: str, *, permanent: bool,
                 reply_code: int | None = None) -> None:
        super().__init__(f"{reply_code} {text}" if reply_code is not None
                         else f"{status} {text}")
        self.status = status
        self.text = text
        self.permanent = permanent
        self.reply_code = reply_code

    @classmethod
    def from_reply(cls, code: int, message: str) -> DeliveryError:
        """A remote server's reply; its enhanced status code (RFC 2034) when it gives one."""
        first = message.partition(" ")[0]
        parts = first.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] in "245":
            status = first
        else:
            status = "5.0.0" if code >= 500 else "4.0.0"
        return cls(status, message, permanent=code >= 500, reply_code=code)

    @property
    def remote(self) -> bool:
        """True when a remote server gave this answer."""
        return self.reply_code is not None

    @property
    def diagnostic(self) -> str:
        """The DSN's Diagnostic-Code (RFC 3464 §2.3.6): the server's reply, or ours."""
        if self.reply_code is not None:
            return f"smtp; {self.reply_code} {self.text}"
        return f"X-mssante; {self.text}"


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

    def idle_count(self) -> int:
        """How many connections wait in the pool, all next hops together."""
        return sum(len(idle) for idle in self._idle.values())

    @staticmethod
    def discard(conn: Connection) -> None:
        conn.smtp.abort()

    @staticmethod
    async def close_connection(conn: Connection) -> None:
        """Close a connection that must not serve again (QUIT, then close)."""
        await conn.smtp.quit()

    async def close(self) -> None:
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        await asyncio.gather(*(c.smtp.quit() for c in conns), return_exceptions=True)

    async def _connect(self, hop: Hop) -> Connection:
        try:
            smtp = await SMTPClient.connect(hop.host, hop.port, local_hostname=self._hostname,
                                            tls=self._tls, timeout=self._timeout)
        except (SMTPClientError, OSError, ssl.SSLError, TimeoutError) as exc:
            raise DeliveryError("4.4.1", f"cannot connect to {hop}: {reason(exc)}",
                                permanent=False) from None
        der = smtp.peer_certificate()
        if der is None:
            smtp.abort()
            raise DeliveryError("4.7.0", f"{hop} presented no certificate", permanent=False)
        try:
            peer = self._trust.checker.check(der)
        except CertificateRejected as exc:
            await smtp.quit()
            raise DeliveryError("4.7.5", f"certificate of {hop} refused: {exc}",
                                permanent=False) from None
        return Connection(hop, smtp, peer)
