"""Web sessions: who the browser is, kept on the server.

- The browser holds one opaque, random identifier in the cookie ``__Host-mssante``
  (``Secure``, ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, no ``Domain``: the
  ``__Host-`` prefix makes the browser refuse it otherwise; RFC 6265bis §4.1.3.2).
  Everything else (the identity, the CSRF token, the PSC ID token) stays in this
  process's memory: a restart logs everyone out, and a PSC token is never stored
  (MSSanté rule for software).
- A session locks after ``idle`` seconds without a request (2 hours: the MSSanté rule
  for software) and ends after ``max_age`` in any case; a session opened with Pro Santé
  Connect ends when that PSC session ends (back-channel logout, auth/pscsessions.py).
- Each session has its CSRF token, which every form posts back (``csrf``); the login
  form, before any session, has its own token in a second cookie
  (``__Host-mssante-login``, double submit).
- A right password whose second factor is still to come (TOTP, a patient's code by
  mail) is kept ``SECOND_FACTOR_SECONDS`` under a key in ``__Host-mssante-code``;
  ``SECOND_FACTOR_TRIES`` wrong codes and the password must be given again.
- A login attempt with PSC keeps its state, nonce and PKCE verifier here for
  ``PENDING_SECONDS``, under a random key given to the browser in
  ``__Host-mssante-psc``; the provider's answer must come back to the same browser.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mssante.auth.identity import Identity
from mssante.auth.pscclient import AuthorizationStart
from mssante.auth.pscsessions import EndedSessions

COOKIE = "__Host-mssante"
LOGIN_COOKIE = "__Host-mssante-login"
PSC_COOKIE = "__Host-mssante-psc"
SECOND_COOKIE = "__Host-mssante-code"  # a password login waiting for its second factor
IDLE_SECONDS = 2 * 3600.0
MAX_AGE_SECONDS = 12 * 3600.0
PENDING_SECONDS = 600.0
SECOND_FACTOR_SECONDS = 300.0  # to type the code after the password
SECOND_FACTOR_TRIES = 5  # wrong codes before the password must be given again
MAX_SESSIONS = 100_000


def cookie_header(name: str, value: str, *, clear: bool = False) -> str:
    """A ``Set-Cookie`` value for one of the cookies above."""
    if clear:
        return f"{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    return f"{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax"


def same_token(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@dataclass(slots=True)
class WebSession:
    id: str
    identity: Identity
    csrf: str
    created: float
    seen: float
    psc_id_token: str = ""  # for logging out at the provider too
    # opened with more than a password: its second factor, or Pro Santé Connect
    # (what creating an application password asks, web/apppasswords.py)
    strong: bool = False
    mailbox: str | None = None  # the mailbox shown last
    notice: str = ""  # a status to show once (``role=status``)
    data: dict[str, str] = field(default_factory=dict)


class Sessions:
    """The web sessions of one operator process."""

    def __init__(self, *, ended: EndedSessions | None = None, idle: float = IDLE_SECONDS,
                 max_age: float = MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[str, WebSession] = {}
        self._pending: dict[str, tuple[float, AuthorizationStart]] = {}
        self._halfway: dict[str, tuple[float, Identity, str, int]] = {}
        self._ended = ended
        self._idle = idle
        self._max_age = max_age
        self._clock = clock

    def open(self, identity: Identity, *, psc_id_token: str = "",
             strong: bool = False) -> WebSession:
        now = self._clock()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sweep(now)
        session = WebSession(secrets.token_urlsafe(32), identity, secrets.token_urlsafe(32),
                             now, now, psc_id_token, strong=strong)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session of this identifier (its last activity now), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        psc = session.identity.psc
        if (now - session.seen > self._idle or now - session.created > self._max_age
                or (psc is not None and self._ended is not None and self._ended.ended(psc))):
            del self._sessions[session_id]
            return None
        session.seen = now
        return session

    def close(self, session_id: str | None) -> WebSession | None:
        return self._sessions.pop(session_id, None) if session_id else None

    def close_all_of(self, login: str) -> int:
        """End every session of ``login`` (a password changed, an account removed)."""
        ids = [k for k, s in self._sessions.items() if s.identity.login == login]
        for k in ids:
            del self._sessions[k]
        return len(ids)

    # -- PSC logins under way ----------------------------------------------------------

    def remember_login(self, start: AuthorizationStart) -> str:
        now = self._clock()
        self._pending = {k: v for k, v in self._pending.items()
                         if now - v[0] < PENDING_SECONDS}
        key = secrets.token_urlsafe(24)
        self._pending[key] = (now, start)
        return key

    def take_login(self, key: str | None, state: str) -> AuthorizationStart | None:
        """The login attempt this browser started, if ``state`` is its state; it can be
        taken once."""
        if not key:
            return None
        found = self._pending.pop(key, None)
        if found is None or self._clock() - found[0] >= PENDING_SECONDS:
            return None
        return found[1] if same_token(found[1].state, state) else None

    # -- password logins waiting for their second factor ---------------------------

    def await_second_factor(self, identity: Identity, factor: str) -> str:
        """Remember a right password whose second factor (``factor``) is still to be
        given; the key goes to the browser in ``SECOND_COOKIE``."""
        now = self._clock()
        self._halfway = {k: v for k, v in self._halfway.items()
                         if now - v[0] < SECOND_FACTOR_SECONDS}
        key = secrets.token_urlsafe(24)
        self._halfway[key] = (now, identity, factor, 0)
        return key

    def halfway(self, key: str | None) -> tuple[Identity, str] | None:
        """The login waiting under ``key`` and its factor, if still in time."""
        found = self._halfway.get(key or "")
        if found is None or self._clock() - found[0] >= SECOND_FACTOR_SECONDS:
            return None
        return found[1], found[2]

    def second_factor_failed(self, key: str) -> bool:
        """Count a wrong code; False when the login must start again."""
        found = self._halfway.get(key)
        if found is None:
            return False
        tries = found[3] + 1
        if tries >= SECOND_FACTOR_TRIES:
            del self._halfway[key]
            return False
        self._halfway[key] = (found[0], found[1], found[2], tries)
        return True

    def second_factor_done(self, key: str) -> None:
        self._halfway.pop(key, None)

    def _sweep(self, now: float) -> None:
        for k in [k for k, s in self._sessions.items()
                  if now - s.seen > self._idle or now - s.created > self._max_age]:
            del self._sessions[k]
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
