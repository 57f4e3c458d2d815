"""What logins leave behind, kept in the store so that every process of the operator
sees it and a restart loses none of it: web sessions, web logins under way, the Pro
Santé Connect sessions a back-channel logout ended, and the logout tokens taken.

Implementation notes:
- A web session or a login under way is found by the SHA-256 of its cookie's value;
  the value itself is never written, so a copy of the table opens no session
  (``hashed``). No PSC token is ever written either (MSSanté rule for software): of a
  PSC login only its ``sid``, subject (idNatPs) and ``iat``, what a logout is matched
  against.
- ``psc_ended.id`` is never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL).
  Every process keeps what ended in memory (auth/pscsessions.py) and hears of new rows:
  on PostgreSQL the recording transaction runs ``pg_notify('mssante_psc_ended', ...)``
  with the row itself (its id alone would not do: ids are taken before commit, and
  commit in any order), delivered through the folder notifications' connection
  (changes.py); on SQLite the row goes over the local bus once committed (localbus.py),
  and, since a datagram can be missed and writers commit one at a time in id order,
  each process still reads the rows past the last id it saw every ``POLL_SECONDS``
  (a row heard of both ways is applied twice, which changes nothing).
- A logout token's ``jti`` is taken by one INSERT: two processes given the same token
  cannot both take it (the second gets the primary key's conflict).
- Rows past their time are deleted as new ones come: web sessions idle or too old
  (at most once every ``PURGE_SECONDS`` per process), logins under way past their
  time, ended sessions older than the keeping time, ``jti`` past their expiry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.errors import Conflict, StoreError
from mssante.store.changes import ChangeHub
from mssante.store.schema import psc_ended, psc_logout_ids, web_logins, web_sessions
from mssante.store.transactions import Transactions

log = logging.getLogger(__name__)

CHANNEL = "mssante_psc_ended"
POLL_SECONDS = 1.0  # SQLite: how often each process reads the sessions ended by others
PURGE_SECONDS = 60.0  # web sessions past their time are deleted at most this often

PSC_LOGIN = "psc"  # kinds of logins under way
CODE_LOGIN = "code"


def hashed(cookie: str) -> str:
    """What the store keeps of a cookie's value: its SHA-256, in hex."""
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclass(slots=True)
class StoredSession:
    """A web session as the store holds it (web/sessions.py makes the identity)."""

    login: str
    kind: str
    app: str | None
    psc_subject: str | None  # opened with PSC: the professional, the sid, the token's iat
    psc_sid: str
    psc_issued_at: float
    csrf: str
    created_at: float
    seen_at: float
    mailbox: str | None
    notice: str
    strong: bool = False  # opened with a second factor or PSC, not a password alone


@dataclass(frozen=True, slots=True)
class Ended:
    """A PSC session (``sid``) or every session of a person (``subject``) ended ``at``."""

    id: int
    sid: str | None
    subject: str | None
    at: float


def _session(row: Row[Any]) -> StoredSession:
    return StoredSession(
        login=row.login, kind=row.kind, app=row.app, psc_subject=row.psc_subject,
        psc_sid=row.psc_sid or "", psc_issued_at=float(row.psc_issued_at or 0.0),
        csrf=row.csrf, created_at=float(row.created_at), seen_at=float(row.seen_at),
        mailbox=row.mailbox, notice=row.notice, strong=bool(row.strong))


def _ended(row: Row[Any]) -> Ended:
    return Ended(int(row.id), row.sid, row.subject, float(row.ended_at))


