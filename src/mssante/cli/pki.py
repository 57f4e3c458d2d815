"""`mssante pki ...`: create the CA hierarchy, issue, revoke and list certificates.

Every command takes exactly one of ``--dir DIR`` (the PKI directory) or
``--config FILE`` (a trust-space configuration; the PKI is then
``<trust_space.data_dir>/pki``). Errors print one line and exit with status 1.
"""

from __future__ import annotations

import json
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mssante.config import load_trust_space_config
from mssante.errors import MSSanteError, PKIError
from mssante.pki.ca import PKI, IssuedCertificate, serial_of

app = typer.Typer(no_args_is_help=True)

# Certificate names may hold "[", which rich would read as markup: markup is off.
_out = Console(highlight=False, markup=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

DirOption = Annotated[Path | None, typer.Option(
    "--dir", help="The PKI directory.", file_okay=False)]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="A trust-space configuration file (PKI in <data_dir>/pki).",
    dir_okay=False)]


class Kind(StrEnum):
    server = "server"
    organisation = "organisation"
    person = "person"
    signing = "signing"


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(1)


def _open(directory: Path | None, config: Path | None, *, create: bool = False) -> PKI:
    if (directory is None) == (config is None):
        raise PKIError("give exactly one of --dir or --config")
    crl_validity = timedelta(days=7)
    if config is not None:
        settings = load_trust_space_config(config).trust_space
        directory = settings.data_dir / "pki"
        crl_validity = timedelta(seconds=settings.crl_validity)
    assert directory is not None
    if create:
        return PKI.create_or_load(directory, crl_validity=crl_validity)
    return PKI.load(directory, crl_validity=crl_validity)


@app.command()
def init(directory: DirOption = None, config: ConfigOption = None) -> None:
    """Create the root, organisations and persons CAs (kept if they exist)."""
    try:
        pki = _open(directory, config, create=True)
    except MSSanteError as exc:
        _fail(str(exc))
    _out.print(f"PKI ready in {pki.directory}")
    for ca in ("root", "organisations", "persons"):
        _out.print(f"  {ca:<14} {pki.ca_cert_file(ca)}")


@app.command()
def issue(
    kind: Annotated[Kind, typer.Argument(help="server, organisation, person or signing.")],
    cn: Annotated[str, typer.Option("--cn", help="Common name of the subject.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for NAME.pem and NAME.key.",
                                      file_okay=False)],
    name: Annotated[str, typer.Option("--name", help="Base name of the files written.")],
    directory: DirOption = None,
    config: ConfigOption = None,
    org: Annotated[str | None, typer.Option("--org", help="Organisation (O).")] = None,
    ou: Annotated[str | None, typer.Option(
        "--ou", help="Organisational unit (OU), e.g. the idNatSt.")] = None,
    state: Annotated[str | None, typer.Option(
        "--state", help="State or province (ST), servers only, e.g. 'Paris (75)'.")] = None,
    dns: Annotated[list[str] | None, typer.Option(
        "--dns", help="Extra DNS name (server; repeatable).")] = None,
    ip: Annotated[list[str] | None, typer.Option(
        "--ip", help="IP address (server; repeatable).")] = None,
    given_name: Annotated[str | None, typer.Option("--given-name", help="Person.")] = None,
    surname: Annotated[str | None, typer.Option("--surname", help="Person.")] = None,
    id_nat_ps: Annotated[str | None, typer.Option(
        "--id-nat-ps", help="Person's idNatPs (subject serialNumber).")] = None,
    days: Annotated[int, typer.Option("--days", help="Validity in days.")] = 825,
) -> None:
    """Issue a certificate and its key; print its serial, DN and files."""
    try:
        pki = _open(directory, config)
        issued = _issue(pki, kind, cn=cn, out=out, name=name, org=org, ou=ou, state=state,
                        dns=dns or [], ip=ip or [], given_name=given_name, surname=surname,
                        id_nat_ps=id_nat_ps, days=days)
    except MSSanteError as exc:
        _fail(str(exc))
    _out.print(f"issued {issued.kind} certificate")
    _out.print(f"  serial    {issued.serial}")
    _out.print(f"  subject   {issued.subject_dn}")
    _out.print(f"  expires   {issued.not_after.isoformat()}")
    _out.print(f"  cert      {issued.cert_file}")
    _out.print(f"  key       {issued.key_file}")


def _issue(pki: PKI, kind: Kind, *, cn: str, out: Path, name: str, org: str | None,
           ou: str | None, state: str | None, dns: list[str], ip: list[str],
           given_name: str | None, surname: str | None, id_nat_ps: str | None,
           days: int) -> IssuedCertificate:
    if kind is Kind.server:
        if not org:
            raise PKIError("a server certificate needs --org")
        return pki.issue_server(cn, organisation=org, organisation_unit=ou, state=state,
                                dns_names=dns, ip_addresses=ip, out_dir=out, name=name,
                                days=days)
    if dns or ip or state:
        raise PKIError("--dns, --ip and --state apply to server certificates only")
    if kind in (Kind.person, Kind.signing) and (org or ou):
        raise PKIError("--org and --ou apply to server and organisation certificates only")
    if kind is Kind.organisation:
        if not org:
            raise PKIError("an organisation certificate needs --org")
        return pki.issue_organisation(cn, organisation=org, organisation_unit=ou,
                                      out_dir=out, name=name, days=days)
    if kind is Kind.person:
        if not (given_name and surname and id_nat_ps):
            raise PKIError("a person certificate needs --given-name, --surname "
                           "and --id-nat-ps")
        return pki.issue_person(cn, given_name=given_name, surname=surname,
                                id_nat_ps=id_nat_ps, out_dir=out, name=name, days=days)
    return pki.issue_signing(cn, out_dir=out, name=name, days=days)


def _serial(text: str) -> int:
    """A serial in decimal or 0x-hex, or the path of a certificate file."""
    path = Path(text)
    if path.is_file():
        return serial_of(path)
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise PKIError(f"{text!r} is neither a serial number nor a certificate file") from None


@app.command()
def revoke(
    serial_or_certfile: Annotated[str, typer.Argument(
        metavar="SERIAL_OR_CERTFILE", help="Serial (decimal or 0x-hex) or a PEM file.")],
    directory: DirOption = None,
    config: ConfigOption = None,
    reason: Annotated[str, typer.Option(
        "--reason", help="RFC 5280 reason, e.g. keyCompromise, superseded.")] = "unspecified",
) -> None:
    """Revoke a certificate and publish the new CRL of its CA."""
    try:
        pki = _open(directory, config)
        serial = _serial(serial_or_certfile)
        pki.revoke(serial, reason)
        record = pki.record(serial)
    except MSSanteError as exc:
        _fail(str(exc))
    revoked_at = record.revoked_at.isoformat() if record.revoked_at else "?"
    _out.print(f"revoked serial {serial} ({record.subject_dn}) on {revoked_at}, "
               f"reason {record.reason}")
    _out.print(f"  CRL {pki.crl_file_path(record.ca)}")


@app.command("list")
def list_(
    directory: DirOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the certificates issued, with their revocation state."""
    try:
        records = _open(directory, config).issued()
    except MSSanteError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False))
        return
    table = Table()
    table.add_column("serial", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("subject", overflow="fold")
    table.add_column("expires", no_wrap=True)
    table.add_column("revoked")
    for r in records:
        revoked = f"{r.revoked_at:%Y-%m-%d} {r.reason}" if r.revoked_at else ""
        table.add_row(str(r.serial), r.kind, r.subject_dn, f"{r.not_after:%Y-%m-%d}", revoked)
    _out.print(table)
