"""Where to deliver a domain's mail: the static route table, else DNS MX (RFC 5321 §5.1)."""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from mssante.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Hop:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_route(domain: str, value: str) -> Hop:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"routes.{domain}: expected host:port, got {value!r}")
    return Hop(host.strip("[]"), int(port))


class NextHops:
    """Resolves the ordered list of hops for a domain."""

    def __init__(self, routes: dict[str, str], *, smtp_port: int = 25) -> None:
        self._routes = {d.lower(): parse_route(d, v) for d, v in routes.items()}
        self._port = smtp_port

    async def resolve(self, domain: str) -> list[Hop]:
        """Hops in order of preference; empty when the domain has no mail server."""
        domain = domain.lower()
        if domain in self._routes:
            return [self._routes[domain]]
        try:
            answer = await dns.asyncresolver.resolve(domain, "MX")
        except dns.resolver.NoAnswer:
            return [Hop(domain, self._port)]  # RFC 5321 §5.1: implicit MX
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout):
            return []
        records = sorted(answer, key=lambda r: r.preference)
        hops = [Hop(str(r.exchange).rstrip("."), self._port) for r in records]
        # RFC 7505: a single MX "." means the domain accepts no mail.
        return [h for h in hops if h.host]