class SessionStore:
    """The repository of web sessions and logins under way (``store.sessions``)."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx
        self._purged_at = float("-inf")

    async def open(self, cookie: str, session: StoredSession, *, now: float, idle: float,
                   max_age: float, max_sessions: int) -> None:
        """Keep a new session under ``cookie``'s hash; sessions past their time go
        first (at most every PURGE_SECONDS), then the least recently used beyond
        ``max_sessions``."""
        async with self.tx.write(writes_first=True) as conn:
            await conn.execute(insert(web_sessions).values(
                id_hash=hashed(cookie), login=session.login, kind=session.kind,
                app=session.app, psc_subject=session.psc_subject,
                psc_sid=session.psc_sid or None,
                psc_issued_at=session.psc_issued_at if session.psc_subject else None,
                csrf=session.csrf, created_at=session.created_at, seen_at=session.seen_at,
                mailbox=session.mailbox, notice=session.notice, strong=session.strong))
            if now - self._purged_at >= PURGE_SECONDS:
                self._purged_at = now
                await self._purge(conn, now=now, idle=idle, max_age=max_age,
                                  max_sessions=max_sessions)

    async def _purge(self, conn: AsyncConnection, *, now: float, idle: float,
                     max_age: float, max_sessions: int) -> None:
        await conn.execute(delete(web_sessions).where(web_sessions.c.seen_at < now - idle))
        await conn.execute(delete(web_sessions).where(
            web_sessions.c.created_at < now - max_age))
        count = int((await conn.execute(
            select(func.count()).select_from(web_sessions))).scalar_one())
        if count > max_sessions:
            oldest = (select(web_sessions.c.id_hash).order_by(web_sessions.c.seen_at)
                      .limit(count - max_sessions))
            await conn.execute(delete(web_sessions).where(
                web_sessions.c.id_hash.in_(oldest.scalar_subquery())))

    async def get(self, cookie: str) -> StoredSession | None:
        """The session kept under ``cookie``'s hash (one read by primary key)."""
        async with self.tx.read() as conn:
            row = (await conn.execute(select(web_sessions).where(
                web_sessions.c.id_hash == hashed(cookie)))).first()
        return None if row is None else _session(row)

    async def save(self, cookie: str, *, seen_at: float, mailbox: str | None,
                   notice: str) -> None:
        """Write what changed of a live session; a session closed meanwhile stays closed."""
        async with self.tx.write(writes_first=True) as conn:
            await conn.execute(update(web_sessions)
                               .where(web_sessions.c.id_hash == hashed(cookie))
                               .values(seen_at=seen_at, mailbox=mailbox, notice=notice))

    async def close(self, cookie: str) -> bool:
        async with self.tx.write(writes_first=True) as conn:
            result = await conn.execute(delete(web_sessions).where(
                web_sessions.c.id_hash == hashed(cookie)))
        return bool(result.rowcount)

    async def close_all_of(self, login: str) -> int:
        async with self.tx.write(writes_first=True) as conn:
            result = await conn.execute(delete(web_sessions).where(
                web_sessions.c.login == login))
        return int(result.rowcount)

    async def count(self) -> int:
        async with self.tx.read() as conn:
            return int((await conn.execute(
                select(func.count()).select_from(web_sessions))).scalar_one())

    # -- logins under way -----------------------------------------------------------

    async def put_login(self, kind: str, cookie: str, data: dict[str, Any], *, now: float,
                        keep: float) -> None:
        """Keep a login under way of ``kind`` under ``cookie``'s hash; those of that
        kind older than ``keep`` seconds go."""
        async with self.tx.write(writes_first=True) as conn:
            await conn.execute(delete(web_logins).where(
                web_logins.c.kind == kind, web_logins.c.created_at <= now - keep))
            await conn.execute(insert(web_logins).values(
                key_hash=hashed(cookie), kind=kind, created_at=now,
                data=json.dumps(data, separators=(",", ":")), tries=0))

    async def login(self, kind: str, cookie: str, *, now: float,
                    keep: float) -> tuple[dict[str, Any], int] | None:
        """The data and wrong tries of a login under way, if still in time."""
        async with self.tx.read() as conn:
            row = (await conn.execute(select(web_logins).where(
                web_logins.c.key_hash == hashed(cookie), web_logins.c.kind == kind,
                web_logins.c.created_at > now - keep))).first()
        return None if row is None else (json.loads(row.data), int(row.tries))

    async def take_login(self, kind: str, cookie: str, *, now: float,
                         keep: float) -> dict[str, Any] | None:
        """The data of a login under way, deleted as it is read: it is taken once, by
        one process."""
        async with self.tx.write() as conn:
            row = (await conn.execute(select(web_logins).where(
                web_logins.c.key_hash == hashed(cookie),
                web_logins.c.kind == kind))).first()
            if row is None:
                return None
            result = await conn.execute(delete(web_logins).where(
                web_logins.c.key_hash == row.key_hash))
        if result.rowcount != 1 or float(row.created_at) <= now - keep:
            return None  # taken meanwhile by another process, or too late
        data: dict[str, Any] = json.loads(row.data)
        return data

    async def login_failed(self, kind: str, cookie: str, *, max_tries: int) -> bool:
        """Count a wrong try; False (and the login deleted) once ``max_tries`` are
        reached, or when it is gone."""
        async with self.tx.write(writes_first=True) as conn:
            result = await conn.execute(
                update(web_logins).where(web_logins.c.key_hash == hashed(cookie),
                                         web_logins.c.kind == kind,
                                         web_logins.c.tries + 1 < max_tries)
                .values(tries=web_logins.c.tries + 1))
            if result.rowcount == 1:
                return True
            await conn.execute(delete(web_logins).where(
                web_logins.c.key_hash == hashed(cookie)))
            return False

    async def drop_login(self, cookie: str) -> None:
        async with self.tx.write(writes_first=True) as conn:
            await conn.execute(delete(web_logins).where(
                web_logins.c.key_hash == hashed(cookie)))


