"""`mssante operator ...`: run an operator, manage its people, mailboxes, queue and
directory publications.

Mailbox changes made here are queued for the national directory in the same
transaction (store/outbox.py); a running operator (``serve``) sends them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import signal
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from rich.table import Table

from mssante import leases
from mssante.auth import apppasswords, totp
from mssante.auth.passwords import (
    TEST_COST_VARIABLE,
    generate_password,
    hash_password,
    insecure_test_hashes,
)
from mssante.cli import audit, integrate
from mssante.cli.common import console, fail, operator_config, print_json, run, with_store
from mssante.directory.contact import resource_for
from mssante.domain.addresses import parse_address
from mssante.domain.ins import parse_patient_address
from mssante.domain.logins import parse_personal_address
from mssante.domain.mailboxes import MailboxType, PersonKind, Role, Rules
from mssante.domain.policy import check_served
from mssante.environment.operator import OperatorService
from mssante.environment.workers import (
    Supervisor,
    check_ports_free,
    follow_supervisor,
    listening,
    tell_ready,
    worker_command,
    worker_role,
)
from mssante.errors import ConfigError, MSSanteError, PolicyViolation
from mssante.imap.namespace import SHARED_PREFIX
from mssante.operator.maillog import show_mail_log
from mssante.pki.names import dn_string, parse_dn
from mssante.store import Mailbox, Person, Store
from mssante.store.logins import KEEP, AppPassword, Contact, Keep
from mssante.store.models import PENDING

_LOGIN = re.compile(r"^[A-Za-z0-9._+@-]{1,128}$")

app = typer.Typer(no_args_is_help=True)
user_app = typer.Typer(no_args_is_help=True, help="People: professionals, staff, patients.")
mailbox_app = typer.Typer(no_args_is_help=True, help="Mailboxes and who may use them.")
queue_app = typer.Typer(no_args_is_help=True, help="The outbound queue.")
directory_app = typer.Typer(no_args_is_help=True,
                            help="Publications of mailboxes in the national directory.")
totp_app = typer.Typer(no_args_is_help=True,
                       help="TOTP second factor (an authenticator application).")
user_app.add_typer(totp_app, name="totp")
app_password_app = typer.Typer(
    no_args_is_help=True,
    help="Application passwords: what mail clients log in with (IMAP, submission).")
user_app.add_typer(app_password_app, name="app-password")
app.add_typer(user_app, name="user")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(queue_app, name="queue")
app.command("integrate")(integrate.integrate)
app.add_typer(directory_app, name="directory")
app.add_typer(audit.app, name="audit")

Config = Annotated[Path, typer.Option("--config", "-c", help="Operator configuration file.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _rules(config_path: Path) -> Rules:
    return Rules(social_may_hold_per=operator_config(config_path).operator.social_may_hold_per)


# -- serve ------------------------------------------------------------------------------

@app.command()
def serve(config: Config,
          verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the operator (MTA, submission, IMAP, HTTPS, delivery) until SIGINT or SIGTERM,
    from ``operator.processes`` processes (0: one per core)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = operator_config(config)
    role = worker_role()
    count = cfg.operator.process_count
    if insecure_test_hashes() and role is None:  # said once, by the supervisor or alone
        logging.getLogger(__name__).warning(
            "%s is set: new passwords are hashed at the test suite's cost, which a stolen "
            "hash does not resist; unset it outside the tests", TEST_COST_VARIABLE)
    if role is None and count > 1:  # the supervisor: it serves nothing itself
        try:
            check_ports_free(cfg)
        except ConfigError as exc:
            raise fail(str(exc)) from None
        supervisor = Supervisor(worker_command(config, verbose=verbose), count,
                                announce=lambda: console.print(
                                    f"operator {', '.join(cfg.operator.domains)} ready: "
                                    f"{listening(cfg)} ({count} processes)"))
        raise typer.Exit(supervisor.run())
    if role is not None:
        follow_supervisor()  # a supervisor killed outright takes this worker with it
    show_mail_log()  # one line per message received, refused or delivered

    async def main() -> None:
        service = OperatorService(cfg, role)
        await service.start()
        if role is None:
            console.print(f"operator {', '.join(cfg.operator.domains)} ready: {service.ports}")
        else:
            tell_ready()  # the supervisor prints ready once every worker is
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await service.stop()

    run(main())


# -- people -----------------------------------------------------------------------------

@user_app.command("add")
def user_add(
    login: str, config: Config,
    kind: Annotated[PersonKind, typer.Option(help="professional, social, staff or patient")],
    name: Annotated[str, typer.Option(help="Display name")],
    rpps: Annotated[str | None, typer.Option(help="RPPS number of a health professional")] = None,
    password: Annotated[str | None, typer.Option(help="Password; generated if omitted")] = None,
) -> None:
    """Create a person; prints the generated password when none is given."""
    if not _LOGIN.match(login):
        raise fail(f"login {login!r}: 1 to 128 characters among letters, digits and . _ - + @")
    if kind is PersonKind.PATIENT:
        try:
            parse_patient_address(login)
        except MSSanteError as exc:
            raise fail(f"a patient's login is their address <INS>@patient.mssante.fr: {exc}"
                       ) from None
    if kind is PersonKind.HEALTH and not rpps:
        raise fail("a health professional needs --rpps")
    if rpps is not None and not (rpps.isdigit() and len(rpps) == 11):
        raise fail(f"--rpps: an RPPS number has 11 digits, got {rpps!r}")
    secret = password or generate_password()

    async def body(store: Store) -> None:
        await store.create_person(login, kind, name, password_hash=hash_password(secret),
                                  rpps=rpps)

    run(with_store(config, body))
    console.print(f"created {kind.value} {login}")
    if password is None:
        console.print(f"password: {secret}", highlight=False)


@user_app.command("passwd")
def user_passwd(login: str, config: Config,
                password: Annotated[str | None, typer.Option()] = None) -> None:
    """Set a new password (generated and printed if omitted)."""
    secret = password or generate_password()
    run(with_store(config, lambda s: s.set_password_hash(login, hash_password(secret))))
    if password is None:
        console.print(f"password: {secret}", highlight=False)


@user_app.command("delete")
def user_delete(login: str, config: Config) -> None:
    """Delete a person (refused while they hold a PER mailbox or are its last responsible)."""
    run(with_store(config, lambda s: s.delete_person(login)))
    console.print(f"deleted {login}")


@user_app.command("list")
def user_list(config: Config, json_out: Json = False) -> None:
    """List people."""

    async def body(store: Store) -> list[tuple[Person, str | None]]:
        return [(p, await store.home_mailbox(p.login)) for p in await store.list_persons()]

    persons = run(with_store(config, body))
    if json_out:
        print_json([{"login": p.login, "kind": p.kind.value, "display_name": p.display_name,
                     "rpps": p.rpps, "home": home} for p, home in persons])
        return
    table = Table("login", "kind", "name", "RPPS", "home (IMAP INBOX)")
    for p, home in persons:
        table.add_row(p.login, p.kind.value, p.display_name, p.rpps or "", home or "")
    console.print(table)


@totp_app.command("enrol")
def totp_enrol(login: str, config: Config) -> None:
    """Give a person a new TOTP secret (replacing any): prints the otpauth:// URI for
    their authenticator application, and the secret to type in by hand. Shown once:
    the store keeps it sealed with the key file ([operator] totp_key_file)."""
    cfg = operator_config(config)
    key = totp.SealingKey.create(cfg.operator.totp_key_path)
    issuer = cfg.autoconfig.display_name or cfg.operator.domains[0]
    enrolment = run(with_store(config, lambda s: totp.enrol(s.logins, key, login,
                                                             issuer=issuer)))
    console.print(f"{login} enrolled: from now on, a password login at the web asks for "
                  "a code of their authenticator application, and mail clients (IMAP, "
                  "submission) need an application password (`operator user app-password "
                  "create`, or the webmail's page)", highlight=False)
    console.print(f"uri: {enrolment.uri}", highlight=False, soft_wrap=True)
    console.print(f"secret: {enrolment.secret}", highlight=False)


@totp_app.command("disable")
def totp_disable(login: str, config: Config) -> None:
    """Forget a person's TOTP secret (a lost telephone); enrol them again to give a
    new one. Where [psc.second_factor] requires TOTP, they cannot log in meanwhile."""
    run(with_store(config, lambda s: s.logins.set_totp(login, None)))
    console.print(f"{login}: TOTP disabled")


@app_password_app.command("create")
def app_password_create(
    login: str, config: Config,
    label: Annotated[str, typer.Option("--label", help="The device or program it is for")],
    json_out: Json = False,
) -> None:
    """Create an application password for a mail client (IMAP and submission, never
    the web) and print it, once: the store keeps its hash only. A person with a second
    factor (TOTP) must use one in mail clients; anyone may."""
    try:
        label = apppasswords.check_label(label)
    except apppasswords.InvalidLabel as exc:
        raise fail(f"--label: {exc}") from None

    async def body(store: Store) -> apppasswords.NewAppPassword:
        if await store.get_person(login) is None:
            raise fail(f"no person with login {login!r}")
        return await apppasswords.create(store.logins, login, label)

    created = run(with_store(config, body))
    if json_out:
        print_json({"id": created.entry.id, "label": created.entry.label,
                    "password": created.password})
        return
    console.print(f"{login}: application password {created.entry.id} "
                  f"({created.entry.label}) created; give it to that mail client as its "
                  "password, it is not shown again", highlight=False)
    console.print(f"password: {created.password}", highlight=False)


def _app_password_row(entry: AppPassword) -> dict[str, object]:
    return {"id": entry.id, "label": entry.label, "created": _when(entry.created_at),
            "last_used": _when(entry.last_used_at), "last_used_from": entry.last_used_from}


@app_password_app.command("list")
def app_password_list(login: str, config: Config, json_out: Json = False) -> None:
    """List a person's application passwords (never the passwords themselves)."""

    async def body(store: Store) -> list[AppPassword]:
        if await store.get_person(login) is None:
            raise fail(f"no person with login {login!r}")
        return await store.logins.app_passwords(login)

    rows = [_app_password_row(e) for e in run(with_store(config, body))]
    if json_out:
        print_json(rows)
        return
    table = Table("id", "label", "created (UTC)", "last used (UTC)", "from")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in ("id", "label", "created", "last_used",
                                                     "last_used_from")))
    console.print(table)


