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
command: RFC 9051 §5.4's 30 minutes), in this process's memory. With several processes
per operator each must receive the logout (one per process today).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mssante.auth.identity import PscLogin

KEEP_SECONDS = 24 * 3600.0
MAX_KEPT = 100_000  # sessions remembered at most; the oldest are forgotten first

Watcher = Callable[[], None]


class EndedSessions:
    """Session ids and subjects ended, with when; watchers are called on every end."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sids: dict[str, float] = {}  # sid -> ended at
        self._subjects: dict[str, float] = {}  # idNatPs -> ended at
        self._watchers: set[Watcher] = set()

    def ended(self, login: PscLogin) -> bool:
        """Whether the session ``login`` was part of has ended."""
        if login.sid and login.sid in self._sids:
            return True
        at = self._subjects.get(login.subject)
        return at is not None and login.issued_at <= at

    def end_session(self, sid: str) -> None:
        self._remember(self._sids, sid)

    def end_subject(self, subject: str) -> None:
        self._remember(self._subjects, subject)

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher`` (from the event loop) whenever a session ends; returns the
        function that stops watching."""
        self._watchers.add(watcher)
        return lambda: self._watchers.discard(watcher)

    def _remember(self, table: dict[str, float], key: str) -> None:
        now = self._clock()
        for kept in (self._sids, self._subjects):
            stale = [k for k, at in kept.items() if at < now - KEEP_SECONDS]
            for k in stale:
                del kept[k]
        table.pop(key, None)
        table[key] = now
        while len(table) > MAX_KEPT:
            del table[next(iter(table))]
        for watcher in list(self._watchers):
            watcher()
