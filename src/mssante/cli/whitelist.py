"""`mssante whitelist ...`: change and show the published whitelist."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mssante.cli.trust import ConfigOption, fail, load_trust_space
from mssante.domain.addresses import is_trust_space_domain, parse_address
from mssante.errors import InvalidAddress, MSSanteError, WhitelistError
from mssante.pki.names import parse_dn, same_attributes, same_dn
from mssante.trustspace.service import TrustSpace
from mssante.whitelist.model import WhitelistEntry, normalise_domain
from mssante.whitelist.xmlformat import format_date

app = typer.Typer(no_args_is_help=True)

DnOption = Annotated[str, typer.Option("--dn", help=(
    "DN of the operator MTA certificate: RFC 4514 ('CN=mta.example,O=Org,C=FR', as "
    "`mssante pki issue` prints it) or as openssl prints it ('C = FR, O = Org, "
    "CN = mta.example' or '/C=FR/O=Org/CN=mta.example'); stored in RFC 4514 form."))]


def _domain(text: str) -> str:
    """A trust-space domain, lower case, or WhitelistError."""
    domain = normalise_domain(text)
    try:
        parse_address(f"postmaster@{domain}")  # RFC 5321 §4.1.2 Domain rules
    except InvalidAddress:
        raise WhitelistError(f"not a valid domain: {text!r}") from None
    if not is_trust_space_domain(domain):
        raise WhitelistError(f"{domain} is not in the trust-space namespace (*.mssante.fr)")
    return domain


def _dn(text: str) -> str:
    """The DN in the RFC 4514 form the whitelist holds, or WhitelistError."""
    try:
        return parse_dn(text)
    except ValueError as exc:
        raise WhitelistError(f"not a valid distinguished name: {exc}") from None


def _unknown_dn_warning(trust_space: TrustSpace, dn: str) -> str | None:
    """A warning when no certificate issued by the trust space's PKI has ``dn``."""
    issued = trust_space.pki.issued()
    if any(same_dn(r.subject_dn, dn) for r in issued):
        return None
    warning = f"warning: no certificate issued by this trust space has the DN {dn}"
    reordered = [r.subject_dn for r in issued if same_attributes(r.subject_dn, dn)]
    if reordered:
        warning += f"; one has the same attributes in another order: {reordered[-1]}"
    return warning + " (the whitelist compares DNs in order: check it before it is needed)"


@app.command()
def add(domain: Annotated[str, typer.Argument(help="The mail domain, e.g. ch-xyz.mssante.fr.")],
        dn: DnOption,
        config: ConfigOption,
        description: Annotated[str, typer.Option(help="Who the domain belongs to.")] = "",
        responsible: Annotated[str, typer.Option(help="Responsible contact.")] = "",
        support: Annotated[str, typer.Option(help="Support contact.")] = "") -> None:
    """List DOMAIN for the MTA certificate DN (replacing that pair if listed) and publish."""
    try:
        entry = WhitelistEntry(name=_domain(domain), description=description,
                               operator_dn=_dn(dn), responsible_contact=responsible,
                               support_contact=support)
        _, trust_space = load_trust_space(config)
        whitelist = trust_space.publisher.add(entry)
        warning = _unknown_dn_warning(trust_space, entry.operator_dn)
    except MSSanteError as exc:
        raise fail(exc) from None
    typer.echo(f"added {entry.name} for {entry.operator_dn}; published "
               f"{len(whitelist)} entries")
    if warning:
        typer.echo(warning, err=True)


@app.command()
def remove(domain: Annotated[str, typer.Argument(help="The mail domain to remove.")],
           config: ConfigOption,
           dn: Annotated[str | None, typer.Option(
               "--dn", help="Remove only the entry for this certificate DN.")] = None) -> None:
    """Remove DOMAIN (all its entries, or only the one for --dn) and publish."""
    try:
        name = _domain(domain)
        _, trust_space = load_trust_space(config)
        whitelist = trust_space.publisher.remove(name, None if dn is None else _dn(dn))
    except MSSanteError as exc:
        raise fail(exc) from None
    typer.echo(f"removed {name}; published {len(whitelist)} entries")


@app.command("list")
def list_(config: ConfigOption,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the published whitelist."""
    try:
        _, trust_space = load_trust_space(config)
        whitelist = trust_space.publisher.current()
    except MSSanteError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({
            "generated_at": format_date(whitelist.generated_at),
            "entries": [{"name": e.name, "description": e.description,
                         "operator_dn": e.operator_dn,
                         "responsible_contact": e.responsible_contact,
                         "support_contact": e.support_contact,
                         "updated_at": format_date(e.updated_at)}
                        for e in whitelist.entries]}, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Whitelist generated {format_date(whitelist.generated_at)}: "
                        f"{len(whitelist)} entries")
    table.add_column("domain", no_wrap=True)
    table.add_column("operator certificate DN", overflow="fold")
    table.add_column("description")
    table.add_column("updated", no_wrap=True)
    for e in sorted(whitelist.entries, key=lambda e: (e.key, e.operator_dn)):
        table.add_row(e.name, e.operator_dn, e.description, format_date(e.updated_at))
    Console().print(table)

