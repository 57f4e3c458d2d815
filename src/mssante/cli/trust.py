"""`mssante trust ...`: create and run the trust space."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from mssante.config import TrustSpaceConfig, load_trust_space_config
from mssante.errors import MSSanteError
from mssante.trustspace.server import serve as serve_https
from mssante.trustspace.service import TrustSpace

app = typer.Typer(no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c",
                                            help="The trust space's configuration file.")]


def fail(exc: BaseException) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def certificate_hostname(config: TrustSpaceConfig) -> str:
    """The name put in the HTTPS certificate: the listening host unless it is a wildcard."""
    host = config.trust_space.host
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return "127.0.0.1"
    except ValueError:
        pass
    return host


def load_trust_space(config_file: Path) -> tuple[TrustSpaceConfig, TrustSpace]:
    """Read the configuration, then create or load the trust space it names."""
    config = load_trust_space_config(config_file)
    trust_space = TrustSpace.create_or_load(
        config.trust_space.data_dir, hostname=certificate_hostname(config),
        crl_validity=timedelta(seconds=config.trust_space.crl_validity),
        directory_url=config.trust_space.directory_url,
        extract_interval=config.trust_space.extract_interval,
        public_url=config.trust_space.public_url, psc=config.psc)
    return config, trust_space


@app.command()
def init(config: ConfigOption) -> None:
    """Create the PKI, the signing and HTTPS certificates and an empty whitelist."""
    try:
        settings, trust_space = load_trust_space(config)
    except MSSanteError as exc:
        raise fail(exc) from None
    typer.echo(f"trust space ready in {trust_space.data_dir}")
    typer.echo(f"root CA: {trust_space.pki.root_cert_file}")
    typer.echo(f"whitelist: {trust_space.publisher.xml_file} "
               f"({len(trust_space.publisher.current())} entries)")
    typer.echo(f"serve with: mssante trust serve --config {settings.path}")


async def _serve_until_signal(trust_space: TrustSpace, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    task = asyncio.create_task(serve_https(trust_space, host, port, ready=ready))
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            shown = f"[{host}]" if ":" in host else host
            typer.echo(f"trust space listening on https://{shown}:{port}", err=True)
        else:
            waiter.cancel()
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    typer.echo("trust space stopped", err=True)


@app.command()
def serve(config: ConfigOption) -> None:
    """Serve the whitelist, CA certificates and CRLs over HTTPS until SIGINT or SIGTERM."""
    try:
        settings, trust_space = load_trust_space(config)
        asyncio.run(_serve_until_signal(trust_space, settings.trust_space.host,
                                        settings.trust_space.port))
    except (MSSanteError, OSError) as exc:
        raise fail(exc) from None
