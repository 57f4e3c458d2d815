"""A value shown once on the page after a redirect (a new application password),
whichever of the operator's processes serves that page (web/sessions.py keep_once):
two ``Sessions`` on one database stand for two worker processes."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request

from mssante.auth.identity import Identity
from mssante.store import open_store
from mssante.web.sessions import ONCE_COOKIE, Sessions


def _request(set_cookie: str) -> Request:
    """The browser's next request, carrying the cookie ``set_cookie`` set."""
    pair = set_cookie.split(";", 1)[0]
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                    "headers": [(b"cookie", pair.encode())]})


async def test_another_process_shows_the_value_and_the_database_never_holds_it(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'operator.sqlite3'}"
    first_store, second_store = await open_store(url), await open_store(url)
    try:
        first, second = Sessions(first_store.sessions), Sessions(second_store.sessions)
        session = await first.open(Identity("dupont", "health"), strong=True)
        header = first.keep_once(session, {"app_password": "abcd efgh ijkl mnop"})
        assert header.startswith(f"{ONCE_COOKIE}=") and "Max-Age=300" in header
        assert "abcd" not in header  # sealed
        same = await second.get(session.id)
        assert same is not None
        assert second.take_once(same, _request(header)) == {
            "app_password": "abcd efgh ijkl mnop"}
        database = (tmp_path / "operator.sqlite3").read_bytes()
        assert b"abcd efgh" not in database
    finally:
        await first_store.close()
        await second_store.close()


async def test_a_sealed_value_stolen_into_another_session_opens_nothing(
        tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'operator.sqlite3'}")
    try:
        sessions = Sessions(store.sessions)
        victim = await sessions.open(Identity("dupont", "health"), strong=True)
        thief = await sessions.open(Identity("martin", "health"))
        header = sessions.keep_once(victim, {"app_password": "abcd efgh ijkl mnop"})
        assert sessions.take_once(thief, _request(header)) == {}
        assert sessions.take_once(victim, _request(f"{ONCE_COOKIE}=garbage!")) == {}
        assert sessions.take_once(victim, _request("other=1")) is None
    finally:
        await store.close()


async def test_a_sealed_value_is_too_late_after_five_minutes(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = await open_store(f"sqlite:///{tmp_path / 'operator.sqlite3'}")
    try:
        sessions = Sessions(store.sessions, clock=lambda: now[0])
        session = await sessions.open(Identity("dupont", "health"), strong=True)
        header = sessions.keep_once(session, {"app_password": "abcd efgh ijkl mnop"})
        now[0] += 301
        assert sessions.take_once(session, _request(header)) == {}
    finally:
        await store.close()