@app_password_app.command("revoke")
def app_password_revoke(login: str, app_password_id: Annotated[int, typer.Argument(
        metavar="ID", help="Its id, from `app-password list`")], config: Config) -> None:
    """Revoke one application password: from the next login on, in every process of
    the operator, it opens nothing."""
    if not run(with_store(config, lambda s: s.logins.revoke_app_password(login,
                                                                       app_password_id))):
        raise fail(f"{login} has no application password {app_password_id}")
    console.print(f"{login}: application password {app_password_id} revoked")


@user_app.command("contact")
def user_contact(
    login: str, config: Config,
    address: Annotated[str | None, typer.Option(
        "--address", help="Personal address (outside the trust space) for one-time codes "
                          "and new-message notices")] = None,
    no_address: Annotated[bool, typer.Option("--no-address",
                                             help="Forget the personal address")] = False,
    notices: Annotated[bool | None, typer.Option(
        "--notices/--no-notices", help="Announce new messages at the personal address")
    ] = None,
    code: Annotated[bool | None, typer.Option(
        "--code/--no-code", help="Ask a patient for a one-time code sent to the personal "
                                 "address after their password, at the web")] = None,
    json_out: Json = False,
) -> None:
    """Show or change a person's personal address, new-message notices and one-time
    login code (both on by default; a patient whose code is on and who has no address
    cannot log in at the web)."""
    if address is not None and no_address:
        raise fail("give --address or --no-address, not both")
    personal: str | Keep | None = KEEP
    if address is not None:
        try:
            personal = str(parse_personal_address(address))
        except MSSanteError as exc:
            raise fail(f"--address: {exc}") from None
    elif no_address:
        personal = None

    async def body(store: Store) -> Contact:
        return await store.logins.set_contact(
            login, personal_address=personal,
            notify_messages=KEEP if notices is None else notices,
            login_code=KEEP if code is None else code)

    contact = run(with_store(config, body))
    row = {"login": contact.login, "kind": contact.kind.value,
           "personal_address": contact.personal_address,
           "notices": contact.notify_messages, "login_code": contact.login_code,
           "totp": contact.totp_enrolled}
    if json_out:
        print_json(row)
        return
    for name, value in row.items():
        shown = ("on" if value else "off") if isinstance(value, bool) else (value or "none")
        console.print(f"{name}: {shown}", highlight=False)


