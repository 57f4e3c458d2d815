"""Web sessions: who the browser is, kept in the operator's store.

- The browser holds one opaque, random identifier in the cookie ``__Host-mssante``
  (``Secure``, ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, no ``Domain``: the
  ``__Host-`` prefix makes the browser refuse it otherwise; RFC 6265bis §4.1.3.2).
  Everything else (the identity, the CSRF token, when it was opened and last used,
  the mailbox shown last, a notice) is kept in the operator's store
  (store/sessions.py) under the SHA-256 of that identifier, never the identifier
  itself: a copy of the database opens no session. So a session survives a restart
  and is known to every process of the operator.
- A PSC token is never stored (MSSanté rule for software): of a PSC login the store
  keeps its sid, subject and iat, what a logout is matched against. The ID token, used
  to log out at the provider too, stays in the memory of the process that logged the
  browser in; a logout through another process (or after a restart) sends the
  browser to the provider's end-session endpoint with the ``client_id`` instead
  (RP-Initiated Logout 1.0 §2).
- A session locks after ``idle`` seconds without a request (2 hours: the MSSanté rule
  for software) and ends after ``max_age`` in any case; a session opened with Pro Santé
  Connect ends when that PSC session ends (back-channel logout, auth/pscsessions.py,
  checked in memory). Its last use is written at most every ``SEEN_STEP`` seconds, so
  the idle lock comes within a minute of 2 hours.
- ``SessionLoader`` (an ASGI middleware) reads the browser's session once per request
  (one read by primary key) before the routers run (``current``), and writes back what
  they changed (last use, mailbox, notice) before the answer starts.
- Each session has its CSRF token, which every form posts back (``csrf``); the login
  form, before any session, has its own token in a second cookie
  (``__Host-mssante-login``, double submit).
- A right password whose second factor is still to come (TOTP, a patient's code by
  mail) is kept ``SECOND_FACTOR_SECONDS`` under a key in ``__Host-mssante-code``;
  ``SECOND_FACTOR_TRIES`` wrong codes and the password must be given again.
- A login attempt with PSC keeps its state, nonce and PKCE verifier for
  ``PENDING_SECONDS``, under a random key given to the browser in
  ``__Host-mssante-psc``; the provider's answer must come back to the same browser
  (to any process of the operator). Both are in the store, under the key's hash.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mssante.auth.identity import Identity, PscLogin
from mssante.auth.pscclient import AuthorizationStart
from mssante.auth.pscsessions import EndedSessions
from mssante.store.sessions import CODE_LOGIN, PSC_LOGIN, SessionStore, StoredSession, hashed

COOKIE = "__Host-mssante"
LOGIN_COOKIE = "__Host-mssante-login"
PSC_COOKIE = "__Host-mssante-psc"
SECOND_COOKIE = "__Host-mssante-code"  # a password login waiting for its second factor
ONCE_COOKIE = "__Host-mssante-once"  # a value for the next page, sealed (keep_once)
IDLE_SECONDS = 2 * 3600.0
ONCE_SECONDS = 300.0  # a value handed to the next page waits this long at most
MAX_AGE_SECONDS = 12 * 3600.0
PENDING_SECONDS = 600.0
SECOND_FACTOR_SECONDS = 300.0  # to type the code after the password
SECOND_FACTOR_TRIES = 5  # wrong codes before the password must be given again
MAX_SESSIONS = 100_000
SEEN_STEP = 60.0  # seconds: the last use is written again only when older than this
STATE_KEY = "web_session"  # where SessionLoader leaves the session (request.state)


def cookie_header(name: str, value: str, *, clear: bool = False,
                  max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value for one of the cookies above."""
    if clear:
        return f"{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    lasts = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{lasts}"


def _once_key(session_id: str) -> bytes:
    """The key ``keep_once`` seals under: only the session's cookie gives it."""
    return hmac.new(session_id.encode(), b"mssante web once v1", hashlib.sha256).digest()


