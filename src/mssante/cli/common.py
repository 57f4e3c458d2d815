"""Helpers shared by the command groups: error reporting, async bodies, output."""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
import uvloop
from rich.console import Console

from mssante.audit.events import ACTOR, SOURCE
from mssante.config import OperatorConfig, load_operator_config
from mssante.errors import MSSanteError
from mssante.store import Store, open_store

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)

def fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


def run(body: Coroutine[Any, Any, T]) -> T:
    """Run an async command body on uvloop (libuv's event loop and TLS: 170 against 138
    messages/s on bench/relay.py) ; project errors become one line and exit status 1."""
    try:
        return uvloop.run(body)
    except MSSanteError as exc:
        raise fail(str(exc)) from None


def operator_config(path: Path) -> OperatorConfig:
    try:
        return load_operator_config(path)
    except MSSanteError as exc:
        raise fail(str(exc)) from None


@asynccontextmanager
async def store_of(config: OperatorConfig):  # type: ignore[no-untyped-def]
    """The operator's store for a command: its changes are recorded in the audit trail
    as the command line's, by the user who ran it (audit/events.py)."""
    store = await open_store(config.database_url)
    store.audit_enabled = config.audit.enabled
    ACTOR.set(f"cli:{getpass.getuser()}")
    SOURCE.set(f"cli {socket.gethostname()}")
    try:
        yield store
    finally:
        await store.close()


async def with_store(path: Path, body: Callable[[Store], Awaitable[T]]) -> T:
    config = operator_config(path)
    async with store_of(config) as store:
        return await body(store)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
