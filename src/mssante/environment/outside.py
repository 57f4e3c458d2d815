"""Operators outside `mssante up`: another MTA (Postfix, …) joining the local environment.

`mssante up` writes every ``operator.toml`` afresh at each start, so a route added by
hand would not last. Outside operators are declared once, in
``<data dir>/outside-operators.toml``, read at each start::

    [[operator]]
    domain = "postfix.mssante.fr"            # the mail domain it serves
    mta = "127.0.0.1:2525"                   # where its MTA listens (host:port)
    dn = "CN=mta.postfix.mssante.fr,O=…,C=FR"   # its MTA certificate's DN (optional)
    description = "Postfix de test"          # optional, for the whitelist

Every operator of the environment then routes ``domain`` to ``mta``, and the whitelist
lists ``domain`` for ``dn`` (added when missing; a DN as openssl prints it is read
too, see ``pki.names.parse_dn``). Removing an operator from the file removes its
route at the next start; its whitelist entry stays until ``mssante whitelist remove``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mssante.domain.addresses import is_trust_space_domain, parse_address
from mssante.errors import ConfigError, InvalidAddress
from mssante.pki.names import parse_dn
from mssante.queue.nexthop import parse_route
from mssante.whitelist.model import normalise_domain

OUTSIDE_FILE = "outside-operators.toml"
_KEYS = {"domain", "mta", "dn", "description"}


@dataclass(frozen=True, slots=True)
class OutsideOperator:
    domain: str
    mta: str  # host:port of its MTA
    dn: str | None  # RFC 4514 DN of its MTA certificate, to whitelist
    description: str = ""


def load_outside_operators(data_dir: Path, local_domains: set[str]) -> list[OutsideOperator]:
    """The operators declared in ``data_dir/outside-operators.toml`` (none without it)."""
    path = data_dir / OUTSIDE_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"operator"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected [[operator]] "
                          "tables)")
    tables = data.get("operator", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: operator: expected [[operator]] tables")
    found: list[OutsideOperator] = []
    for index, table in enumerate(tables, start=1):
        where = f"{path}: operator {index}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table")
        operator = _operator(table, where, local_domains)
        if any(o.domain == operator.domain for o in found):
            raise ConfigError(f"{where}: {operator.domain} is declared twice")
        found.append(operator)
    return found


def _operator(table: dict[str, Any], where: str, local_domains: set[str]) -> OutsideOperator:
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                          f"(known: {', '.join(sorted(_KEYS))})")
    for key in ("domain", "mta"):
        if not isinstance(table.get(key), str):
            raise ConfigError(f"{where}: {key}: missing, or not a string")
    for key in ("dn", "description"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: {key}: expected a string")
    domain = normalise_domain(table["domain"])
    try:
        parse_address(f"postmaster@{domain}")  # RFC 5321 §4.1.2 Domain
    except InvalidAddress:
        raise ConfigError(f"{where}: domain: not a valid domain: {table['domain']!r}") from None
    if not is_trust_space_domain(domain):
        raise ConfigError(f"{where}: domain: {domain} is not in the trust-space namespace "
                          "(*.mssante.fr)")
    if domain in local_domains:
        raise ConfigError(f"{where}: domain: {domain} is served by `mssante up` itself")
    try:
        parse_route(domain, table["mta"])
    except ConfigError:
        raise ConfigError(f"{where}: mta: expected host:port, got {table['mta']!r}") from None
    dn = None
    if table.get("dn"):
        try:
            dn = parse_dn(table["dn"])
        except ValueError as exc:
            raise ConfigError(f"{where}: dn: not a valid distinguished name: {exc}") from None
    return OutsideOperator(domain=domain, mta=table["mta"].strip(), dn=dn,
                           description=table.get("description", ""))