class EndedStore:
    """The repository of PSC sessions ended and logout tokens taken
    (``store.psc_ended``)."""

    def __init__(self, tx: Transactions, hub: ChangeHub,
                 listen: Callable[[], None]) -> None:
        self.tx = tx
        self._hub = hub
        self._listen = listen
        self._receiver: Callable[[list[Ended]], None] | None = None
        self._last_id = 0
        self._task: asyncio.Task[None] | None = None
        self._reload = asyncio.Event()

    async def end(self, *, sid: str | None = None, subject: str | None = None, at: float,
                  keep: float, max_kept: int) -> Ended:
        """Record that a session (``sid``) or a person's sessions (``subject``) ended
        ``at``; rows older than ``keep`` seconds, or beyond ``max_kept``, go."""
        if (sid is None) == (subject is None):
            raise ValueError("a sid or a subject, one of them")
        async with self.tx.write(writes_first=True) as conn:
            new_id = int((await conn.execute(
                insert(psc_ended).values(sid=sid, subject=subject, ended_at=at)
                .returning(psc_ended.c.id))).scalar_one())
            await conn.execute(delete(psc_ended).where(or_(
                psc_ended.c.ended_at < at - keep, psc_ended.c.id <= new_id - max_kept)))
            ended = Ended(new_id, sid, subject, at)
            if self.tx.postgresql:
                await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": CHANNEL, "payload": self._payload(ended)})
        self._hub.send(CHANNEL, self._payload(ended))  # SQLite: over the bus, once committed
        return ended

    async def since(self, after: float, *, last_id: int = 0) -> list[Ended]:
        """The sessions ended after ``after`` with an id past ``last_id``, by id."""
        async with self.tx.read() as conn:
            rows = (await conn.execute(
                select(psc_ended).where(psc_ended.c.ended_at > after,
                                        psc_ended.c.id > last_id)
                .order_by(psc_ended.c.id))).all()
        return [_ended(row) for row in rows]

    async def take_logout_id(self, jti: str, *, until: float, now: float) -> bool:
        """Take a logout token's ``jti``, kept until ``until``; False when it was taken
        already (a replay), here or by another process."""
        try:
            async with self.tx.write(conflict="replayed", writes_first=True) as conn:
                await conn.execute(delete(psc_logout_ids).where(psc_logout_ids.c.until <= now))
                await conn.execute(insert(psc_logout_ids).values(jti=jti, until=until))
        except Conflict:
            return False
        return True

    # -- following what other processes record -----------------------------------------

    def follow(self, receiver: Callable[[list[Ended]], None], *, after: float,
               last_id: int) -> None:
        """Pass the sessions other processes end to ``receiver`` (in the event loop):
        on PostgreSQL by notification, on SQLite over the bus and by reading every
        POLL_SECONDS the rows past ``last_id``. ``after``: the oldest end still of
        interest."""
        self._receiver = receiver
        self._last_id = last_id
        self._after = after
        self._hub.follow(CHANNEL, self._received)  # pg_notify, or the SQLite bus
        self._listen()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._receiver = None

    def _payload(self, ended: Ended) -> str:
        kind, value = ("s", ended.sid) if ended.sid is not None else ("u", ended.subject)
        return f"{self._hub.token}:{ended.id}:{ended.at!r}:{kind}:{value}"

    def _received(self, payload: str | None) -> None:
        if payload is None:  # (re)connected: what went by meanwhile is read again
            self._reload.set()
            return
        try:
            token, ident, at, kind, value = payload.split(":", 4)
            ended = Ended(int(ident), value if kind == "s" else None,
                          value if kind == "u" else None, float(at))
        except ValueError:
            log.warning("ignored a malformed PSC logout notification %r", payload)
            return
        if token != self._hub.token and self._receiver is not None:
            self._receiver([ended])

    async def _run(self) -> None:
        """SQLite: poll the rows past the last id seen. PostgreSQL: read every row
        kept again when the notification connection (re)starts."""
        while True:
            try:
                if self.tx.postgresql:
                    await self._reload.wait()
                    self._reload.clear()
                    found = await self.since(self._after)
                else:
                    await asyncio.sleep(POLL_SECONDS)
                    found = await self.since(self._after, last_id=self._last_id)
            except StoreError as exc:
                log.warning("cannot read the PSC sessions ended: %s", exc)
                await asyncio.sleep(POLL_SECONDS)
                continue
            if found:
                self._last_id = max(self._last_id, found[-1].id)
                if self._receiver is not None:
                    self._receiver(found)