# -- mailboxes --------------------------------------------------------------------------

@mailbox_app.command("add")
def mailbox_add(
    address: str, config: Config,
    type_: Annotated[MailboxType, typer.Option("--type", help="PER, ORG, APP, CAB or PAT")],
    owner: Annotated[str | None, typer.Option(help="Login of the holder (PER, PAT)")] = None,
    responsible: Annotated[list[str] | None, typer.Option(
        help="Login of a responsible professional (ORG, APP, CAB); repeatable")] = None,
    description: Annotated[str, typer.Option()] = "",
    organisation: Annotated[str, typer.Option()] = "",
    service: Annotated[str, typer.Option()] = "",
    cert_file: Annotated[Path | None, typer.Option(
        help="APP: the organisation certificate (PEM) its program authenticates with")] = None,
    cert_dn: Annotated[str | None, typer.Option(help="APP: the certificate subject DN")] = None,
    structure: Annotated[str | None, typer.Option(
        metavar="IDNATST",
        help="ORG, APP: idNatSt of the organisation that holds it in the directory")] = None,
    liste_rouge: Annotated[bool, typer.Option(
        "--liste-rouge", help="Published, but hidden from the public directory")] = False,
) -> None:
    """Create a mailbox of one of this operator's domains (published in the directory
    when it has a national identifier: its owner's RPPS, or --structure)."""
    cfg = operator_config(config)
    try:
        parsed = (parse_patient_address(address) if type_ is MailboxType.PAT
                  else parse_address(address))
    except MSSanteError as exc:
        raise fail(str(exc)) from None
    try:
        check_served(frozenset(d.lower() for d in cfg.operator.domains), parsed)
    except PolicyViolation as exc:
        raise fail(str(exc)) from None
    dn = cert_dn
    if cert_dn is not None:  # as pasted from openssl or written RFC 4514 style
        try:
            dn = parse_dn(cert_dn)
        except ValueError as exc:
            raise fail(f"--cert-dn: not a distinguished name: {exc}") from None
    if cert_file is not None:
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise fail(f"--cert-file: {exc}") from None
        dn = dn_string(cert.subject)
    rules = Rules(social_may_hold_per=cfg.operator.social_may_hold_per)

    async def body(store: Store) -> tuple[Mailbox, str | None]:
        try:
            mailbox = await store.create_mailbox(
                str(parsed), type_, rules=rules, owner=owner, responsible=responsible or [],
                description=description, organisation=organisation, service=service,
                cert_dn=dn, structure=structure, liste_rouge=liste_rouge)
        except ValueError as exc:
            raise fail(f"--structure: {exc}") from None
        return mailbox, (await store.home_mailbox(owner) if owner is not None else None)

    mailbox, home = run(with_store(config, body))
    console.print(f"created {type_.value} mailbox {parsed}")
    if owner is not None:
        console.print(_place_for_owner(mailbox, owner, home), highlight=False)
    console.print(_publication(mailbox), highlight=False)


