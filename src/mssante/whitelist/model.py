"""The whitelist (liste blanche): trust-space domains bound to operator MTA certificates.

One domain may be listed once per operator MTA certificate: several entries share
a name and differ by DN. Domains compare case-insensitively (RFC 5321 §2.4); DNs
compare with ``mssante.pki.names.same_dn``. Lookups go through an index built once
per (immutable) list, so a 6,500-entry list answers in constant time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mssante.pki.names import same_dn


def normalise_domain(domain: str) -> str:
    """The form domains are indexed by: stripped, lower case, no trailing dot."""
    return domain.strip().lower().rstrip(".")


def to_utc(moment: datetime) -> datetime:
    """A UTC datetime to the second (the XML format's precision); naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def utc_now() -> datetime:
    return to_utc(datetime.now(UTC))


@dataclass(frozen=True)
class WhitelistEntry:
    """One ``Domaine`` element: a domain served by the MTA whose certificate has ``operator_dn``."""

    name: str
    description: str
    operator_dn: str
    responsible_contact: str = ""
    support_contact: str = ""
    updated_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.strip().rstrip("."))
        object.__setattr__(self, "operator_dn", self.operator_dn.strip())
        object.__setattr__(self, "updated_at", to_utc(self.updated_at))

    @property
    def key(self) -> str:
        """The normalised domain."""
        return self.name.lower()


@dataclass(frozen=True)
class Whitelist:
    """An immutable whitelist; the ``with_``/``without`` methods return new lists."""

    generated_at: datetime
    entries: tuple[WhitelistEntry, ...]
    _by_domain: dict[str, tuple[WhitelistEntry, ...]] = field(
        init=False, repr=False, compare=False, hash=False)
    _by_dn: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False, hash=False)
    _dn_cache: dict[str, frozenset[str]] = field(
        init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "generated_at", to_utc(self.generated_at))
        object.__setattr__(self, "entries", tuple(self.entries))
        by_domain: dict[str, list[WhitelistEntry]] = {}
        by_dn: dict[str, set[str]] = {}
        for entry in self.entries:
            by_domain.setdefault(entry.key, []).append(entry)
            by_dn.setdefault(entry.operator_dn, set()).add(entry.key)
        object.__setattr__(self, "_by_domain", {k: tuple(v) for k, v in by_domain.items()})
        object.__setattr__(self, "_by_dn", {k: frozenset(v) for k, v in by_dn.items()})
        object.__setattr__(self, "_dn_cache", {})

    @classmethod
    def empty(cls) -> Whitelist:
        return cls(generated_at=utc_now(), entries=())

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def domains(self) -> frozenset[str]:
        """Every listed domain, lower case."""
        return frozenset(self._by_domain)

    def entries_for(self, domain: str) -> tuple[WhitelistEntry, ...]:
        return self._by_domain.get(normalise_domain(domain), ())

    def is_listed(self, domain: str) -> bool:
        return normalise_domain(domain) in self._by_domain

    def dns_for(self, domain: str) -> tuple[str, ...]:
        """The operator certificate DNs listed for ``domain``, in list order."""
        return tuple(entry.operator_dn for entry in self.entries_for(domain))

    def allows(self, domain: str, dn: str) -> bool:
        """True when the MTA certificate ``dn`` is listed for ``domain``."""
        return any(same_dn(listed, dn) for listed in self.dns_for(domain))

    def domains_for_dn(self, dn: str) -> frozenset[str]:
        """The domains (lower case) the certificate ``dn`` is listed for."""
        cached = self._dn_cache.get(dn)
        if cached is not None:
            return cached
        found = self._by_dn.get(dn)
        if found is None:
            found = frozenset().union(
                *(domains for listed, domains in self._by_dn.items() if same_dn(listed, dn)))
        self._dn_cache[dn] = found
        return found

    def with_entry(self, entry: WhitelistEntry) -> Whitelist:
        """A list holding ``entry``, in place of any entry with the same name and DN."""
        kept = [e for e in self.entries
                if not (e.key == entry.key and same_dn(e.operator_dn, entry.operator_dn))]
        return self._replace(entries=(*kept, entry))

    def without(self, domain: str, dn: str | None = None) -> Whitelist:
        """A list without ``domain`` (only its entry for ``dn`` when given)."""
        key = normalise_domain(domain)
        kept = [e for e in self.entries
                if not (e.key == key and (dn is None or same_dn(e.operator_dn, dn)))]
        return self._replace(entries=tuple(kept))

    def with_generated_at(self, moment: datetime) -> Whitelist:
        return self._replace(generated_at=moment)

    def _replace(self, *, entries: Iterable[WhitelistEntry] | None = None,
                 generated_at: datetime | None = None) -> Whitelist:
        return dataclasses.replace(
            self,
            entries=self.entries if entries is None else tuple(entries),
            generated_at=self.generated_at if generated_at is None else generated_at)
