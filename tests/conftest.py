"""Fixtures shared by the whole suite: free ports and a running local environment.

The environment runs in a thread with its own event loop, so that tests drive it
with blocking clients (smtplib, ssl) exactly as a user's mail client would.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import random
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from mssante.auth.passwords import TEST_COST_VARIABLE
from mssante.database import database_url
from mssante.environment.local import LocalEnvironment
from mssante.store import open_store

T = TypeVar("T")

POSTGRES_URL = os.environ.get("MSSANTE_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("MSSANTE_REQUIRE_POSTGRES", "") not in ("", "0")
# Every test connects from 127.0.0.1, and many fail logins on purpose: the operators
# the suite starts do not throttle failed logins, per login or per address.
# tests/test_throttle.py gives a running operator bounds of its own.
os.environ.setdefault("MSSANTE_OPERATOR__MAX_LOGIN_FAILURES", "0")
os.environ.setdefault("MSSANTE_OPERATOR__MAX_LOGIN_FAILURES_PER_ADDRESS", "0")
# Passwords hashed at argon2id's least cost (auth/passwords.py), here and in the
# processes the tests start: the suite hashes and checks thousands of them.
# tests/auth/test_passwords.py checks the production parameters without it.
os.environ.setdefault(TEST_COST_VARIABLE, "1")


@pytest.fixture(autouse=True)
def no_closed_event_loop_left_current() -> Iterator[None]:
    """After each test, no event loop is left as the thread's current one.

    pytest-asyncio closes each test's loop but leaves it current. A database connection
    some earlier test let go unclosed may be collected later, between tests; SQLAlchemy
    then stops its aiosqlite thread (aiosqlite ≥ 0.22), which binds a future to the
    current loop: a closed one made that thread fail at an unrelated test's setup. With
    no current loop the stop just runs. In a process of the product one loop runs for
    the whole life of the process, so this concerns the tests only.
    """
    yield
    asyncio.set_event_loop(None)


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards. When the server cannot be reached
    the test skips, unless MSSANTE_REQUIRE_POSTGRES is set: then it fails."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(database_url(POSTGRES_URL))
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except (OSError, SQLAlchemyError) as exc:
        await admin.dispose()
        reason = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason} (MSSANTE_REQUIRE_POSTGRES is set)")
        pytest.skip(reason)
    try:
        yield schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def _ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _ephemeral_start() -> int:
    """The first port the kernel gives outgoing connections (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base_port(span: int = 40) -> int:
    """A range of ``span`` free ports below the kernel's ephemeral range: a port free
    when checked there could be taken by any outgoing connection (a client's own port)
    before the environment binds it."""
    top = max(12000, _ephemeral_start() - span)
    for _ in range(200):
        base = random.randrange(10000, top, 50)
        if _ports_free(base, span):
            return base
    raise RuntimeError("no free port range")


class LoopThread:
    """An event loop in a thread; ``call`` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()  # as `mssante up` and `operator serve` run
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and close it; a transport a failed test left open can make
        uvloop's close wait for ever, so the close gets 10 s in a thread of its own and
        the suite goes on (and reports the failure) rather than hang."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        closer = threading.Thread(target=self.loop.close, daemon=True)
        closer.start()
        closer.join(10)


@dataclass
class RunningEnvironment:
    env: LocalEnvironment
    runner: LoopThread

    @property
    def description(self) -> dict[str, Any]:
        return self.env.description

    def operator(self, domain: str) -> dict[str, Any]:
        return next(o for o in self.description["operators"] if o["domain"] == domain)

    def service(self, domain: str) -> Any:
        return next(s for s in self.env.operators if domain in s.config.operator.domains)

    def account(self, login: str) -> dict[str, Any]:
        return next(a for a in self.description["accounts"] if a["login"] == login)

    def password(self, login: str) -> str:
        return str(self.account(login)["password"])

    @property
    def ca_file(self) -> str:
        return str(self.description["ca_file"])

    def messages(self, address: str) -> list[Any]:
        """The mailbox's messages, read on the environment's own loop: this works from
        any thread, also one where another loop runs (a browser test's Playwright)."""
        domain = address.rpartition("@")[2]
        url = self.service(domain).config.database_url

        async def read() -> list[Any]:
            store = await open_store(url)
            try:
                return await store.list_messages(address)
            finally:
                await store.close()

        return self.runner.call(read())

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0,
                 what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_message(self, address: str, subject: str, timeout: float = 20.0) -> Any:
        found: list[Any] = []

        def check() -> bool:
            found[:] = [m for m in self.messages(address) if m.subject == subject]
            return bool(found)

        self.wait_for(check, timeout, f"{subject!r} in {address}")
        return found[0]

    def refresh_trust(self) -> None:
        for service in self.env.operators:
            assert self.runner.call(service.trust.refresh()), "trust refresh failed"


# Kinds of prepared data (PKI, certificates, whitelist, directory, stores) that do not
# depend on ports nor on the settings below, made once per run and copied for each new
# environment: its `prepare` then only rewrites configurations, instead of generating
# a dozen RSA keys again (about 10 s an environment on this machine). The copy is what
# `mssante up` finds when it starts again on other ports, a case it supports anyway.
_TEMPLATES: dict[str, Path] = {}
_TEMPLATE_SAFE = {"retry_delays", "refresh_interval", "psc_token_lifetime", "notice_delay",
                  "notice_interval"}  # settings that prepare writes again each time


def _prepared_copy(data_dir: Path, runner: LoopThread, kwargs: dict[str, Any]) -> None:
    """Fill ``data_dir`` with a copy of a prepared environment, when nothing is there
    yet and the environment's stores are its SQLite files."""
    if data_dir.exists() or set(kwargs) - _TEMPLATE_SAFE:
        return
    template = _TEMPLATES.get("sqlite")
    if template is None:
        template = Path(tempfile.mkdtemp(prefix="mssante-env-template-")) / "env"
        atexit.register(shutil.rmtree, template.parent, True)
        runner.call(LocalEnvironment(template, free_base_port()).prepare(), timeout=180)
        _TEMPLATES["sqlite"] = template
    shutil.copytree(template, data_dir, symlinks=True)


def prepared_copy(data_dir: Path) -> None:
    """``data_dir`` filled with a copy of the run's prepared environment, for a test that
    runs ``mssante up`` (or ``prepare``) where one ran before: what a first start
    leaves is tested from scratch by tests/e2e/test_data_permissions.py and the
    template itself."""
    runner = LoopThread()
    try:
        _prepared_copy(data_dir, runner, {})
    finally:
        runner.close()


def start_environment(data_dir: Path, base_port: int | None = None,
                      **kwargs: Any) -> RunningEnvironment:
    runner = LoopThread()
    env = LocalEnvironment(data_dir, base_port or free_base_port(), **kwargs)
    try:
        _prepared_copy(env.data_dir, runner, kwargs)
        runner.call(env.prepare(), timeout=180)
        runner.call(env.start(), timeout=60)
    except BaseException:
        runner.close()
        raise
    return RunningEnvironment(env, runner)


def stop_environment(running: RunningEnvironment) -> None:
    try:
        running.runner.call(running.env.stop(), timeout=60)
    finally:
        running.runner.close()


@contextlib.contextmanager
def running_environment(data_dir: Path, **kwargs: Any) -> Iterator[RunningEnvironment]:
    """An environment of a test's own, stopped afterwards."""
    running = start_environment(data_dir, **kwargs)
    try:
        yield running
    finally:
        stop_environment(running)


@pytest.fixture(scope="session")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEnvironment]:
    """One environment for the tests that leave it as they found it."""
    running = start_environment(tmp_path_factory.mktemp("env"), retry_delays=(0.5, 1.0))
    try:
        yield running
    finally:
        stop_environment(running)


def environment_json(running: RunningEnvironment) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((running.env.data_dir / "environment.json").read_text())
    return data