def _place_for_owner(mailbox: Mailbox, owner: str, home: str | None) -> str:
    """Where the owner's mail clients show a new PER or PAT mailbox."""
    if home == mailbox.address:
        return f"home of {owner}: their IMAP INBOX"
    kept = f"{owner} keeps {home} as home (IMAP INBOX); " if home else ""
    return f"{kept}this one is shown beside it, under {SHARED_PREFIX}{mailbox.address}/"


def _publication(mailbox: Mailbox) -> str:
    """Where the directory will show the mailbox, or why it will not."""
    resource = resource_for(mailbox.type)
    if resource is None:
        return "not published in the directory (patient mailbox)"
    if mailbox.directory_id is not None:
        return f"queued for the directory on {resource} {mailbox.directory_id}"
    why = {MailboxType.PER: "its owner has no RPPS number",
           MailboxType.CAB: "none of its responsible professionals has an RPPS number"
           }.get(mailbox.type, "no --structure (idNatSt) was given")
    return f"not published in the directory: {why}"


@mailbox_app.command("set")
def mailbox_set(
    address: str, config: Config,
    description: Annotated[str | None, typer.Option()] = None,
    service: Annotated[str | None, typer.Option()] = None,
    liste_rouge: Annotated[bool | None, typer.Option(
        "--liste-rouge/--no-liste-rouge",
        help="Hide from the public directory, or show again")] = None,
) -> None:
    """Change what the directory shows of a mailbox; an open published mailbox is
    published again."""
    if description is None and service is None and liste_rouge is None:
        raise fail("nothing to change: give --description, --service or --liste-rouge")
    mailbox = run(with_store(config, lambda s: s.update_mailbox(
        address, description=description, service=service, liste_rouge=liste_rouge)))
    console.print(f"updated {mailbox.display_address}")


