"""``mssante alert``: a health authority's alerts (README "Health alerts")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mssante.alerts.send import (
    authority_of,
    compose,
    fetch_extract,
    load_environment,
    select_recipients,
    submit,
)
from mssante.alerts.status import AlertStatus, alert_status
from mssante.cli.common import console, fail, operator_config, print_json, run, store_of
from mssante.domain.alerts import (
    AlertError,
    check_alert_id,
    check_subject,
    message_id,
    new_alert_id,
    target,
)
from mssante.errors import MSSanteError

app = typer.Typer(no_args_is_help=True)

Env = Annotated[Path, typer.Option("--env", help="The environment.json of `mssante up`.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command("send")
def send(
    env: Env,
    subject: Annotated[str, typer.Option("--subject", help="The alert's subject.")],
    body_file: Annotated[Path, typer.Option("--body-file",
                                            help="The alert's text (UTF-8).")],
    profession: Annotated[list[str] | None, typer.Option(
        "--profession", help="Profession code (TRE_G15, e.g. 10 Médecin); repeatable.")
    ] = None,
    specialty: Annotated[list[str] | None, typer.Option(
        "--specialty", help="Savoir-faire code (e.g. SM04); repeatable.")] = None,
    department: Annotated[list[str] | None, typer.Option(
        "--department", help="Department of the structure (e.g. 75, 2A, 974); repeatable.")
    ] = None,
    mailbox_type: Annotated[list[str] | None, typer.Option(
        "--type", help="Mailbox type: PER or ORG; repeatable.")] = None,
    structure: Annotated[list[str] | None, typer.Option(
        "--structure", help="A structure's idNatSt (1 + FINESS, 3 + SIRET); repeatable.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Send an alert from the authority's mailbox to a selection of the directory
    (criteria combine with AND, repeated values with OR); prints its id and the number
    of recipients."""
    try:
        chosen = target(professions=profession or (), specialties=specialty or (),
                        departments=department or (), types=mailbox_type or (),
                        structures=structure or ())
        title = check_subject(subject)
        text = _body(body_file)
        description = load_environment(env)
        authority = authority_of(description, env)
        recipients = select_recipients(fetch_extract(authority.extract_url,
                                                     authority.ca_file), chosen)
        alert_id = new_alert_id()
        sent = submit(authority, recipients,
                      compose(alert_id, authority.mailbox, title, text))
    except MSSanteError as exc:
        raise fail(str(exc)) from None
    if not sent.recipients:
        raise fail("the authority's operator refused every recipient: " + "; ".join(
            f"{a}: {r}" for a, r in sent.refused.items()))
    if json_out:
        print_json({"id": alert_id, "recipients": sent.recipients,
                    "message_id": message_id(alert_id, authority.mailbox.rpartition("@")[2]),
                    "refused": sent.refused})
        return
    console.print(f"alert {alert_id}: {sent.recipients} recipients", highlight=False)
    for address, reply in sent.refused.items():
        console.print(f"  refused {address}: {reply}", highlight=False)


def _body(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AlertError(f"--body-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertError(f"--body-file {path}: cannot be read as UTF-8 text: {exc}") from None
    if not text.strip():
        raise AlertError(f"--body-file {path}: the alert's text is empty")
    return text


@app.command("status")
def status(
    alert_id: Annotated[str, typer.Argument(help="The id `alert send` printed.")],
    env: Env,
    json_out: Json = False,
) -> None:
    """Delivered, deferred and failed recipients of an alert, in all and per operator."""
    try:
        check_alert_id(alert_id)
        authority = authority_of(load_environment(env), env)
    except MSSanteError as exc:
        raise fail(str(exc)) from None
    wanted = message_id(alert_id, authority.mailbox.rpartition("@")[2])
    config = operator_config(authority.config)

    async def body() -> AlertStatus | None:
        async with store_of(config) as store:
            return await alert_status(store, wanted, authority.mailbox)

    found = run(body())
    if found is None:
        raise fail(f"no alert {alert_id} was sent by {authority.mailbox}")
    if json_out:
        print_json({"id": alert_id, **found.as_json()})
        return
    console.print(f"alert {alert_id}: {found.subject or ''}", highlight=False)
    console.print(f"  {found.recipients} recipients: {found.delivered} delivered, "
                  f"{found.deferred} deferred, {found.failed} failed", highlight=False)
    for domain, counts in found.operators.items():
        console.print(f"  {domain}: {counts['delivered']} delivered, {counts['deferred']} "
                      f"deferred, {counts['failed']} failed", highlight=False)
