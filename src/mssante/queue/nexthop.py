"""Where to deliver a domain's mail: the static route table, else DNS MX (RFC 5321 §5.1)."""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from mssante.errors import ConfigError


class NextHopError(Exception):
    """No next hop: ``permanent`` for a domain without mail (NXDOMAIN, null MX), else
    a DNS failure worth retrying."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


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
        """Hops in order of preference; NextHopError when there is none."""
        domain = domain.lower()
        if domain in self._routes:
            return [self._routes[domain]]
        try:
            answer = await dns.asyncresolver.resolve(domain, "MX")
        except dns.resolver.NoAnswer:
            return [Hop(domain, self._port)]  # RFC 5321 §5.1: implicit MX
        except dns.resolver.NXDOMAIN:
            raise NextHopError(f"the domain {domain} does not exist", permanent=True) from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise NextHopError(f"DNS lookup of {domain} failed: {exc}", permanent=False) from None
        records = sorted(answer, key=lambda r: r.preference)
        hops = [Hop(str(r.exchange).rstrip("."), self._port) for r in records]
        hops = [h for h in hops if h.host]
        if not hops:  # RFC 7505: a null MX "." means the domain accepts no mail
            raise NextHopError(f"{domain} accepts no mail (null MX)", permanent=True)
        return hops