@mailbox_app.command("list")
def mailbox_list(config: Config, json_out: Json = False,
                 domain: Annotated[str | None, typer.Option()] = None) -> None:
    """List mailboxes with the people who may use them."""

    async def body(store: Store) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for mb in await store.list_mailboxes(domain):
            roles = await store.roles(mb.address)
            out.append({"address": mb.display_address, "type": mb.type.value,
                        "active": mb.active, "description": mb.description,
                        "service": mb.service, "cert_dn": mb.cert_dn,
                        "directory_id": mb.directory_id, "liste_rouge": mb.liste_rouge,
                        "people": [{"login": r.login, "role": r.role.value, "rights": r.rights}
                                   for r in roles]})
        return out

    rows = run(with_store(config, body))
    if json_out:
        print_json(rows)
        return
    table = Table("address", "type", "active", "people")
    for row in rows:
        people = ", ".join(f"{p['login']} ({p['role']})" for p in row["people"])  # type: ignore[attr-defined]
        table.add_row(str(row["address"]), str(row["type"]), "yes" if row["active"] else "closed",
                      people)
    console.print(table)


@mailbox_app.command("grant")
def mailbox_grant(
    address: str, login: str, config: Config,
    role: Annotated[Role, typer.Option(help="authorised or responsible")] = Role.AUTHORISED,
    read_only: Annotated[bool, typer.Option("--read-only")] = False,
) -> None:
    """Let a person use an ORG or CAB mailbox (or make them responsible)."""
    rules = _rules(config)
    run(with_store(config, lambda s: s.grant(address, login, role,
                                             rights="r" if read_only else "rw", rules=rules)))
    console.print(f"{login} is now {role.value} on {address}")


@mailbox_app.command("revoke")
def mailbox_revoke(address: str, login: str, config: Config) -> None:
    """Withdraw a person's use of a mailbox."""
    run(with_store(config, lambda s: s.revoke(address, login)))
    console.print(f"{login} may no longer use {address}")


@mailbox_app.command("close")
def mailbox_close(address: str, config: Config) -> None:
    """Close a mailbox: mail to it is refused with "mailbox closed"."""
    run(with_store(config, lambda s: s.set_mailbox_active(address, False)))
    console.print(f"closed {address}")