def same_token(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@dataclass(slots=True)
class WebSession:
    id: str  # the cookie's value (only the browser and this request hold it)
    identity: Identity
    csrf: str
    created: float
    seen: float
    psc_id_token: str = ""  # for logging out at the provider too (this process only)
    # opened with more than a password: its second factor, or Pro Santé Connect
    # (what creating an application password asks, web/apppasswords.py)
    strong: bool = False
    mailbox: str | None = None  # the mailbox shown last
    notice: str = ""  # a status to show once (``role=status``)
    stored: tuple[float, str | None, str] = field(default=(0.0, None, ""), repr=False)

    @property
    def changed(self) -> bool:
        return (self.seen, self.mailbox, self.notice) != self.stored


def _identity(data: dict[str, Any]) -> Identity:
    psc = data.get("psc")
    return Identity(str(data["login"]), str(data["kind"]), data.get("app"),
                    None if psc is None else PscLogin(str(psc[0]), str(psc[1]),
                                                      float(psc[2])))


def _identity_data(identity: Identity) -> dict[str, Any]:
    psc = identity.psc
    return {"login": identity.login, "kind": identity.kind, "app": identity.app,
            "psc": None if psc is None else [psc.subject, psc.sid, psc.issued_at]}


class Sessions:
    """The web sessions of one operator, in its store; one per process."""

    def __init__(self, store: SessionStore, *, ended: EndedSessions | None = None,
                 idle: float = IDLE_SECONDS, max_age: float = MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._id_tokens: dict[str, str] = {}  # hash of the cookie -> PSC ID token
        self._ended = ended
        self._idle = idle
        self._max_age = max_age
        self._clock = clock

    async def open(self, identity: Identity, *, psc_id_token: str = "",
                   strong: bool = False) -> WebSession:
        now = self._clock()
        session = WebSession(secrets.token_urlsafe(32), identity, secrets.token_urlsafe(32),
                             now, now, psc_id_token, strong=strong)
        session.stored = (now, None, "")
        psc = identity.psc
        await self._store.open(session.id, StoredSession(
            login=identity.login, kind=identity.kind, app=identity.app,
            psc_subject=None if psc is None else psc.subject,
            psc_sid="" if psc is None else psc.sid,
            psc_issued_at=0.0 if psc is None else psc.issued_at,
            csrf=session.csrf, created_at=now, seen_at=now, mailbox=None, notice="",
            strong=strong),
            now=now, idle=self._idle, max_age=self._max_age, max_sessions=MAX_SESSIONS)
        if psc_id_token:
            self._id_tokens[hashed(session.id)] = psc_id_token
            while len(self._id_tokens) > MAX_SESSIONS:
                del self._id_tokens[next(iter(self._id_tokens))]
        return session

    async def get(self, session_id: str | None) -> WebSession | None:
        """The live session of this identifier (its last use now, written by ``save``),
        or None; a session past its time, or whose PSC session ended, is closed."""
        if not session_id:
            return None
        found = await self._store.get(session_id)
        if found is None:
            return None
        now = self._clock()
        psc = (None if found.psc_subject is None
               else PscLogin(found.psc_subject, found.psc_sid, found.psc_issued_at))
        if (now - found.seen_at > self._idle or now - found.created_at > self._max_age
                or (psc is not None and self._ended is not None and self._ended.ended(psc))):
            await self.close(session_id)
            return None
        session = WebSession(session_id, Identity(found.login, found.kind, found.app, psc),
                             found.csrf, found.created_at, found.seen_at,
                             psc_id_token=self._id_tokens.get(hashed(session_id), ""),
                             strong=found.strong, mailbox=found.mailbox, notice=found.notice)
        session.stored = (found.seen_at, found.mailbox, found.notice)
        if now - found.seen_at >= SEEN_STEP:
            session.seen = now
        return session

    def keep_once(self, session: WebSession, values: dict[str, str]) -> str:
        """Hand ``values`` to this session's next page (``take_once``): the ``Set-Cookie``
        value of a cookie that holds them sealed (AES-GCM) under a key derived from the
        session's own cookie, for ``ONCE_SECONDS``. Neither the database nor any
        process keeps them (a secret shown once), and whichever of the operator's
        processes serves the next page opens them; without the session's cookie, the
        sealed cookie is noise."""
        nonce = secrets.token_bytes(12)
        body = json.dumps({"until": self._clock() + ONCE_SECONDS, "values": values})
        sealed = nonce + AESGCM(_once_key(session.id)).encrypt(
            nonce, body.encode(), ONCE_COOKIE.encode())
        return cookie_header(ONCE_COOKIE, base64.urlsafe_b64encode(sealed).decode(),
                             max_age=int(ONCE_SECONDS))

    def take_once(self, session: WebSession, request: Request) -> dict[str, str] | None:
        """What ``keep_once`` handed this page ({} when nothing, or nothing that opens
        under this session, or too late); None when there was no such cookie (nothing
        to clear)."""
        raw = request.cookies.get(ONCE_COOKIE)
        if raw is None:
            return None
        try:
            sealed = base64.urlsafe_b64decode(raw.encode())
            body = json.loads(AESGCM(_once_key(session.id)).decrypt(
                sealed[:12], sealed[12:], ONCE_COOKIE.encode()))
            until, values = float(body["until"]), body["values"]
        except (ValueError, KeyError, TypeError, InvalidTag):
            return {}
        if until <= self._clock() or not isinstance(values, dict):
            return {}
        return {str(k): str(v) for k, v in values.items()}

    async def save(self, session: WebSession) -> None:
        """Write what changed of the session (its last use, mailbox, notice)."""
        if session.changed:
            await self._store.save(session.id, seen_at=session.seen, mailbox=session.mailbox,
                                   notice=session.notice)
            session.stored = (session.seen, session.mailbox, session.notice)

    async def close(self, session_id: str | None) -> None:
        if session_id:
            self._id_tokens.pop(hashed(session_id), None)
            await self._store.close(session_id)

    async def close_all_of(self, login: str) -> int:
        """End every session of ``login`` (a password changed, an account removed)."""
        return await self._store.close_all_of(login)

    # -- PSC logins under way ----------------------------------------------------------

    async def remember_login(self, start: AuthorizationStart) -> str:
        key = secrets.token_urlsafe(24)
        await self._store.put_login(PSC_LOGIN, key, dataclasses.asdict(start),
                                    now=self._clock(), keep=PENDING_SECONDS)
        return key

    async def take_login(self, key: str | None, state: str) -> AuthorizationStart | None:
        """The login attempt this browser started, if ``state`` is its state; it can be
        taken once."""
        if not key:
            return None
        found = await self._store.take_login(PSC_LOGIN, key, now=self._clock(),
                                             keep=PENDING_SECONDS)
        if found is None:
            return None
        start = AuthorizationStart(**{f.name: str(found[f.name])
                                      for f in dataclasses.fields(AuthorizationStart)})
        return start if same_token(start.state, state) else None

    # -- password logins waiting for their second factor ---------------------------

    async def await_second_factor(self, identity: Identity, factor: str) -> str:
        """Remember a right password whose second factor (``factor``) is still to be
        given; the key goes to the browser in ``SECOND_COOKIE``."""
        key = secrets.token_urlsafe(24)
        await self._store.put_login(CODE_LOGIN, key,
                                    {"identity": _identity_data(identity), "factor": factor},
                                    now=self._clock(), keep=SECOND_FACTOR_SECONDS)
        return key

    async def halfway(self, key: str | None) -> tuple[Identity, str] | None:
        """The login waiting under ``key`` and its factor, if still in time."""
        if not key:
            return None
        found = await self._store.login(CODE_LOGIN, key, now=self._clock(),
                                        keep=SECOND_FACTOR_SECONDS)
        if found is None:
            return None
        return _identity(found[0]["identity"]), str(found[0]["factor"])

    async def second_factor_failed(self, key: str) -> bool:
        """Count a wrong code; False when the login must start again."""
        return await self._store.login_failed(CODE_LOGIN, key, max_tries=SECOND_FACTOR_TRIES)

    async def second_factor_done(self, key: str) -> None:
        await self._store.drop_login(key)


def current(request: Request) -> WebSession | None:
    """The browser's live session, as ``SessionLoader`` found it for this request."""
    session: WebSession | None = getattr(request.state, STATE_KEY, None)
    return session


class SessionLoader:
    """ASGI middleware: the browser's session read before the routers run, and what
    they changed of it written before the answer starts (so that the next request,
    to any process, sees it). Static files are served without it."""

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith("/static/"):
            await self.app(scope, receive, send)
            return
        session = await self.sessions.get(_cookie(scope, COOKIE))
        scope.setdefault("state", {})[STATE_KEY] = session
        if session is None:
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self.sessions.save(session)
            await send(message)

        await self.app(scope, receive, sending)


def _cookie(scope: Scope, name: str) -> str | None:
    """The value of cookie ``name``, parsed as ``Request.cookies`` does."""
    for key, value in scope.get("headers", ()):
        if key == b"cookie" and name.encode() in value:
            found = cookie_parser(value.decode("latin-1")).get(name)
            if found:
                return found
    return None
