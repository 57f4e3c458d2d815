"""The store's web sessions, logins under way and ended PSC sessions (store/sessions.py),
on SQLite and PostgreSQL; two stores opened on one database stand for two processes."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import select
from tests.store.conftest import Database, RowCounter

from mssante.auth.identity import Identity, PscLogin
from mssante.auth.pscsessions import EndedSessions
from mssante.store import Store
from mssante.store.schema import web_logins, web_sessions
from mssante.store.sessions import CODE_LOGIN, POLL_SECONDS, PSC_LOGIN, Ended, StoredSession
from mssante.web.sessions import (
    IDLE_SECONDS,
    MAX_AGE_SECONDS,
    SECOND_FACTOR_SECONDS,
    SECOND_FACTOR_TRIES,
    SEEN_STEP,
    Sessions,
)


def _session(login: str = "dr", *, at: float = 1000.0, psc: bool = False) -> StoredSession:
    return StoredSession(login=login, kind="health", app=None,
                         psc_subject="810101010101" if psc else None,
                         psc_sid="sid-1" if psc else "", psc_issued_at=900.0 if psc else 0.0,
                         csrf="csrf-token", created_at=at, seen_at=at, mailbox=None, notice="")


async def _open(store: Store, cookie: str, session: StoredSession, *, now: float,
                max_sessions: int = 100) -> None:
    await store.sessions.open(cookie, session, now=now, idle=7200.0, max_age=43200.0,
                              max_sessions=max_sessions)


async def test_a_session_is_kept_under_the_hash_of_its_cookie(store: Store) -> None:
    await _open(store, "the-cookie", _session(psc=True), now=1000.0)
    found = await store.sessions.get("the-cookie")
    assert found == _session(psc=True)
    assert await store.sessions.get("the-cooki") is None
    async with store.tx.read() as conn:  # the test looks past the API here
        [row] = (await conn.execute(select(web_sessions))).all()
    assert row.id_hash == hashlib.sha256(b"the-cookie").hexdigest()
    assert "the-cookie" not in [str(value) for value in row]


async def test_saving_writes_what_changed_and_never_brings_back_a_closed_one(
        store: Store) -> None:
    await _open(store, "c1", _session(), now=1000.0)
    await store.sessions.save("c1", seen_at=1100.0, mailbox="a@x.fr", notice="Envoyé.")
    found = await store.sessions.get("c1")
    assert found is not None
    assert (found.seen_at, found.mailbox, found.notice) == (1100.0, "a@x.fr", "Envoyé.")
    assert await store.sessions.close("c1")
    await store.sessions.save("c1", seen_at=1200.0, mailbox=None, notice="")
    assert await store.sessions.get("c1") is None


async def test_close_all_of_a_login(store: Store) -> None:
    for cookie, login in (("a", "dr"), ("b", "dr"), ("c", "sec")):
        await _open(store, cookie, _session(login), now=1000.0)
    assert await store.sessions.close_all_of("dr") == 2
    assert await store.sessions.get("a") is None and await store.sessions.get("c") is not None


async def test_sessions_past_their_time_and_beyond_the_bound_are_purged(
        database: Database) -> None:
    store = await database.open()
    await _open(store, "idle", _session(at=0.0), now=0.0)
    await _open(store, "old", _session(at=100.0), now=100.0)
    await store.sessions.save("old", seen_at=40000.0, mailbox=None, notice="")
    for n in range(3):
        await _open(store, f"live-{n}", _session(at=40000.0 + n), now=40000.0 + n)
    # a later process purges: idle > 2 h ("idle"), opened > 12 h ago ("old")
    later = await database.open()
    await _open(later, "new", _session(at=44000.0), now=44000.0, max_sessions=3)
    assert await later.sessions.get("idle") is None
    assert await later.sessions.get("old") is None
    assert await later.sessions.get("live-0") is None  # least recently used, beyond 3
    assert await later.sessions.count() == 3


async def test_a_psc_login_under_way_is_taken_once(database: Database,
                                                   count_rows: RowCounter) -> None:
    one, other = await database.open(), await database.open()
    await one.sessions.put_login(PSC_LOGIN, "k1", {"state": "s"}, now=1000.0, keep=600.0)
    await one.sessions.put_login(PSC_LOGIN, "k2", {"state": "t"}, now=1000.0, keep=600.0)
    taken = await asyncio.gather(other.sessions.take_login(PSC_LOGIN, "k1", now=1001.0,
                                                           keep=600.0),
                                 one.sessions.take_login(PSC_LOGIN, "k1", now=1001.0,
                                                         keep=600.0))
    assert sorted(taken, key=str) == [None, {"state": "s"}]
    assert await one.sessions.take_login(PSC_LOGIN, "k2", now=1601.0, keep=600.0) is None
    # a new one purges those past their time
    await one.sessions.put_login(PSC_LOGIN, "k3", {}, now=1000.0, keep=600.0)
    await one.sessions.put_login(PSC_LOGIN, "k4", {}, now=1700.0, keep=600.0)
    assert await count_rows("web_logins") == 1


async def test_a_second_factor_counts_its_wrong_tries(store: Store) -> None:
    await store.sessions.put_login(CODE_LOGIN, "k", {"factor": "totp"}, now=1000.0,
                                   keep=300.0)
    assert await store.sessions.login(CODE_LOGIN, "k", now=1001.0, keep=300.0) == (
        {"factor": "totp"}, 0)
    assert await store.sessions.login(PSC_LOGIN, "k", now=1001.0, keep=300.0) is None
    assert await store.sessions.login(CODE_LOGIN, "k", now=1300.0, keep=300.0) is None
    for _ in range(4):
        assert await store.sessions.login_failed(CODE_LOGIN, "k", max_tries=5)
    assert not await store.sessions.login_failed(CODE_LOGIN, "k", max_tries=5)
    assert await store.sessions.login(CODE_LOGIN, "k", now=1001.0, keep=300.0) is None
    async with store.tx.read() as conn:
        assert (await conn.execute(select(web_logins))).all() == []


async def test_ended_sessions_are_kept_bounded_and_their_ids_never_reused(
        store: Store, count_rows: RowCounter) -> None:
    first = await store.psc_ended.end(sid="s1", at=1000.0, keep=3600.0, max_kept=3)
    await store.psc_ended.end(subject="810101010101", at=1001.0, keep=3600.0, max_kept=3)
    assert [(e.sid, e.subject) for e in await store.psc_ended.since(0.0)] == [
        ("s1", None), (None, "810101010101")]
    # everything past its time goes, yet the next id is past every id handed out
    last = await store.psc_ended.end(sid="s2", at=9000.0, keep=3600.0, max_kept=3)
    assert await count_rows("psc_ended") == 1 and last.id > first.id + 1
    for n in range(5):
        await store.psc_ended.end(sid=f"t{n}", at=9001.0 + n, keep=3600.0, max_kept=3)
    assert [e.sid for e in await store.psc_ended.since(0.0)] == ["t2", "t3", "t4"]
    past_t2 = await store.psc_ended.since(0.0, last_id=last.id + 3)  # t0 to t2 read
    assert past_t2 == await store.psc_ended.since(9003.5) and len(past_t2) == 2


async def test_a_logout_token_is_taken_once_by_all_processes(database: Database) -> None:
    one, other = await database.open(), await database.open()
    assert await one.psc_ended.take_logout_id("jti-1", until=1300.0, now=1000.0)
    assert not await other.psc_ended.take_logout_id("jti-1", until=1300.0, now=1001.0)
    assert not await one.psc_ended.take_logout_id("jti-1", until=1300.0, now=1001.0)
    # once past the time it could be replayed, its row goes
    assert await other.psc_ended.take_logout_id("jti-1", until=1700.0, now=1400.0)


@pytest.mark.parametrize("listening", [False, True], ids=["new", "listening already"])
async def test_another_process_hears_of_an_end(database: Database, listening: bool) -> None:
    one, other = await database.open(), await database.open()
    if listening:  # PostgreSQL: IMAP opened the notification connection first
        other.listen_for_changes()
        await asyncio.sleep(0.3)
    heard: list[Ended] = []
    got = asyncio.Event()

    def receive(ends: list[Ended]) -> None:
        heard.extend(ends)
        got.set()

    other.psc_ended.follow(receive, after=0.0, last_id=0)
    await asyncio.sleep(0.3)  # PostgreSQL: the listening connection opens
    got.clear()
    heard.clear()
    started = asyncio.get_running_loop().time()
    ended = await one.psc_ended.end(sid="s9", at=5000.0, keep=1e9, max_kept=1000)
    await asyncio.wait_for(got.wait(), POLL_SECONDS + 5)
    assert asyncio.get_running_loop().time() - started < POLL_SECONDS + 1
    assert ended in heard


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_web_sessions_lock_when_idle_end_when_old_and_with_their_psc_session(
        database: Database) -> None:
    """web/sessions.py over the store: the 2-hour idle lock, the 12-hour end, the end of
    the PSC session (checked in memory), as seen by another process."""

    store, other_store = await database.open(), await database.open()
    clock = Clock()
    ended = EndedSessions(clock, records=store.psc_ended)
    await ended.start()
    sessions = Sessions(store.sessions, ended=ended, clock=clock)
    other = Sessions(other_store.sessions, clock=clock)
    person = Identity("dr", "health")
    opened = await sessions.open(person, psc_id_token="id-token")
    assert opened.psc_id_token == "id-token"
    clock.now += SEEN_STEP
    seen = await other.get(opened.id)  # another process: no ID token there
    assert seen is not None and seen.csrf == opened.csrf and seen.psc_id_token == ""
    seen.mailbox, seen.notice = "dr@x.fr", "Message envoyé."
    await other.save(seen)
    clock.now += IDLE_SECONDS - 1
    again = await sessions.get(opened.id)
    assert again is not None and again.psc_id_token == "id-token"
    assert (again.mailbox, again.notice) == ("dr@x.fr", "Message envoyé.")
    await sessions.save(again)
    clock.now += IDLE_SECONDS + 1
    assert await sessions.get(opened.id) is None  # locked after 2 h idle

    old = await sessions.open(person)
    for _ in range(int(MAX_AGE_SECONDS // 3600)):
        clock.now += 3600
        live = await other.get(old.id)
        assert live is not None
        await other.save(live)
    clock.now += 1
    assert await other.get(old.id) is None  # 12 h after it was opened, whatever its use

    psc = Identity("dr", "health", psc=PscLogin("810101010101", "sid-7", clock.now - 5))
    with_psc = await sessions.open(psc)
    await ended.end_session("sid-7")
    assert await sessions.get(with_psc.id) is None
    assert await other.get(with_psc.id) is None  # closed for every process


async def test_a_second_factor_under_way_is_known_to_every_process(
        database: Database) -> None:

    clock = Clock()
    one = Sessions((await database.open()).sessions, clock=clock)
    other = Sessions((await database.open()).sessions, clock=clock)
    key = await one.await_second_factor(Identity("pat", "patient"), "email_code")
    assert await other.halfway(key) == (Identity("pat", "patient"), "email_code")
    for _ in range(SECOND_FACTOR_TRIES - 1):
        assert await other.second_factor_failed(key)
    assert not await one.second_factor_failed(key)
    assert await other.halfway(key) is None
    late = await one.await_second_factor(Identity("pat", "patient"), "totp")
    clock.now += SECOND_FACTOR_SECONDS
    assert await other.halfway(late) is None
