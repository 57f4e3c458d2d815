"""The ``mssante`` command: one module per command group, wired here."""

from __future__ import annotations

import typer

from mssante.cli import alert, directory, operator, pki, psc, send, trust, up, whitelist, xdm
from mssante.files import private_umask

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="MSSanté trust space and operators.")
app.add_typer(pki.app, name="pki", help="The trust space's certificate authority.")
app.add_typer(whitelist.app, name="whitelist", help="The whitelist of trust-space domains.")
app.add_typer(trust.app, name="trust", help="Run the trust space.")
app.add_typer(operator.app, name="operator", help="Run and administer an operator.")
app.add_typer(directory.app, name="directory", help="The national directory's extract.")
app.add_typer(psc.app, name="psc",
              help="The Pro Santé Connect-like provider (simulated e-CPS).")
app.add_typer(xdm.app, name="xdm",
              help="Clinical documents: build and check IHE XDM archives (IHE_XDM.ZIP).")
app.add_typer(alert.app, name="alert",
              help="A health authority's alerts to a selection of the directory.")
app.command("up")(up.up)
app.command("send")(send.send)


def main() -> None:
    private_umask()  # data directories hold health data: files 0600, folders 0700
    app()
