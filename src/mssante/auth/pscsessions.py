"""Pro Santé Connect sessions that ended, for the logins opened with their tokens.

The provider tells an operator that a session ended (the professional logged out, or
the provider ended it) with a logout token (OpenID Connect Back-Channel Logout 1.0),
checked by ``psctoken.TokenChecker.logout``. From then on:

- an IMAP session logged in with a token of that session ends at its next command
  (or at once while in IDLE: watchers are woken);
- a submission session refuses its next MAIL;
- a token of that session no longer logs in, though its ``exp`` is not past.

A logout token naming only the person (``sub``, no ``sid``) ends every session of
that person opened with a token issued before it (§2.4: "all sessions for that End-User").

What ended is kept ``KEEP_SECONDS`` (longer than any IMAP session goes without a
command: RFC 9051 §5.4's 30 minutes), in the operator's store (store/sessions.py), so
that a restart forgets none of it and every process of the operator applies it. The
checks themselves (``ended``, at every IMAP command) read this process's copy in
memory, never the database: it is loaded at start (``start``) and kept up to date as
any process records an end. A logout taken by one process reaches the others at once
on PostgreSQL (``pg_notify``), and within ``store.sessions.POLL_SECONDS`` (one second)
on SQLite; their IMAP sessions in IDLE are woken then, the others end at their next
command. The ``jti`` of the logout tokens taken are kept there too: a token replayed
to another process, or after a restart, is refused.

Without a store (``EndedSessions()``, as some tests build it) all of this stays in
this process's memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from mssante.auth.identity import PscLogin
from mssante.store.sessions import Ended

KEEP_SECONDS = 24 * 3600.0
MAX_KEPT = 100_000  # sessions remembered at most; the oldest are forgotten first

Watcher = Callable[[], None]


class EndedRecords(Protocol):
    """Where the ends are kept and shared (``store.psc_ended``, store/sessions.py)."""

    async def end(self, *, sid: str | None = None, subject: str | None = None, at: float,
                  keep: float, max_kept: int) -> Ended: ...

    async def since(self, after: float, *, last_id: int = 0) -> list[Ended]: ...

    async def take_logout_id(self, jti: str, *, until: float, now: float) -> bool: ...

    def follow(self, receiver: Callable[[list[Ended]], None], *, after: float,
               last_id: int) -> None: ...


class EndedSessions:
    """Session ids and subjects ended, with when; watchers are called on every end."""

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 records: EndedRecords | None = None) -> None:
        self._clock = clock
        self._records = records
        self._sids: dict[str, float] = {}  # sid -> ended at
        self._subjects: dict[str, float] = {}  # idNatPs -> ended at
        self._logout_ids: dict[str, float] = {}  # jti taken -> until (without records)
        self._watchers: set[Watcher] = set()

    async def start(self) -> None:
        """Load what the store keeps and follow what other processes record."""
        if self._records is None:
            return
        after = self._clock() - KEEP_SECONDS
        found = await self._records.since(after)
        self._apply(found)
        self._records.follow(self._apply, after=after,
                             last_id=found[-1].id if found else 0)

    def ended(self, login: PscLogin) -> bool:
        """Whether the session ``login`` was part of has ended (from memory)."""
        if login.sid and login.sid in self._sids:
            return True
        at = self._subjects.get(login.subject)
        return at is not None and login.issued_at <= at

    async def end_session(self, sid: str) -> None:
        await self._end(sid=sid)

    async def end_subject(self, subject: str) -> None:
        await self._end(subject=subject)

    async def take_logout_id(self, jti: str, until: float) -> bool:
        """Take a logout token's ``jti`` until ``until``; False if it was taken already
        (in any process of the operator, when there is a store)."""
        now = self._clock()
        if self._records is not None:
            return await self._records.take_logout_id(jti, until=until, now=now)
        self._logout_ids = {k: v for k, v in self._logout_ids.items() if v > now}
        if jti in self._logout_ids:
            return False
        self._logout_ids[jti] = until
        return True

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher`` (from the event loop) whenever a session ends; returns the
        function that stops watching."""
        self._watchers.add(watcher)
        return lambda: self._watchers.discard(watcher)

    async def _end(self, *, sid: str | None = None, subject: str | None = None) -> None:
        now = self._clock()
        if self._records is not None:  # committed first: then every process applies it
            await self._records.end(sid=sid, subject=subject, at=now, keep=KEEP_SECONDS,
                                    max_kept=2 * MAX_KEPT)
        self._apply([Ended(0, sid, subject, now)])

    def _apply(self, ends: list[Ended]) -> None:
        """Take ends into memory; watchers are called if one is new."""
        now = self._clock()
        for kept in (self._sids, self._subjects):
            stale = [k for k, at in kept.items() if at < now - KEEP_SECONDS]
            for k in stale:
                del kept[k]
        new = False
        for end in ends:
            table, key = ((self._sids, end.sid) if end.sid is not None
                          else (self._subjects, end.subject or ""))
            if end.at < now - KEEP_SECONDS or table.get(key, float("-inf")) >= end.at:
                continue
            table.pop(key, None)
            table[key] = end.at
            while len(table) > MAX_KEPT:
                del table[next(iter(table))]
            new = True
        if new:
            for watcher in list(self._watchers):
                watcher()
