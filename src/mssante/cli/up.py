"""`mssante up`: the whole local environment, in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mssante.cli.common import console, run
from mssante.environment.local import DEFAULT_BASE_PORT, LocalEnvironment
from mssante.operator.maillog import show_mail_log


def up(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where everything is kept.")] = Path(
        "mssante-data"),
    base_port: Annotated[int, typer.Option("--base-port", help="First port; see README.")] = (
        DEFAULT_BASE_PORT),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the trust space and three operators on 127.0.0.1 (Ctrl-C stops them).

    Other MTAs join through DATA_DIR/outside-operators.toml, read at each start.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    show_mail_log()  # one line per message received, refused or delivered
    if not 1024 <= base_port <= 65000:
        raise typer.BadParameter("must be between 1024 and 65000", param_hint="--base-port")

    async def main() -> None:
        # Handlers first: a signal that arrives while starting (environment.json is
        # already written) must stop cleanly too.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        env = LocalEnvironment(data_dir, base_port)
        await env.prepare()
        await env.start()
        try:
            _show(env)
            await stop.wait()
            console.print("stopping…")
        finally:
            await env.stop()

    run(main())


def _show(env: LocalEnvironment) -> None:
    d = env.description
    console.print(f"[bold]MSSanté local environment[/] — data in {env.data_dir}")
    console.print(f"trust space: {d['trust_space']['url']}   CA: {d['ca_file']}")
    console.print(f"directory: FHIR {d['directory']['fhir']}   autocomplete "
                  f"{d['directory']['autocomplete']}?q=…", highlight=False)
    console.print(f"Pro Santé Connect (simulated e-CPS): {d['psc']['issuer']}   "
                  f"mssante psc token --env {env.data_dir / 'environment.json'} "
                  f"--id-nat-ps IDNATPS", highlight=False, soft_wrap=True)
    endpoints = Table("operator", "MTA (STARTTLS)", "submission (STARTTLS)",
                      "submissions (TLS)", "IMAP (STARTTLS)", "IMAPS (TLS)",
                      "HTTPS (autoconfig)")
    for op in d["operators"]:
        endpoints.add_row(op["domain"], *(str(op[name]["port"]) for name in (
            "smtp", "submission", "submissions", "imap", "imaps", "web")))
    console.print(endpoints)
    for outside in d["outside_operators"]:
        dn = outside["dn"] or "(no dn: whitelist it yourself)"
        console.print(f"outside operator {outside['domain']}: MTA {outside['mta']}, "
                      f"certificate {dn} (outside-operators.toml)", highlight=False,
                      soft_wrap=True)
    console.print("[bold]logins[/] (also in environment.json):")
    for acc in d["accounts"]:
        id_nat_ps = f", idNatPs {acc['id_nat_ps']}" if "id_nat_ps" in acc else ""
        console.print(f"  {acc['login']}  password {acc['password']}  ({acc['kind']}: "
                      f"{', '.join(acc['mailboxes'])}{id_nat_ps})", highlight=False,
                      soft_wrap=True)
    for app in d["applications"]:
        console.print(f"  application {app['mailbox']}: certificate {app['cert_file']}",
                      highlight=False, soft_wrap=True)
    console.print(f"mail to personal addresses (one-time codes, new-message notices): "
                  f"{d['notifications']['folder']}/*.eml", highlight=False, soft_wrap=True)
    console.print(f"written: {env.data_dir / 'environment.json'} — Ctrl-C to stop")