@mailbox_app.command("open")
def mailbox_open(address: str, config: Config) -> None:
    """Re-open a closed mailbox."""
    run(with_store(config, lambda s: s.set_mailbox_active(address, True)))
    console.print(f"opened {address}")


@mailbox_app.command("delete")
def mailbox_delete(address: str, config: Config) -> None:
    """Delete a mailbox and its access rights."""
    run(with_store(config, lambda s: s.delete_mailbox(address)))
    console.print(f"deleted {address}")


# -- queue ------------------------------------------------------------------------------

def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


class QueueStatus(StrEnum):
    queued = "queued"
    delivered = "delivered"
    failed = "failed"


@queue_app.command("list")
def queue_list(config: Config, json_out: Json = False,
               status: Annotated[QueueStatus | None, typer.Option(
                   help="queued, delivered or failed")] = None) -> None:
    """List queue entries (by default every status)."""
    wanted = status.value if status is not None else None
    entries = run(with_store(config, lambda s: s.queue_entries(status=wanted)))
    rows = [{"id": e.id, "status": e.status, "from": e.envelope_from, "to": e.recipient,
             "attempts": e.attempts, "next_attempt": _when(e.next_attempt_at),
             "created": _when(e.created_at), "last_error": e.last_error} for e in entries]
    if json_out:
        print_json(rows)
        return
    table = Table("id", "status", "from", "to", "attempts", "next attempt", "last error")
    for r in rows:
        table.add_row(str(r["id"]), str(r["status"]), str(r["from"]) or "<>", str(r["to"]),
                      str(r["attempts"]), str(r["next_attempt"]), str(r["last_error"] or ""))
    console.print(table)


@queue_app.command("retry")
def queue_retry(config: Config,
                entry: Annotated[int | None, typer.Argument(help="Entry id; all if omitted")] = None
                ) -> None:
    """Make queued entries (or one failed entry) due now; a running operator picks them up.
    The leases of a process known dead go back first (leases.py)."""

    async def retry(store: Store) -> int:
        await leases.reclaim_dead(store, now=time.time())
        return await store.retry_now(entry, now=time.time())

    count = run(with_store(config, retry))
    console.print(f"{count} entr{'y' if count == 1 else 'ies'} due now")


@queue_app.command("delete")
def queue_delete(entry: int, config: Config) -> None:
    """Delete a queue entry without delivering it."""
    run(with_store(config, lambda s: s.delete_queue_entry(entry)))
    console.print(f"deleted queue entry {entry}")


# -- a message's timeline -----------------------------------------------------------------

@app.command("track")
def track(message_id: Annotated[str, typer.Argument(
              help="The Message-ID, with or without its angle brackets")],
          config: Config, json_out: Json = False,
          mailbox: Annotated[str | None, typer.Option(
              help="Only the copy this mailbox sent")] = None) -> None:
    """What became of a message sent from this operator: submitted, stored here,
    relayed to the recipient's operator, deferred, failed, and the delivery (DSN) and
    read (MDN) reports that came back, per recipient (store/receipts.py). An integration
    receipt with an error code (900-906) is ``integration-failed``, its ``error`` the
    code and label."""
    wanted = message_id.strip()
    if not wanted or any(c.isspace() for c in wanted) or "<" in wanted.strip("<>") \
            or ">" in wanted.strip("<>"):
        raise fail(f"not a Message-ID: {message_id!r}")
    wanted = f"<{wanted.strip('<>')}>"
    found = run(with_store(config, lambda s: s.timeline(wanted, mailbox=mailbox)))
    if not found:
        raise fail(f"no mailbox of this operator sent {wanted}")
    rows = [{"message_id": t.message_id, "sender": t.sender, "subject": t.subject,
             "recipients": t.recipients,
             "events": [{"time": _when(e.at), "event": e.event, "recipient": e.recipient,
                         "operator": e.operator, "hop": e.hop, "detail": e.detail,
                         "error": {"code": e.error_code, "label": e.error_label}
                         if e.error_code is not None else None}
                        for e in t.events]} for t in found]
    if json_out:  # one object; copies sent by other mailboxes of this operator beside it
        print_json({**rows[0], "other_copies": rows[1:]} if len(rows) > 1 else rows[0])
        return
    for t in found:
        console.print(f"{t.message_id} from {t.sender}: {t.subject or '(no subject)'}",
                      highlight=False)
        table = Table("time", "event", "recipient", "operator / next hop", "detail")
        for e in t.events:
            event = f"{e.event} {e.error_code} {e.error_label}" \
                if e.error_code is not None else e.event
            where = (f"{e.operator} via {e.hop}" if e.hop else e.operator) \
                if e.operator else "this operator"
            table.add_row(_when(e.at), event, e.recipient, where, e.detail)
        console.print(table)
        for recipient, state in t.recipients.items():
            failure = next((e for e in reversed(t.events) if e.recipient == recipient
                            and e.event == state and e.error_code is not None), None)
            why = f" {failure.error_code} {failure.error_label}" if failure else ""
            console.print(f"  {recipient}: {state}{why}", highlight=False, soft_wrap=True)


