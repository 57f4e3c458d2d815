"""Web sessions and ended Pro Santé Connect sessions live in the operator's store: they
survive a restart, and every process of the operator sees them (store/sessions.py).

Each test runs whole operators (``OperatorService``, as ``mssante operator serve`` does)
of the hospital on a database of its own, with real HTTPS and IMAPS listeners, the
running environment's PKI, trust space and PSC provider; httpx and imaplib are the
clients. "Restarted" is an operator stopped and another started on the same database;
"two processes" are two operators on one database, each with its own store (engine,
notification connection), as two processes of one operator have."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import imaplib
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from mssante.auth.passwords import hash_password
from mssante.config import Listener, OperatorConfig
from mssante.database import database_url
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.environment.operator import OperatorService
from mssante.pki.tls import client_context
from mssante.store import open_store
from mssante.store.schema import web_sessions
from mssante.store.sessions import POLL_SECONDS
from mssante.web.sessions import COOKIE
from tests.auth.side_operator import free_port
from tests.auth.test_psc_logout import logout_token, session_ended
from tests.auth.test_psc_tokens import DUPONT_ID, claims_of, psc_tokens, xoauth2
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, RunningEnvironment
from tests.imap.conftest import HOSPITAL, tls_context
from tests.web.test_web_login import hidden

DUPONT = "dupont@ch-xyz.mssante.fr"
PASSWORD = "correct horse battery staple"
LOGOUT_PATH = "/psc/backchannel-logout"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty operator database, with Dr Dupont (password, RPPS, PER)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'operator.sqlite3'}"
        await _seed(url)
        yield url
        return
    name = f"test_sessions_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(database_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, SQLAlchemyError) as exc:
        await admin.dispose()
        reason = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason} (MSSANTE_REQUIRE_POSTGRES is set)")
        pytest.skip(reason)
    url = database_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        await _seed(url)
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _seed(url: str) -> None:
    store = await open_store(url)
    try:
        await store.create_person(DUPONT, PersonKind.HEALTH, "Dr Dupont",
                                  password_hash=hash_password(PASSWORD), rpps=DUPONT_ID[1:])
        await store.create_mailbox(DUPONT, MailboxType.PER, rules=Rules(), owner=DUPONT)
        async with store.tx.write(writes_first=True) as conn:  # published by the environment
            await conn.execute(text("DELETE FROM directory_outbox"))
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def operator(env: RunningEnvironment, url: str, data_dir: Path
                   ) -> AsyncIterator[OperatorService]:
    """A hospital operator on ``url``, HTTPS and IMAPS on free ports, the rest off."""
    base: OperatorConfig = env.service(HOSPITAL).config
    data_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(
        base, operator=dataclasses.replace(base.operator, data_dir=data_dir,
                                           database_url=url),
        smtp=Listener(), submission=Listener(), submissions=Listener(), imap=Listener(),
        imaps=Listener("127.0.0.1", free_port()), web=Listener("127.0.0.1", free_port()))
    service = OperatorService(config)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def https(env: RunningEnvironment, service: OperatorService,
          cookie: str | None = None) -> httpx.Client:
    base = f"https://127.0.0.1:{service.ports['web']}"
    return httpx.Client(base_url=base, verify=client_context(Path(env.ca_file)), timeout=30,
                        headers={"Origin": base},
                        cookies={COOKIE: cookie} if cookie is not None else None)


def web_login(env: RunningEnvironment, service: OperatorService) -> tuple[str, str]:
    """Log in with the password; the session cookie and the CSRF token of its pages."""
    with https(env, service) as client:
        form = client.get("/connexion")
        response = client.post("/connexion", data={
            "identifiant": DUPONT, "mot_de_passe": PASSWORD,
            "jeton": hidden(form.text, "jeton")})
        assert response.status_code == 303 and response.headers["location"] == "/courrier"
        cookie = client.cookies[COOKIE]
        return cookie, csrf_of(env, service, cookie)


def csrf_of(env: RunningEnvironment, service: OperatorService, cookie: str) -> str:
    """The CSRF token of the session's pages (the logout form's), or "" when the
    cookie opens no session."""
    with https(env, service, cookie) as client:
        page = client.get("/courrier", follow_redirects=True)
        if page.url.path == "/connexion":
            return ""
        assert page.status_code == 200, page.text
        return hidden(page.text, "csrf")


def log_out(env: RunningEnvironment, service: OperatorService, cookie: str,
            csrf: str) -> None:
    with https(env, service, cookie) as client:
        response = client.post("/deconnexion", data={"csrf": csrf})
        assert response.status_code == 303


def post_logout(env: RunningEnvironment, service: OperatorService,
                token: str) -> httpx.Response:
    with https(env, service) as client:
        return client.post(LOGOUT_PATH, data={"logout_token": token})


def imap_psc(env: RunningEnvironment, service: OperatorService,
             token: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", service.ports["imaps"],
                               ssl_context=tls_context(env), timeout=30)
    assert client.authenticate("XOAUTH2", lambda _: xoauth2(DUPONT, token))[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    return client


def refused(env: RunningEnvironment, service: OperatorService, token: str) -> bool:
    client = imaplib.IMAP4_SSL("127.0.0.1", service.ports["imaps"],
                               ssl_context=tls_context(env), timeout=30)
    try:
        client.authenticate("XOAUTH2", lambda _: xoauth2(DUPONT, token))
    except imaplib.IMAP4.error:
        return True
    finally:
        client.shutdown()
    return False


async def test_web_session_survives_operator_restart(environment: RunningEnvironment,
                                                     database: str, tmp_path: Path) -> None:
    async with operator(environment, database, tmp_path / "first") as first:
        cookie, csrf = await asyncio.to_thread(web_login, environment, first)
    async with operator(environment, database, tmp_path / "second") as restarted:
        # the same cookie opens the same session, with the same CSRF token
        assert await asyncio.to_thread(csrf_of, environment, restarted, cookie) == csrf
        await asyncio.to_thread(log_out, environment, restarted, cookie, "forged")
        assert await asyncio.to_thread(csrf_of, environment, restarted, cookie) == csrf
        await asyncio.to_thread(log_out, environment, restarted, cookie, csrf)
        assert await asyncio.to_thread(csrf_of, environment, restarted, cookie) == ""


async def test_stolen_database_row_is_not_a_cookie(environment: RunningEnvironment,
                                                   database: str, tmp_path: Path) -> None:
    """Whoever reads the database (a backup, an injection) gets no session from it."""
    async with operator(environment, database, tmp_path / "op") as service:
        cookie, csrf = await asyncio.to_thread(web_login, environment, service)
        engine = create_async_engine(database_url(database))
        try:
            async with engine.connect() as conn:  # the test looks past the API here
                rows = (await conn.execute(select(web_sessions))).all()
        finally:
            await engine.dispose()
        [row] = rows
        assert cookie not in [str(value) for value in row]
        assert row.id_hash == hashlib.sha256(cookie.encode()).hexdigest()
        for stolen in (str(value) for value in row if isinstance(value, str)):
            assert await asyncio.to_thread(csrf_of, environment, service, stolen) == ""
        assert await asyncio.to_thread(csrf_of, environment, service, cookie) == csrf


async def test_psc_logout_survives_restart(environment: RunningEnvironment, database: str,
                                           tmp_path: Path) -> None:
    tokens = await asyncio.to_thread(psc_tokens, environment)
    access = tokens["access_token"]
    sid = claims_of(access)["sid"]
    logout = logout_token(environment, sid=sid)
    async with operator(environment, database, tmp_path / "first") as first:
        client = await asyncio.to_thread(imap_psc, environment, first, access)
        response = await asyncio.to_thread(post_logout, environment, first, logout)
        assert response.status_code == 200, response.text
        assert await asyncio.to_thread(session_ended, client)
    async with operator(environment, database, tmp_path / "second") as restarted:
        # the token, not expired, no longer logs in; the logout token is not taken twice
        assert await asyncio.to_thread(refused, environment, restarted, access)
        replayed = await asyncio.to_thread(post_logout, environment, restarted, logout)
        assert replayed.status_code == 400
        assert "used already" in replayed.json()["error_description"]
        # another PSC session of the same person goes on
        other = (await asyncio.to_thread(psc_tokens, environment))["access_token"]
        going_on = await asyncio.to_thread(imap_psc, environment, restarted, other)
        assert not await asyncio.to_thread(session_ended, going_on)
        await asyncio.to_thread(going_on.logout)


def idle_until_bye(client: imaplib.IMAP4_SSL, started: threading.Event,
                   timeout: float) -> float:
    """Enter IDLE, wait for ``started`` (an event) and then for the server's BYE; the
    seconds from ``started`` to the BYE."""
    client.send(b"i1 IDLE\r\n")
    assert client.readline().startswith(b"+ ")
    client.sock.settimeout(timeout)
    started.wait(timeout)
    at = time.monotonic()
    line = client.readline()
    assert line.startswith(b"* BYE") and b"Pro Sante Connect session has ended" in line, line
    client.shutdown()
    return time.monotonic() - at


async def test_two_processes_share_web_sessions_and_psc_logouts(
        environment: RunningEnvironment, database: str, tmp_path: Path) -> None:
    """A logout taken by one process ends the IMAP session another holds, within the
    documented delay (at once on PostgreSQL, POLL_SECONDS on SQLite); a web session
    opened by one is valid at the other, and closed there for both."""
    async with (operator(environment, database, tmp_path / "a") as one,
                operator(environment, database, tmp_path / "b") as other):
        cookie, csrf = await asyncio.to_thread(web_login, environment, one)
        assert await asyncio.to_thread(csrf_of, environment, other, cookie) == csrf

        tokens = await asyncio.to_thread(psc_tokens, environment)
        access = tokens["access_token"]
        held = await asyncio.to_thread(imap_psc, environment, other, access)
        posted = threading.Event()
        waiting = asyncio.create_task(asyncio.to_thread(idle_until_bye, held, posted,
                                                        POLL_SECONDS + 10))
        await asyncio.sleep(0.2)  # IDLE under way
        logout = logout_token(environment, sid=claims_of(access)["sid"])
        response = await asyncio.to_thread(post_logout, environment, one, logout)
        posted.set()
        assert response.status_code == 200, response.text
        delay = await waiting
        assert delay < POLL_SECONDS + 2.0, delay  # the poll, and a loaded machine's slack
        # the token is refused at both; the logout token is not taken again at the other
        assert await asyncio.to_thread(refused, environment, other, access)
        assert await asyncio.to_thread(refused, environment, one, access)
        assert (await asyncio.to_thread(post_logout, environment, other, logout)
                ).status_code == 400

        await asyncio.to_thread(log_out, environment, other, cookie, csrf)
        assert await asyncio.to_thread(csrf_of, environment, one, cookie) == ""