# -- directory publications -------------------------------------------------------------

@directory_app.command("status")
def directory_status(config: Config, json_out: Json = False) -> None:
    """Publications not yet accepted by the trust space: pending (with their attempts
    and the last error) and failed (with the reason the trust space gave)."""
    entries = run(with_store(config, lambda s: s.directory_entries()))
    rows = [{"id": e.id, "address": e.address, "operation": e.operation,
             "resource": e.resource, "identifier": e.identifier, "state": e.state,
             "attempts": e.attempts, "created": _when(e.created_at),
             "next_attempt": _when(e.next_attempt_at) if e.state == PENDING else "",
             "last_error": e.last_error} for e in entries]
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("every publication was accepted by the trust space")
        return
    table = Table("id", "address", "operation", "on", "state", "attempts", "next attempt")
    for r in rows:
        table.add_row(str(r["id"]), str(r["address"]), str(r["operation"]),
                      f"{r['resource']}/{r['identifier']}", str(r["state"]),
                      str(r["attempts"]), str(r["next_attempt"]))
    console.print(table)
    for r in rows:  # whole, below the table: the reason is what the operator acts on
        if r["last_error"]:
            console.print(f"{r['id']} {r['state']}: {r['last_error']}", highlight=False,
                          soft_wrap=True)


@directory_app.command("republish")
def directory_republish(
    config: Config,
    address: Annotated[str | None, typer.Argument(
        help="A mailbox; every open published mailbox if omitted")] = None,
) -> None:
    """Queue every open published mailbox (or one) for the directory again, as it is
    now; a running operator sends them."""
    count = run(with_store(config, lambda s: s.republish(address)))
    if address is not None and count == 0:
        raise fail(f"{address} is not published in the directory (closed, a patient "
                   "mailbox, or without a national identifier)")
    console.print(f"{count} publication{'' if count == 1 else 's'} queued")


# -- messages ---------------------------------------------------------------------------

@app.command()
def messages(address: str, config: Config, json_out: Json = False) -> None:
    """List what a mailbox holds (message id, from, subject, date)."""

    async def body(store: Store):  # type: ignore[no-untyped-def]
        if await store.get_mailbox(address) is None:
            raise fail(f"no mailbox {address} on this operator")
        return await store.list_messages(address)

    stored = run(with_store(config, body))
    rows = [{"uid": m.uid, "message_id": m.message_id, "from": m.from_header,
             "subject": m.subject, "date": m.date_header, "received": _when(m.received_at),
             "size": m.size} for m in stored]
    if json_out:
        print_json(rows)
        return
    table = Table("uid", "from", "subject", "date")
    for r in rows:
        table.add_row(str(r["uid"]), str(r["from"] or ""), str(r["subject"] or ""),
                      str(r["date"] or ""))
    console.print(table)
