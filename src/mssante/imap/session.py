"""One IMAP session: the state machine and the commands (RFC 9051, RFC 3501).

Implementation notes:
- Which command each state allows is the table ``ALLOWED``, checked before
  dispatch; each command is one method ``cmd_<NAME>`` that raises ``Reply`` for a
  tagged NO or BAD (guard clauses first, then the happy path).
- Untagged updates (EXPUNGE/VANISHED, EXISTS, FETCH of flags changed by others)
  are sent before the tagged reply of every command in the selected state. Expunges
  are held back during FETCH, STORE, SEARCH, COPY and MOVE by sequence number (RFC 9051
  §7.5.1: sequence numbers must not move under those), and sent with the next
  command that allows them; the session then keeps its older snapshot, so its
  sequence numbers stay what the client believes.
- The searches kept up to date (RFC 5267 §4, contexts.py) are brought up to date in
  the same announcement: their REMOVEFROM before its EXPUNGE responses, their ADDTO
  after its EXISTS; never while expunges are held back.
- Updates go out one ``announce`` at a time (a lock per session): IDLE's push task
  and the command that follows DONE never both send the same EXPUNGE; IDLE waits
  for its push to finish before it answers.
- The session shares its folder's snapshot with every other session of this
  process (cache.py); its own flag changes not yet in the snapshot live in
  ``overlay`` until the snapshot catches up.
- IMAP4rev2 (RFC 9051) is the default behaviour where it does not break
  IMAP4rev1 clients; after ``ENABLE IMAP4rev2`` the session also drops RECENT,
  answers SEARCH with ESEARCH and uses UTF-8 mailbox names instead of modified
  UTF-7.
- ``\\Recent`` (RFC 3501 §2.3.2) lives in IMAP4rev1 sessions only: a message is
  recent in the one session first told of it (at SELECT, or by the EXISTS that
  announces it), which claims it in the store (``FolderStore.claim_recent``: the
  folder's first unclaimed UID moved up in one write), so that no other session of
  any process claims it too. EXAMINE shows the unclaimed ones and claims nothing (RFC
  3501 §6.3.2); an IMAP4rev2 session neither shows nor claims any (RFC 9051 removed
  it), so rev1 sessions are served as if it were not there.
- A session opened with an application password (auth/apppasswords.py) ends at its
  next command once that password is revoked (``* BYE``), the store read at most every
  ``APP_PASSWORD_CHECK_SECONDS``; an idling one at its next command, DONE or the
  IDLE its client renews (RFC 9051 §6.3.13: at least every 29 minutes).
- Rights on shared folders are read again at each command (namespace.py): a
  revoked person's next command on the folder gets NO, and the folder is
  unselected; an idling one gets ``* OK [CLOSED]`` instead of the next update.
- ACL (RFC 4314): MYRIGHTS, GETACL and LISTRIGHTS tell the rights; SETACL and
  DELETEACL are refused with NOPERM, because rights come from the operator's roles
  (``mssante operator mailbox grant``), not from the mail client.
- Memory per connection is bounded in octets, whatever the client asks and however
  slowly it reads. Answers go out through ``_Output``: at most ``FETCH_CHUNK`` octets
  are gathered, then written, and the session waits (``drain``) until the client has
  taken the transport's buffer below its high-water mark (``WRITE_HIGH_WATER``, which
  server.py sets) before it reads or renders anything more; so a connection's write
  buffers (under TLS, the TLS layer's and the socket's) never hold more than
  ``MAX_BUFFERED`` octets. FETCH and SEARCH load
  bodies a few at a time, at most ``FETCH_CHUNK`` octets together (200 messages of
  metadata per query); a body larger than that is loaded alone, and when the request
  needs no parsing (BODY[], BODY.PEEK[], RFC822, partial or not) it is never loaded
  whole: it is streamed from the store ``FETCH_CHUNK`` octets at a time
  (``FolderStore.body_piece``). So a session holds at most one message (the
  operator's ``max_message_size``) and, while streaming, ``MAX_BUFFERED`` octets.
  A body that disappears while it is being streamed (expunged, its last reference
  gone) cannot complete its literal: the connection is closed.
- No command holds the event loop for long (``SLICE`` seconds of work at most between
  two yields): FETCH and SEARCH yield to the loop while they walk many small messages,
  and parse a message of ``OFFLOAD_SIZE`` octets or more (MIME tree, BODYSTRUCTURE,
  SEARCH TEXT) in a small thread pool (``MIME_THREADS``), which also bounds how many
  large messages the process parses at once. The MIME walk itself is bounded
  (mime.py ``MAX_PARTS``, ``MAX_DEPTH``) and always serves the message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, TypeVar

from mssante import __version__ as VERSION
from mssante.audit.events import LOGIN, LOGIN_FAILED, READ, AuditEvent, actor_of, clip
from mssante.auth import oauthsasl
from mssante.auth.identity import Identity
from mssante.domain.alerts import ALERT_KEYWORD
from mssante.errors import Conflict, NotFound, PolicyViolation
from mssante.imap import append as appending
from mssante.imap import fetch as fetching
from mssante.imap import mutf7, sorting, wire
from mssante.imap import search as searching
from mssante.imap.auth import AuthFailed, certificate_login, password_login, token_login
from mssante.imap.cache import FolderCache, Snapshot
from mssante.imap.contexts import CAPABILITIES as CONTEXT_CAPABILITIES
from mssante.imap.contexts import Contexts
from mssante.imap.errors import Reply, bad, no
from mssante.imap.namespace import (
    ALL_RIGHTS,
    SHARED_PREFIX,
    Place,
    resolve,
    rights_for,
    role_rights,
)
from mssante.imap.parser import Command
from mssante.imap.sequence import BadSequence, format_uid_set, parse_sequence_set
from mssante.imap.tokens import Atom, String, Token
from mssante.operator.runtime import OperatorRuntime
from mssante.store.delivery import SENT
from mssante.store.folders import DELIMITER, SUMMARY_FIELDS, normalise_name
from mssante.store.models import Folder, MessageData

log = logging.getLogger(__name__)

MAX_AUTH_FAILURES = 3
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_SYSTEM_LOWER = {f.lower(): f for f in SYSTEM_FLAGS}
# RFC 9051 §7.1: FLAGS names the keywords the server sets itself too: $Alerte marks
# an authority's health alert (domain/alerts.py), set at delivery
ANNOUNCED_FLAGS = (*SYSTEM_FLAGS, ALERT_KEYWORD)
_ANNOUNCED_LOWER = frozenset(flag.lower() for flag in ANNOUNCED_FLAGS)
FETCH_BATCH = 200  # messages whose metadata (body hash, size, date) is loaded per query
SEARCH_BATCH = 20_000  # messages whose metadata a SEARCH loads per query
FLAGS_BATCH = 20_000  # FETCH responses of flags only rendered at once
# Memory per connection (see the notes): bodies loaded together up to this many octets,
# a larger one alone; a body larger than this streamed from the store in pieces of it;
# answers written in pieces of at most this many octets, then the client waited for.
FETCH_CHUNK = 1 << 20
WRITE_HIGH_WATER = 64 * 1024  # octets; the transport's high-water mark (server.py sets it)
# octets of answers waiting in a connection's write buffers: the session writes at most
# one FETCH_CHUNK past the high-water mark, and under TLS both the TLS layer and the
# socket transport beneath it may hold that much
MAX_BUFFERED = 2 * (WRITE_HIGH_WATER + FETCH_CHUNK)
# The event loop (see the notes)
SLICE = 0.01  # seconds of work on the loop between two yields to other connections
OFFLOAD_SIZE = 256 * 1024  # octets from which a message is parsed in the thread pool
MIME_THREADS = 2  # threads parsing large messages (shared by the process's sessions)

_T = TypeVar("_T")
_mime_pool: ThreadPoolExecutor | None = None


async def off_loop(work: Callable[[], _T]) -> _T:
    """Run CPU work on a large message in the MIME threads: the event loop keeps
    serving other connections meanwhile."""
    global _mime_pool
    if _mime_pool is None:
        _mime_pool = ThreadPoolExecutor(MIME_THREADS, thread_name_prefix="imap-mime")
    return await asyncio.get_running_loop().run_in_executor(_mime_pool, work)


class _Slicer:
    """Yields to the event loop once ``SLICE`` seconds of work went by since the last
    yield (time.monotonic), so that a walk over many messages shares the loop."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = time.monotonic()

    async def tick(self) -> None:
        now = time.monotonic()
        if now - self._since >= SLICE:
            await asyncio.sleep(0)
            self._since = time.monotonic()


class _Output:
    """Answers on their way out: gathered up to ``FETCH_CHUNK`` octets, then written,
    and the client waited for (``drain``) before anything more is read or rendered."""

    __slots__ = ("_conn", "_parts", "_size")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._parts: list[bytes] = []
        self._size = 0

    async def add(self, data: bytes) -> None:
        if len(data) > FETCH_CHUNK:
            await self.flush()
            for start in range(0, len(data), FETCH_CHUNK):
                self._conn.write(data[start:start + FETCH_CHUNK])
                await self._conn.drain()
            return
        self._parts.append(data)
        self._size += len(data)
        if self._size >= FETCH_CHUNK:
            await self.flush()

    async def flush(self) -> None:
        if self._parts:
            self.write_pending()
            await self._conn.drain()

    def write_pending(self) -> None:
        """Write what is gathered without waiting (a command ending on an error)."""
        if self._parts:
            data = b"".join(self._parts)
            self._parts, self._size = [], 0
            self._conn.write(data)


def _by_octets(items: Iterable[tuple[int, int, MessageData]]
               ) -> Iterator[list[tuple[int, int, MessageData]]]:
    """(position, UID, metadata) in groups whose bodies total at most ``FETCH_CHUNK``
    octets; a larger body forms a group of its own."""
    group: list[tuple[int, int, MessageData]] = []
    total = 0
    for item in items:
        size = item[2].size
        if group and total + size > FETCH_CHUNK:
            yield group
            group, total = [], 0
        group.append(item)
        total += size
    if group:
        yield group


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
_AUTHENTICATED = _ANY | {
    "ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
    "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "GETACL",
    "SETACL", "DELETEACL", "LISTRIGHTS", "MYRIGHTS"}
# RFC 9051 §6: the commands each state allows
ALLOWED: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: _ANY | {"STARTTLS", "LOGIN", "AUTHENTICATE"},
    State.AUTHENTICATED: _AUTHENTICATED,
    State.SELECTED: _AUTHENTICATED | {
        "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "UID EXPUNGE", "SEARCH", "UID SEARCH",
        "FETCH", "UID FETCH", "STORE", "UID STORE", "COPY", "UID COPY", "MOVE",
        "UID MOVE", "SORT", "UID SORT", "THREAD", "UID THREAD", "CANCELUPDATE"},
    State.LOGOUT: frozenset(),
}
_METHODS = {name: "cmd_" + name.replace(" ", "_")
            for names in ALLOWED.values() for name in names}  # command -> method name
# RFC 9051 §7.5.1: no EXPUNGE while the client relies on sequence numbers
_HOLD_EXPUNGES = frozenset({"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "SORT", "THREAD"})


APP_PASSWORD_CHECK_SECONDS = 5.0  # how long a revoked application password may go on


class Logout(Exception):
    """End the connection after what was written."""


class Connection(Protocol):
    """What the session needs from its connection (server.py)."""

    @property
    def tls(self) -> bool: ...

    @property
    def peer_address(self) -> str: ...  # the client's IP address (login throttle)

    def peer_certificate(self) -> bytes | None: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    async def readline(self, timeout: float | None = None) -> bytes: ...

    async def start_tls(self) -> None: ...


@dataclass
class Selected:
    place: Place
    folder_id: int
    read_only: bool
    snapshot: Snapshot
    overlay: dict[int, tuple[str, int]] = field(default_factory=dict)  # uid -> flags, modseq
    keywords: dict[str, str] = field(default_factory=dict)  # announced by FLAGS: lower -> as set
    recent: set[int] = field(default_factory=set)  # UIDs \Recent in this session (IMAP4rev1)
    pending: bool = False  # a change was notified
    held_back: bool = False  # expunges wait for a command that may send them
    follower: Callable[[], None] = lambda: None  # what the cache calls on a change


@dataclass(frozen=True, slots=True)
class Limits:
    max_message: int  # APPENDLIMIT (RFC 7889), the operator's max_message_size
    idle_timeout: float = 31 * 60.0  # RFC 9051 §5.4: at least 30 minutes


class Session:
    __slots__ = ("_announcing", "_app_password_seen", "_push_task", "_tagged_ok",
                 "auth_failures", "cache", "conn", "contexts", "ctx", "enabled", "home",
                 "identity",
                 "idling", "limits", "saved", "selected", "state")

    def __init__(self, ctx: OperatorRuntime, cache: FolderCache, conn: Connection,
                 limits: Limits) -> None:
        self.ctx = ctx
        self.cache = cache
        self.conn = conn
        self.limits = limits
        self.state = State.NOT_AUTHENTICATED
        self.identity: Identity | None = None
        self.home: str | None = None
        self.selected: Selected | None = None
        self.enabled: set[str] = set()
        self.auth_failures = 0
        self.idling = False
        self._push_task: asyncio.Task[None] | None = None  # IDLE's push of updates
        self._announcing = asyncio.Lock()  # one announce at a time: IDLE push vs command
        self._tagged_ok: bytes | None = None  # held back until the updates are written
        self._app_password_seen = 0.0  # when the application password was last found live
        self.saved: list[int] = []  # RFC 5182 SEARCHRES: UIDs saved by SEARCH ... SAVE
        self.contexts = Contexts()  # RFC 5267 §4: searches kept up to date (contexts.py)

    # ------------------------------------------------------------------ plumbing

    @property
    def append_limit(self) -> int:
        """APPENDLIMIT (RFC 7889): the operator's largest message."""
        return self.limits.max_message

    @property
    def utf8(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """A CONDSTORE enabling command (RFC 7162 §3.1): from now on FETCH responses
        carry MODSEQ; the first one issued while a mailbox is selected also reports
        that mailbox's HIGHESTMODSEQ (``* OK [HIGHESTMODSEQ n]``, §3.1.2.1), which the
        client had no reason to read from SELECT."""
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        self._condstore_enabled()

    def _condstore_enabled(self) -> None:
        if self.selected is not None:
            self.write(b"* OK [HIGHESTMODSEQ %d] Highest\r\n"
                       % self.selected.snapshot.folder.highestmodseq)

    def greeting(self) -> bytes:
        return b"* OK [CAPABILITY " + self.capabilities().encode() + b"] MSSante IMAP ready\r\n"

    def capabilities(self) -> str:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "ID", "ENABLE", "SASL-IR"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.conn.tls:
                caps.append("AUTH=PLAIN")
                # EXTERNAL only with a client certificate: SASL clients (mbsync via
                # Cyrus SASL) pick EXTERNAL whenever offered and do not fall back
                if self.conn.peer_certificate() is not None:
                    caps.append("AUTH=EXTERNAL")
                if self.ctx.tokens is not None:  # Pro Santé Connect tokens
                    caps += ["AUTH=XOAUTH2", "AUTH=OAUTHBEARER"]
            else:
                caps += ["STARTTLS", "LOGINDISABLED"]
            return " ".join(caps)
        caps += ["IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "SPECIAL-USE",
                 "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "SEARCHRES", "CHILDREN",
                 f"APPENDLIMIT={self.limits.max_message}", "CONDSTORE", "QRESYNC", "ACL",
                 "RIGHTS=kxte", "STATUS=SIZE", "BINARY", "MULTIAPPEND", "CATENATE",
                 *sorting.CAPABILITIES, *CONTEXT_CAPABILITIES]
        return " ".join(caps)

    async def handle(self, command: Command) -> None:
        """Run one command and write its responses; raises Logout to end."""
        tag, name = command.tag, command.name
        if name not in ALLOWED[self.state]:
            if name in _METHODS:
                raise bad(f"{name} is not allowed in the {self.state.value} state")
            raise bad(f"unknown command {name}")
        try:
            if self.identity is not None and self.identity.psc is not None:
                self._check_psc_session()
            if self.identity is not None and self.identity.app_password is not None:
                await self._check_app_password(self.identity.app_password)
            if self.home is not None and name != "LOGOUT":
                await self._check_home(self.home)
            if self.selected is not None:
                await self._check_access()
            handler: Callable[[str, list[Token]], Awaitable[None]] = getattr(self, _METHODS[name])
            await handler(tag, command.args)
            if self.selected is not None and name not in ("IDLE", "SELECT", "EXAMINE"):
                await self.announce(allow_expunge=name not in _HOLD_EXPUNGES)
                self._lower_highestmodseq()
        except (Conflict, NotFound, PolicyViolation) as exc:
            raise no(str(exc)) from exc
        except BadSequence as exc:
            raise bad(str(exc)) from exc
        finally:
            if self._tagged_ok is not None:
                self.write(self._tagged_ok)
                self._tagged_ok = None

    def write(self, data: bytes) -> None:
        self.conn.write(data)

    def ok(self, tag: str, text: str, code: str | None = None) -> None:
        line = wire.tagged(tag, "OK", text, code)
        if self.selected is not None:
            # the updates ``handle`` announces after the command come first (RFC 9051
            # §7: untagged data before the tagged completion), so NOOP polls
            self._tagged_ok = line
            return
        self.write(line)

    def close(self) -> None:
        """The connection ended: stop following the selected folder."""
        self._unselect()
        self.state = State.LOGOUT

    # ------------------------------------------------------------ any state

    async def cmd_CAPABILITY(self, tag: str, args: list[Token]) -> None:
        self.write(b"* CAPABILITY " + self.capabilities().encode() + b"\r\n")
        self.ok(tag, "CAPABILITY completed")

    async def cmd_NOOP(self, tag: str, args: list[Token]) -> None:
        self.ok(tag, "NOOP completed")

    async def cmd_LOGOUT(self, tag: str, args: list[Token]) -> None:
        self.write(b"* BYE MSSante IMAP logging out\r\n")
        self.ok(tag, "LOGOUT completed")
        self._unselect()
        self.state = State.LOGOUT
        raise Logout

    async def cmd_ID(self, tag: str, args: list[Token]) -> None:
        # RFC 2971: the client's fields are only logged
        if args and isinstance(args[0], list):
            log.info("IMAP client id: %s", _describe(args[0]))
        self.write(b'* ID ("name" "mssante" "version" "' + VERSION.encode() +
                   b'" "vendor" "mssante")\r\n')
        self.ok(tag, "ID completed")

    # ------------------------------------------------------ not authenticated

    async def cmd_STARTTLS(self, tag: str, args: list[Token]) -> None:
        if self.conn.tls:
            raise bad("TLS is active already")
        self.ok(tag, "Begin TLS negotiation now")
        await self.conn.drain()
        await self.conn.start_tls()

    async def cmd_LOGIN(self, tag: str, args: list[Token]) -> None:
        if not self.conn.tls:
            raise no("Log in over TLS only (STARTTLS or port 993)", "PRIVACYREQUIRED")
        if len(args) != 2:
            raise bad("LOGIN takes a user name and a password")
        login, password = _text(args[0]), _text(args[1])
        await self._authenticate(tag, lambda: password_login(self.ctx, login, password,
                                                                  self.conn.peer_address),
                                 method="LOGIN", attempted=login)

    async def cmd_AUTHENTICATE(self, tag: str, args: list[Token]) -> None:
        if not args or not isinstance(args[0], Atom):
            raise bad("AUTHENTICATE takes a mechanism")
        if not self.conn.tls:
            raise no("Authenticate over TLS only (STARTTLS or port 993)", "PRIVACYREQUIRED")
        mechanism = args[0].upper
        bearer = mechanism in oauthsasl.MECHANISMS and self.ctx.tokens is not None
        if mechanism not in ("PLAIN", "EXTERNAL") and not bearer:
            raise no(f"unsupported mechanism {mechanism}", "CANNOT")
        if len(args) > 2:
            raise bad("too many arguments")
        if len(args) == 2:  # RFC 4959 SASL-IR
            initial = _text(args[1])
        else:
            self.write(b"+ \r\n")
            await self.conn.drain()
            initial = (await self.conn.readline()).rstrip(b"\r\n").decode("ascii", "replace")
            if initial == "*":
                raise bad("authentication cancelled")  # RFC 9051 §6.2.2
        blob = b"" if initial == "=" else _b64(initial)
        if blob is None:
            raise bad("the response is not base64")
        if bearer:
            await self._authenticate(tag, functools.partial(self._bearer_login, mechanism,
                                                            blob), method=mechanism)
            return
        if mechanism == "EXTERNAL":
            authzid = blob.decode("utf-8", "replace")
            der = self.conn.peer_certificate()
            await self._authenticate(tag, lambda: certificate_login(self.ctx, der, authzid),
                                     method="EXTERNAL", attempted=authzid)
            return
        parts = blob.split(b"\x00")
        if len(parts) != 3:  # RFC 4616 §2: [authzid] NUL authcid NUL passwd
            raise bad("malformed PLAIN response")
        authzid, login, password = (p.decode("utf-8", "replace") for p in parts)
        if authzid and authzid != login:
            await self._authenticate(tag, _refuse("cannot act as another user"),
                                     method="PLAIN", attempted=login)
            return
        await self._authenticate(tag, lambda: password_login(self.ctx, login, password,
                                                                  self.conn.peer_address),
                                 method="PLAIN", attempted=login)

    async def _bearer_login(self, mechanism: str, blob: bytes) -> Identity:
        """XOAUTH2 or OAUTHBEARER (auth/oauthsasl.py); a refused OAUTHBEARER first
        sends the RFC 7628 §3.2.2 error and reads the client's ^A (§3.2.3)."""
        try:
            try:
                response = oauthsasl.parse(mechanism, blob)
            except oauthsasl.MalformedMessage as exc:
                raise AuthFailed(f"Malformed {mechanism} response: {exc}") from None
            return await token_login(self.ctx, response.token, response.login)
        except AuthFailed:
            if mechanism == oauthsasl.OAUTHBEARER and self.ctx.tokens is not None:
                error = oauthsasl.error_challenge(self.ctx.tokens.configuration_url)
                self.write(b"+ " + base64.b64encode(error) + b"\r\n")
                await self.conn.drain()
                await self.conn.readline()  # the dummy response, whatever it is
            raise

    async def _authenticate(self, tag: str, check: Callable[[], Awaitable[Identity]], *,
                            method: str, attempted: str = "") -> None:
        """Log in with ``check``; the audit trail records the login or its failure
        (``attempted``: the login asked for, when the client named one) before the
        client hears of it."""
        source = f"IMAP {self.conn.peer_address}"
        try:
            identity = await check()
        except AuthFailed as exc:
            await self.ctx.store.audit_record([AuditEvent(
                LOGIN_FAILED, clip(attempted), source=source,
                detail=clip(f"{method}: {exc}"))])
            self.auth_failures += 1
            log.info("IMAP authentication failed (%d): %s", self.auth_failures, exc)
            if self.auth_failures >= MAX_AUTH_FAILURES:
                self.write(wire.tagged(tag, "NO", str(exc), exc.code))
                self.write(b"* BYE Too many authentication failures\r\n")
                raise Logout from exc
            raise no(str(exc), exc.code) from exc
        await self.ctx.store.audit_record([AuditEvent(
            LOGIN, _actor(identity), source=source, detail=method)])
        self.identity = identity
        self._app_password_seen = time.monotonic()  # found live just now
        if identity.app is not None:
            self.home = identity.app
        else:
            self.home = await self.ctx.store.home_mailbox(identity.login)
        self.state = State.AUTHENTICATED
        self.ok(tag, "Logged in", "CAPABILITY " + self.capabilities())

    # ---------------------------------------------------------- authenticated

    async def cmd_ENABLE(self, tag: str, args: list[Token]) -> None:
        if not args:
            raise bad("ENABLE takes capability names")
        done: list[str] = []
        had_condstore = self.condstore
        for arg in args:
            name = _atom(arg).upper()
            if name in ("CONDSTORE", "QRESYNC", "IMAP4REV2") and name not in self.enabled:
                self.enabled.add(name)
                if name == "QRESYNC":
                    self.enabled.add("CONDSTORE")
                done.append({"IMAP4REV2": "IMAP4rev2"}.get(name, name))
        self.write(b"* ENABLED" + b"".join(b" " + n.encode() for n in done) + b"\r\n")
        if self.condstore and not had_condstore:
            self._condstore_enabled()
        if self.utf8 and self.selected is not None:
            self.selected.recent.clear()  # RFC 9051 has no \Recent
        self.ok(tag, "ENABLE completed")

    async def cmd_NAMESPACE(self, tag: str, args: list[Token]) -> None:
        personal = b'(("" "/"))' if self.home is not None else b"NIL"
        self.write(b"* NAMESPACE " + personal + b' NIL (("' + SHARED_PREFIX.encode() +
                   b'" "/"))\r\n')
        self.ok(tag, "NAMESPACE completed")

    async def cmd_SELECT(self, tag: str, args: list[Token]) -> None:
        await self._select(tag, args, read_only=False)

    async def cmd_EXAMINE(self, tag: str, args: list[Token]) -> None:
        await self._select(tag, args, read_only=True)

    async def _select(self, tag: str, args: list[Token], *, read_only: bool) -> None:
        if not args or len(args) > 2:
            raise bad("SELECT takes a mailbox name and optional parameters")
        qresync: list[Token] | None = None
        if len(args) == 2:  # checked before anything changes: a BAD leaves the state as is
            qresync = self._select_params(args[1])
        had = self.selected is not None
        self._unselect()
        self.state = State.AUTHENTICATED
        if had and (self.qresync or self.utf8):
            self.write(b"* OK [CLOSED] Previous mailbox closed\r\n")  # RFC 7162 §3.2.11
        place, rights = await self.place(self.mailbox_arg(args[0]))
        if "r" not in rights:
            raise no("You may not read this mailbox", "NOPERM")
        folder = await self.ctx.store.folders.get(place.address, place.folder)
        if folder is None:
            raise no("No such mailbox", "NONEXISTENT")
        selected = Selected(place, folder.id, read_only or "w" not in rights,
                            snapshot=Snapshot(folder, [], [], []))
        selected.follower = self._woken(selected)
        snapshot = await self.cache.open(folder.id, selected.follower)
        if snapshot is None:
            raise no("No such mailbox", "NONEXISTENT")
        selected.snapshot = snapshot
        self.selected = selected
        self.state = State.SELECTED
        folder = snapshot.folder
        self._new_keywords(selected, set(snapshot.flags))
        self.write(self._flags_announcement(selected))
        self.write(b"* %d EXISTS\r\n" % len(snapshot.uids))
        if not self.utf8:
            await self._claim_recent(selected, snapshot, opening=True)
            self.write(b"* %d RECENT\r\n" % len(selected.recent))
            unseen = next((i for i, f in enumerate(snapshot.flags) if "\\Seen" not in f), None)
            if unseen is not None:
                self.write(b"* OK [UNSEEN %d] First unseen\r\n" % (unseen + 1))
        self.write(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % folder.uidvalidity)
        self.write(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % folder.uidnext)
        self.write(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % folder.highestmodseq)
        if self.utf8:  # RFC 9051 §6.3.2: a LIST of the mailbox (attributes accurate, not all)
            self.write(b"* LIST (" + (folder.special_use or "").encode() + b') "' +
                       DELIMITER.encode() + b'" ' +
                       wire.mailbox_name(place.visible_name(), True) + b"\r\n")
        if qresync is not None:
            await self._qresync_select(qresync, folder, snapshot)
        mode = "READ-ONLY" if selected.read_only else "READ-WRITE"
        self.ok(tag, f"{'EXAMINE' if read_only else 'SELECT'} completed", mode)

    def _select_params(self, arg: Token) -> list[Token] | None:
        """RFC 7162 §3.1.8 (CONDSTORE) and §3.2.5 (QRESYNC) SELECT parameters."""
        if not isinstance(arg, list) or not arg:
            raise bad("SELECT parameters are a parenthesised list")
        qresync: list[Token] | None = None
        i = 0
        while i < len(arg):
            name = _atom(arg[i]).upper()
            if name == "CONDSTORE":
                self.enabled.add("CONDSTORE")
                i += 1
            elif name == "QRESYNC":
                if not self.qresync:
                    raise bad("QRESYNC must be enabled first (ENABLE QRESYNC)")
                if i + 1 >= len(arg) or not isinstance(arg[i + 1], list):
                    raise bad("QRESYNC takes a parenthesised list")
                value = arg[i + 1]
                assert isinstance(value, list)
                if len(value) < 2:
                    raise bad("QRESYNC takes a UIDVALIDITY and a MODSEQ")
                _number(value[0]), _number(value[1])
                qresync = value
                i += 2
            else:
                raise bad(f"unknown SELECT parameter {name}")
        return qresync

    async def _qresync_select(self, params: list[Token], folder: Folder,
                              snapshot: Snapshot) -> None:
        if len(params) < 2:
            raise bad("QRESYNC takes a UIDVALIDITY and a MODSEQ")
        uidvalidity, modseq = _number(params[0]), _number(params[1])
        if uidvalidity != folder.uidvalidity:
            return  # RFC 7162 §3.2.5.1: the client must resynchronise fully
        known: list[int] | None = None
        if len(params) > 2 and isinstance(params[2], Atom):
            known = parse_sequence_set(params[2].value).resolve_uids(
                snapshot.uids, known=True, uidnext=folder.uidnext)
        gone = await self.ctx.store.folders.expunged_since(folder.id, modseq, known)
        if gone:
            self.write(b"* VANISHED (EARLIER) " + format_uid_set(gone).encode() + b"\r\n")
        selected = self._selected()
        lines = [self._flags_line(i + 1, uid, self._shown(selected, uid, snapshot.flags[i]),
                                  snapshot.modseqs[i])
                 for i, uid in enumerate(snapshot.uids) if snapshot.modseqs[i] > modseq]
        self.write(b"".join(lines))

    async def cmd_CREATE(self, tag: str, args: list[Token]) -> None:
        name = self.mailbox_arg(_one(args, "CREATE"))
        name = name.rstrip(DELIMITER)  # RFC 9051 §6.3.4: a trailing delimiter is dropped
        place, rights = await self.place(name)
        if "k" not in rights:
            raise no("You may not create mailboxes here", "NOPERM")
        try:
            # not subscribed (as Dovecot): RFC 9051 §6.3.4 does not ask it, and a client
            # that wants it subscribes (Thunderbird sends SUBSCRIBE after its CREATE)
            await self.ctx.store.folders.create(place.address, place.folder, subscribed=False)
        except ValueError as exc:
            raise no(str(exc), "CANNOT") from exc
        except Conflict as exc:
            raise no(str(exc), "ALREADYEXISTS") from exc
        self.ok(tag, "CREATE completed")

    async def cmd_DELETE(self, tag: str, args: list[Token]) -> None:
        place, rights = await self.place(self.mailbox_arg(_one(args, "DELETE")))
        if "x" not in rights:
            raise no("You may not delete this mailbox", "NOPERM")
        if self.selected is not None and self.selected.place == place:
            self._unselect()
            self.state = State.AUTHENTICATED
        try:
            await self.ctx.store.folders.delete(place.address, place.folder)
        except NotFound as exc:
            raise no("No such mailbox", "NONEXISTENT") from exc
        except (PolicyViolation, ValueError) as exc:
            raise no(str(exc), "CANNOT") from exc
        self.ok(tag, "DELETE completed")

    async def cmd_RENAME(self, tag: str, args: list[Token]) -> None:
        if len(args) != 2:
            raise bad("RENAME takes two mailbox names")
        old, rights = await self.place(self.mailbox_arg(args[0]))
        new, new_rights = await self.place(self.mailbox_arg(args[1]))
        if old.address != new.address:
            raise no("A mailbox moves only inside its own MSSanté mailbox", "CANNOT")
        if "x" not in rights or "k" not in new_rights:
            raise no("You may not rename this mailbox", "NOPERM")
        try:
            await self.ctx.store.folders.rename(old.address, old.folder, new.folder)
        except NotFound as exc:
            raise no("No such mailbox", "NONEXISTENT") from exc
        except Conflict as exc:
            raise no(str(exc), "ALREADYEXISTS") from exc
        except (PolicyViolation, ValueError) as exc:
            raise no(str(exc), "CANNOT") from exc
        self.ok(tag, "RENAME completed")

    async def cmd_SUBSCRIBE(self, tag: str, args: list[Token]) -> None:
        await self._subscribe(tag, args, True)

    async def cmd_UNSUBSCRIBE(self, tag: str, args: list[Token]) -> None:
        await self._subscribe(tag, args, False)

    async def _subscribe(self, tag: str, args: list[Token], on: bool) -> None:
        """RFC 9051 §6.3.7, §6.3.8 (RFC 3501 §6.3.6, §6.3.7): a name may be subscribed
        whether a mailbox has it or not, and stays subscribed when its mailbox is
        deleted; LSUB and LIST (SUBSCRIBED) show such a name as \\Noselect or
        \\NonExistent (listing.py)."""
        place, rights = await self.place(self.mailbox_arg(_one(args, "SUBSCRIBE")))
        if "l" not in rights:
            raise no("No such mailbox", "NONEXISTENT")
        # In a shared mailbox, each person's subscriptions are their own.
        viewer = self.identity.login if place.shared and self.identity is not None else None
        try:
            await self.ctx.store.folders.subscribe(place.address, place.folder, on,
                                                   viewer=viewer)
        except (NotFound, ValueError) as exc:
            raise no("No such mailbox nor subscription", "NONEXISTENT") from exc
        self.ok(tag, f"{'SUBSCRIBE' if on else 'UNSUBSCRIBE'} completed")

    async def cmd_LIST(self, tag: str, args: list[Token]) -> None:
        from mssante.imap.listing import list_command  # one concern per module

        await list_command(self, tag, args, lsub=False)

    async def cmd_LSUB(self, tag: str, args: list[Token]) -> None:
        from mssante.imap.listing import list_command

        await list_command(self, tag, args, lsub=True)

    async def cmd_STATUS(self, tag: str, args: list[Token]) -> None:
        from mssante.imap.listing import status_command

        await status_command(self, tag, args)

    async def cmd_APPEND(self, tag: str, args: list[Token]) -> None:
        # one message or several (MULTIAPPEND, RFC 3502), literals or CATENATE (RFC 4469)
        mailbox, parts = appending.parse_append(args)
        limit = self.limits.max_message
        messages = [(self._flags(part.flags or []),
                     None if part.date is None else _parse_date_time(part.date), part.content)
                    for part in parts]
        if any(isinstance(content, String) and len(content.value) > limit
               for _, _, content in messages):
            raise no(f"the message exceeds {limit} octets", "TOOBIG")
        place, rights = await self.place(self.mailbox_arg(mailbox))
        if "i" not in rights:
            raise no("You may not add messages here", "NOPERM")
        folder = await self.ctx.store.folders.get(place.address, place.folder)
        if folder is None:
            raise no("No such mailbox", "TRYCREATE")
        bodies = [(content.value if isinstance(content, String)
                   else await appending.catenate(self, content, limit), flags, date)
                  for flags, date, content in messages]
        if folder.special_use == SENT and len(bodies) == 1:
            kept = await self.ctx.store.folders.submitted_copy(folder.id, bodies[0][0])
            if kept is not None:  # the client saving what submission already kept
                self.ok(tag, "APPEND completed (the copy kept at sending)",
                        f"APPENDUID {folder.uidvalidity} {kept}")
                return
        # all or none (RFC 3502 §6): one transaction
        uidvalidity, uids = await self.ctx.store.folders.append_many(folder.id, bodies)
        self.ok(tag, "APPEND completed", f"APPENDUID {uidvalidity} {format_uid_set(uids)}")

    async def cmd_IDLE(self, tag: str, args: list[Token]) -> None:
        """RFC 2177: updates are pushed until the client sends DONE."""
        self.write(b"+ idling\r\n")
        self.idling = True
        try:
            if self.selected is not None:
                await self.announce(allow_expunge=True)
            await self.conn.drain()
            line = await self._idle_line()
        finally:
            self.idling = False
            if self._push_task is not None:  # let a push in flight finish first
                await asyncio.gather(self._push_task, return_exceptions=True)
                self._push_task = None
        if line.rstrip(b"\r\n").upper() != b"DONE":
            raise bad("expected DONE")
        if self.selected is not None:
            await self.announce(allow_expunge=True)
        self.ok(tag, "IDLE terminated")

    async def _idle_line(self) -> bytes:
        """The client's next line (DONE); a session logged in with a PSC token ends as
        soon as that PSC session ends, without waiting for it."""
        identity, tokens = self.identity, self.ctx.tokens
        if identity is None or identity.psc is None or tokens is None:
            return await self.conn.readline(self.limits.idle_timeout)
        ended = asyncio.Event()
        stop_watching = tokens.ended.watch(ended.set)
        reading = asyncio.ensure_future(self.conn.readline(self.limits.idle_timeout))
        waiting = asyncio.ensure_future(ended.wait())
        try:
            while True:
                await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if reading.done():
                    return reading.result()
                self._check_psc_session()  # raises Logout when it was this session
                ended.clear()
                waiting = asyncio.ensure_future(ended.wait())
        finally:
            stop_watching()
            for task in (reading, waiting):
                task.cancel()
            await asyncio.gather(reading, waiting, return_exceptions=True)

    # ACL, RFC 4314

    async def cmd_MYRIGHTS(self, tag: str, args: list[Token]) -> None:
        name = self.mailbox_arg(_one(args, "MYRIGHTS"))
        place, rights = await self.place(name)
        if not rights or await self.ctx.store.folders.get(place.address, place.folder) is None:
            raise no("No such mailbox", "NONEXISTENT")
        self.write(b"* MYRIGHTS " + wire.mailbox_name(name, self.utf8) + b" " +
                   rights.encode() + b"\r\n")
        self.ok(tag, "MYRIGHTS completed")

    async def cmd_GETACL(self, tag: str, args: list[Token]) -> None:
        name = self.mailbox_arg(_one(args, "GETACL"))
        place, rights = await self.place(name)
        if "a" not in rights:
            raise no("You may not see who has access to this mailbox", "NOPERM")
        entries = [wire.astring(role.login) + b" " + role_rights(role.role, role.rights).encode()
                   for role in await self.ctx.store.roles(place.address)]
        self.write(b"* ACL " + wire.mailbox_name(name, self.utf8) +
                   b"".join(b" " + e for e in entries) + b"\r\n")
        self.ok(tag, "GETACL completed")

    async def cmd_LISTRIGHTS(self, tag: str, args: list[Token]) -> None:
        if len(args) != 2:
            raise bad("LISTRIGHTS takes a mailbox and an identifier")
        name = self.mailbox_arg(args[0])
        _, rights = await self.place(name)
        if "a" not in rights:
            raise no("You may not see the rights of this mailbox", "NOPERM")
        self.write(b"* LISTRIGHTS " + wire.mailbox_name(name, self.utf8) + b" " +
                   wire.astring(_text(args[1])) + b' "" l r s w i p k x t e a\r\n')
        self.ok(tag, "LISTRIGHTS completed")

    async def cmd_SETACL(self, tag: str, args: list[Token]) -> None:
        raise no("Rights are set by the operator (mssante operator mailbox grant)", "NOPERM")

    async def cmd_DELETEACL(self, tag: str, args: list[Token]) -> None:
        raise no("Rights are set by the operator (mssante operator mailbox revoke)", "NOPERM")

    # --------------------------------------------------------------- selected

    async def cmd_CHECK(self, tag: str, args: list[Token]) -> None:
        self.ok(tag, "CHECK completed")

    async def cmd_CLOSE(self, tag: str, args: list[Token]) -> None:
        selected = self._selected()
        if not selected.read_only:
            await self.ctx.store.folders.expunge(selected.folder_id)  # silently, RFC 9051 §6.4.2
        self._unselect()
        self.state = State.AUTHENTICATED
        self.ok(tag, "CLOSE completed")

    async def cmd_UNSELECT(self, tag: str, args: list[Token]) -> None:
        self._unselect()
        self.state = State.AUTHENTICATED
        self.ok(tag, "UNSELECT completed")

    async def cmd_EXPUNGE(self, tag: str, args: list[Token]) -> None:
        await self._expunge(tag, None)

    async def cmd_UID_EXPUNGE(self, tag: str, args: list[Token]) -> None:
        selected = self._selected()
        positions = self._positions(_atom(_one(args, "UID EXPUNGE")), True, selected.snapshot)
        await self._expunge(tag, [selected.snapshot.uids[i] for i in positions])

    async def _expunge(self, tag: str, uids: list[int] | None) -> None:
        selected = self._selected()
        self._writable(selected)
        await self.ctx.store.folders.expunge(selected.folder_id, uids)
        await self.announce(allow_expunge=True)
        self.ok(tag, "EXPUNGE completed", self._modseq_code())

    async def cmd_FETCH(self, tag: str, args: list[Token]) -> None:
        await self._fetch(tag, args, uid_mode=False)

    async def cmd_UID_FETCH(self, tag: str, args: list[Token]) -> None:
        await self._fetch(tag, args, uid_mode=True)

    async def _fetch(self, tag: str, args: list[Token], *, uid_mode: bool) -> None:
        selected = self._selected()
        if len(args) not in (2, 3):
            raise bad("FETCH takes a sequence set, items and optional modifiers")
        # a FetchError is a Reply: BAD for a malformed item
        request = fetching.parse_fetch_items(args[1] if isinstance(args[1], list) else [args[1]])
        changed_since: int | None = None
        vanished = False
        if len(args) == 3:
            changed_since, vanished = self._fetch_modifiers(args[2], uid_mode)
        if request.modseq or changed_since is not None:
            self.enable_condstore()
        if not uid_mode:
            await self.announce(allow_expunge=False)
        snapshot = selected.snapshot
        positions = self._positions(_atom(args[0]), uid_mode, snapshot)
        if changed_since is not None:
            if vanished:  # RFC 7162 §3.2.6: the expunged UIDs the set names
                requested = parse_sequence_set(_atom(args[0]))
                star = max(snapshot.uids[-1] if snapshot.uids else 0,
                           snapshot.folder.uidnext - 1)
                saved = set(self.saved)
                gone = [u for u in await self.ctx.store.folders.expunged_since(
                    selected.folder_id, changed_since)
                    if (u in saved if requested.saved else requested.contains(u, star))]
                if gone:
                    self.write(b"* VANISHED (EARLIER) " + format_uid_set(gone).encode() +
                               b"\r\n")
            positions = [i for i in positions
                         if self._flags_of(selected, i)[1] > changed_since]
        include_modseq = request.modseq or changed_since is not None
        out = _Output(self.conn)
        try:
            if request.only_flags:
                for start in range(0, len(positions), FLAGS_BATCH):
                    await out.add(self._flags_lines(
                        selected, positions[start:start + FLAGS_BATCH],
                        uid=uid_mode or request.uid, flags=request.flags,
                        modseq=include_modseq))
            else:
                set_seen = request.sets_seen and not selected.read_only
                await self._fetch_full(out, selected, snapshot, positions, request,
                                       uid_mode=uid_mode, set_seen=set_seen,
                                       include_modseq=include_modseq)
        finally:  # what was rendered goes out, also before a tagged NO (UNKNOWN-CTE)
            out.write_pending()
        self.ok(tag, "FETCH completed")

    def _fetch_modifiers(self, arg: Token, uid_mode: bool) -> tuple[int | None, bool]:
        if not isinstance(arg, list) or not arg:
            raise bad("FETCH modifiers are a parenthesised list")
        changed_since: int | None = None
        vanished = False
        i = 0
        while i < len(arg):
            name = _atom(arg[i]).upper()
            if name == "CHANGEDSINCE" and i + 1 < len(arg):
                changed_since = _number(arg[i + 1])
                i += 2
            elif name == "VANISHED":
                if not uid_mode or not self.qresync:
                    raise bad("VANISHED needs UID FETCH and QRESYNC enabled")
                vanished = True
                i += 1
            else:
                raise bad(f"unknown FETCH modifier {name}")
        if vanished and changed_since is None:
            raise bad("VANISHED needs CHANGEDSINCE")
        return changed_since, vanished

    async def _fetch_full(self, out: _Output, selected: Selected, snapshot: Snapshot,
                          positions: list[int], request: fetching.FetchRequest, *,
                          uid_mode: bool, set_seen: bool, include_modseq: bool) -> None:
        store = self.ctx.store.folders
        slicer = _Slicer()
        options = {"uid_command": uid_mode, "include_modseq": include_modseq}
        for start in range(0, len(positions), FETCH_BATCH):
            batch = positions[start:start + FETCH_BATCH]
            uids = [snapshot.uids[i] for i in batch]
            data: dict[int, MessageData] = {}
            if request.needs_meta or request.needs_body:
                data = {m.uid: m for m in await store.message_data(selected.folder_id, uids)}
            seen_now: set[int] = set()
            if set_seen:
                unseen = [snapshot.uids[i] for i in batch
                          if "\\Seen" not in self._flags_of(selected, i)[0].split()]
                if unseen:
                    changed, _ = await store.store_flags(selected.folder_id, unseen, "+",
                                                         ["\\Seen"])
                    for uid, flags, modseq in changed:
                        selected.overlay[uid] = (flags, modseq)
                        seen_now.add(uid)
            if not request.needs_body:
                for i in batch:
                    uid = snapshot.uids[i]
                    meta = data.get(uid)
                    if request.needs_meta and meta is None:
                        continue  # expunged by another session meanwhile
                    await out.add(fetching.fetch_response(
                        i + 1, request, self._fetch_message(selected, i, uid, meta, None),
                        include_flags=uid in seen_now, **options))
                continue
            present = [(i, snapshot.uids[i], data[snapshot.uids[i]]) for i in batch
                       if snapshot.uids[i] in data]  # others were expunged meanwhile
            if request.reads_content and present:  # recorded before anything is served
                await self.ctx.store.audit_record([self._read_event(selected, uid, meta)
                                                   for _, uid, meta in present])
            for group in _by_octets(present):
                if len(group) == 1 and group[0][2].size > FETCH_CHUNK and request.streamable:
                    i, uid, meta = group[0]
                    message = self._fetch_message(selected, i, uid, meta, None)
                    await self._stream(out, meta.body_sha256, fetching.fetch_segments(
                        i + 1, request, message, include_flags=uid in seen_now, **options))
                    continue
                bodies = await store.bodies(meta.body_sha256 for _, _, meta in group)
                for i, uid, meta in group:
                    body = bodies.get(meta.body_sha256)
                    if body is None:
                        continue  # expunged meanwhile, its body gone with it
                    message = self._fetch_message(selected, i, uid, meta, body)
                    render = functools.partial(
                        fetching.fetch_pieces, i + 1, request, message,
                        include_flags=uid in seen_now, **options)
                    if len(body) >= OFFLOAD_SIZE:
                        pieces = await off_loop(render)
                    else:
                        pieces = render()
                        await slicer.tick()
                    for piece in pieces:
                        await out.add(piece)
                del bodies

    def _read_event(self, selected: Selected, uid: int, meta: MessageData) -> AuditEvent:
        """The audit trail's entry of serving a message's content (audit/events.py)."""
        actor = "" if self.identity is None else _actor(self.identity)
        return AuditEvent(READ, actor, selected.place.address, meta.message_id,
                          f"IMAP {self.conn.peer_address}",
                          f"{selected.place.folder} uid {uid}")

    def _fetch_message(self, selected: Selected, i: int, uid: int, meta: MessageData | None,
                       body: bytes | None) -> _FetchMessage:
        flags, modseq = self._flags_of(selected, i)
        return _FetchMessage(uid=uid, flags=flags, modseq=modseq,
                             internaldate=meta.internaldate if meta else 0.0,
                             size=meta.size if meta else 0, body=body)

    async def _stream(self, out: _Output, sha256: str,
                      segments: list[fetching.Segment]) -> None:
        """Send a response whose literals are ranges of a stored body, read from the
        store ``FETCH_CHUNK`` octets at a time, each written before the next is read."""
        store = self.ctx.store.folders
        for segment in segments:
            if isinstance(segment, bytes):
                await out.add(segment)
                continue
            await out.flush()
            position, end = segment[0], segment[0] + segment[1]
            while position < end:
                length = min(FETCH_CHUNK, end - position)
                piece = await store.body_piece(sha256, position, length)
                if piece is None or len(piece) != length:
                    # the literal announced cannot be completed: the client must not
                    # read what follows as message octets
                    log.warning("IMAP: body %s went away while it was being sent", sha256)
                    raise Logout
                self.conn.write(piece)
                del piece
                await self.conn.drain()
                position += length

    async def cmd_STORE(self, tag: str, args: list[Token]) -> None:
        await self._store(tag, args, uid_mode=False)

    async def cmd_UID_STORE(self, tag: str, args: list[Token]) -> None:
        await self._store(tag, args, uid_mode=True)

    async def _store(self, tag: str, args: list[Token], *, uid_mode: bool) -> None:
        selected = self._selected()
        unchanged_since: int | None = None
        if len(args) == 4 and isinstance(args[1], list):  # RFC 7162 §3.1.3 modifier
            modifier = args.pop(1)
            assert isinstance(modifier, list)
            if len(modifier) != 2 or _atom(modifier[0]).upper() != "UNCHANGEDSINCE":
                raise bad("the STORE modifier is (UNCHANGEDSINCE n)")
            unchanged_since = _number(modifier[1])
            self.enable_condstore()
        if len(args) != 3:
            raise bad("STORE takes a sequence set, an item and flags")
        item = _atom(args[1]).upper()
        silent = item.endswith(".SILENT")
        base = item.removesuffix(".SILENT")
        modes = {"FLAGS": "", "+FLAGS": "+", "-FLAGS": "-"}
        if base not in modes:
            raise bad(f"unknown STORE item {item}")
        flags = self._flags(args[2] if isinstance(args[2], list) else [args[2]])
        self._writable(selected)
        if not uid_mode:
            await self.announce(allow_expunge=False)
        snapshot = selected.snapshot
        positions = self._positions(_atom(args[0]), uid_mode, snapshot)
        uids = [snapshot.uids[i] for i in positions]
        changed, modified = await self.ctx.store.folders.store_flags(
            selected.folder_id, uids, modes[base], flags, unchanged_since=unchanged_since)
        for uid, new_flags, modseq in changed:
            selected.overlay[uid] = (new_flags, modseq)
        if self._new_keywords(selected, (f for _, f, _ in changed)):
            self.write(self._flags_announcement(selected))  # before the FETCH showing them
        report = set() if silent and not self.condstore else {u for u, _, _ in changed}
        if not silent:  # RFC 9051 §6.4.6: the flags of every message named
            report |= set(uids) - set(modified)
        lines = []
        for uid in sorted(report):
            i = snapshot.position(uid)
            if i is None:
                continue
            new_flags, modseq = self._flags_of(selected, i)
            lines.append(self._flags_line(i + 1, uid, new_flags, modseq,
                                          with_modseq=self.condstore,
                                          with_uid=uid_mode or self.qresync,
                                          with_flags=not silent))
        self.write(b"".join(lines))
        if modified:
            shown = modified if uid_mode else sorted(
                p + 1 for p in (snapshot.position(u) for u in modified) if p is not None)
            self.ok(tag, "Conditional STORE failed for some messages",
                    f"MODIFIED {format_uid_set(shown)}")
            return
        self.ok(tag, "STORE completed")

    async def cmd_COPY(self, tag: str, args: list[Token]) -> None:
        await self._copy(tag, args, uid_mode=False, move=False)

    async def cmd_UID_COPY(self, tag: str, args: list[Token]) -> None:
        await self._copy(tag, args, uid_mode=True, move=False)

    async def cmd_MOVE(self, tag: str, args: list[Token]) -> None:
        await self._copy(tag, args, uid_mode=False, move=True)

    async def cmd_UID_MOVE(self, tag: str, args: list[Token]) -> None:
        await self._copy(tag, args, uid_mode=True, move=True)

    async def _copy(self, tag: str, args: list[Token], *, uid_mode: bool, move: bool) -> None:
        selected = self._selected()
        if len(args) != 2:
            raise bad("COPY takes a sequence set and a mailbox")
        target_place, rights = await self.place(self.mailbox_arg(args[1]))
        if "i" not in rights:
            raise no("You may not add messages there", "NOPERM")
        if move:
            self._writable(selected)
        target = await self.ctx.store.folders.get(target_place.address, target_place.folder)
        if target is None:
            raise no("No such mailbox", "TRYCREATE")
        if not uid_mode and not move:
            await self.announce(allow_expunge=False)
        snapshot = selected.snapshot
        positions = self._positions(_atom(args[0]), uid_mode, snapshot)
        uids = [snapshot.uids[i] for i in positions]
        uidvalidity, source, copied = await self.ctx.store.folders.copy(
            selected.folder_id, uids, target.id, move=move)
        code = (f"COPYUID {uidvalidity} {format_uid_set(source)} {format_uid_set(copied)}"
                if source else None)
        if move:
            if code:
                self.write(b"* OK [" + code.encode() + b"] Moved\r\n")  # RFC 6851 §4.3
            await self.announce(allow_expunge=True)
            self.ok(tag, "MOVE completed")
            return
        self.ok(tag, "COPY completed", code)

    async def cmd_SEARCH(self, tag: str, args: list[Token]) -> None:
        await self._search(tag, args, uid_mode=False)

    async def cmd_UID_SEARCH(self, tag: str, args: list[Token]) -> None:
        await self._search(tag, args, uid_mode=True)

    async def _search(self, tag: str, args: list[Token], *, uid_mode: bool) -> None:
        if sorting.asks_partial(args):  # RFC 9394: answered with SORT's ESEARCH
            await sorting.search_partial(self, tag, args, uid_mode=uid_mode)
            return
        self._selected()
        program = searching.parse_search(args)  # a SearchError is a Reply
        returns = program.returns
        self.contexts.check(tag, returns)
        _, matched, _ = await self.matching(program, uid_mode=uid_mode)
        selected = self._selected()
        results = [uid if uid_mode else i + 1 for i, uid in matched]
        top = self._search_modseq(selected, matched, returns) \
            if program.has_modseq else None
        if returns is not None and "SAVE" in returns:
            kept = searching.saved_result([uid for _, uid in matched], returns)
            self.saved = kept
        if returns is None and self.utf8:
            returns = frozenset({"ALL"})  # RFC 9051 §6.4.4: IMAP4rev2 answers ESEARCH
        if returns is None:
            self.write(searching.search_response(results, top))
        else:
            self.write(searching.esearch_response(tag, uid_mode, results, returns, top))
        if self.contexts.wanted(returns):
            self.keep_updated(tag, uid_mode, program, [uid for _, uid in matched])
        self.ok(tag, "SEARCH completed")

    async def cmd_CANCELUPDATE(self, tag: str, args: list[Token]) -> None:
        self.contexts.cancel(args)  # RFC 5267 §4.3.5
        self.ok(tag, "CANCELUPDATE completed")

    def keep_updated(self, tag: str, uid_mode: bool, program: searching.SearchProgram,
                     uids: list[int], criteria: list[tuple[str, bool]] | None = None) -> None:
        """RETURN (UPDATE): keep the search's result up to date (contexts.py)."""
        selected = self._selected()
        self.write(self.contexts.open(tag, uid_mode, program, uids, criteria,
                                      selected.snapshot, selected.overlay))

    async def evaluate(self, program: searching.SearchProgram, positions: list[int]
                       ) -> list[tuple[int, int]]:
        """(position, UID) of the messages at ``positions`` of the selected folder that
        ``program`` (already resolved) matches."""
        selected = self._selected()
        return await self._evaluate(selected, selected.snapshot, program, positions)

    # SORT and THREAD (sorting.py: RFC 5256, RFC 5957, RFC 5267 §3, RFC 9394)

    async def cmd_SORT(self, tag: str, args: list[Token]) -> None:
        await sorting.sort_command(self, tag, args, uid_mode=False)

    async def cmd_UID_SORT(self, tag: str, args: list[Token]) -> None:
        await sorting.sort_command(self, tag, args, uid_mode=True)

    async def cmd_THREAD(self, tag: str, args: list[Token]) -> None:
        await sorting.thread_command(self, tag, args, uid_mode=False)

    async def cmd_UID_THREAD(self, tag: str, args: list[Token]) -> None:
        await sorting.thread_command(self, tag, args, uid_mode=True)

    async def matching(self, program: searching.SearchProgram, *, uid_mode: bool,
                       every: bool = False
                       ) -> tuple[int, list[tuple[int, int]], dict[int, int] | None]:
        """The selected folder's id, the (position, UID) of its messages that
        ``program`` matches, in folder order (SEARCH's evaluation, for SORT and THREAD;
        ``every``: the program is ALL, nothing to evaluate), and when the program has
        MODSEQ, each one's mod-sequence by UID."""
        selected = self._selected()
        if program.has_modseq:
            self.enable_condstore()
        if not uid_mode:
            await self.announce(allow_expunge=False)
        snapshot = selected.snapshot
        program.resolve(lambda text, uids: [
            snapshot.uids[i] for i in parse_sequence_set(text).uids_in(
                snapshot.uids, uids, saved=self.saved, strict=False)])
        matched = list(enumerate(snapshot.uids)) if every else \
            await self._evaluate(selected, snapshot, program)
        modseqs = {uid: self._flags_of(selected, i)[1] for i, uid in matched} \
            if program.has_modseq else None
        return selected.folder_id, matched, modseqs

    def _search_modseq(self, selected: Selected, matched: list[tuple[int, int]],
                       returns: frozenset[str] | None) -> int | None:
        """The MODSEQ a SEARCH with a MODSEQ key reports: the highest of the messages
        its answer names (RFC 7162 §3.1.6), so with RETURN (MIN) or (MAX) alone that of
        the lowest or highest match, with both the higher of the two (RFC 7162
        §3.1.10, RFC 4731 §3.1)."""
        if not matched:
            return None
        shown = matched
        if returns is not None and returns & {"MIN", "MAX"} and not returns & {"ALL", "COUNT"}:
            shown = ([matched[0]] if "MIN" in returns else []) + \
                ([matched[-1]] if "MAX" in returns else [])
        return max(self._flags_of(selected, i)[1] for i, _ in shown)

    async def _evaluate(self, selected: Selected, snapshot: Snapshot,
                        program: searching.SearchProgram, positions: list[int] | None = None
                        ) -> list[tuple[int, int]]:
        """(position, UID) of the messages that match (of those at ``positions``, else
        of all), loading only what the keys need."""
        needs = program.needs
        store = self.ctx.store.folders
        matched: list[tuple[int, int]] = []
        header_fields = getattr(program, "header_fields", None)
        summaries_only = ("headers" in needs and "body" not in needs and header_fields is not None
                          and header_fields <= _SUMMARY_FIELDS)
        loads_bodies = bool(needs & {"headers", "body"}) and not summaries_only
        batch_size = FETCH_BATCH if loads_bodies else SEARCH_BATCH
        candidates: list[int] = list(range(len(snapshot.uids))) if positions is None \
            else positions
        prefilter = program.prefilter
        known: dict[int, tuple[str | None, str | None, str | None, str | None]] | None = None
        if prefilter is not None and prefilter[0] in SUMMARY_FIELDS and prefilter[1].isascii():
            known = await store.containing(selected.folder_id, *prefilter)
            candidates = [i for i in candidates if snapshot.uids[i] in known]
        slicer = _Slicer()
        for start in range(0, len(candidates), batch_size):
            positions = candidates[start:start + batch_size]
            uids = [snapshot.uids[i] for i in positions]
            data: dict[int, MessageData] = {}
            if needs & {"size", "internaldate"} or loads_bodies:
                data = {m.uid: m for m in await store.message_data(selected.folder_id, uids)}
            if loads_bodies:
                await self._evaluate_bodies(selected, snapshot, program, positions, data,
                                            matched, slicer)
                continue
            summaries: dict[int, tuple[str | None, str | None, str | None, str | None]] = {}
            if summaries_only:
                summaries = known if known is not None else await store.summaries(
                    selected.folder_id, uids)
            for i in positions:
                uid = snapshot.uids[i]
                meta = data.get(uid)
                flags, modseq = self._flags_of(selected, i)
                message = _SearchMessage(i + 1, uid, flags, modseq,
                                         meta.size if meta else 0,
                                         meta.internaldate if meta else 0.0,
                                         b"" if summaries_only else None,
                                         summaries.get(uid, _NO_SUMMARY) if summaries_only
                                         else None)
                if program.matches(message):
                    matched.append((i, uid))
                await slicer.tick()
        return matched

    async def _evaluate_bodies(self, selected: Selected, snapshot: Snapshot,
                               program: searching.SearchProgram, positions: list[int],
                               data: dict[int, MessageData], matched: list[tuple[int, int]],
                               slicer: _Slicer) -> None:
        """The keys that read headers or bodies: bodies loaded at most ``FETCH_CHUNK``
        octets together (a larger one alone), a large one searched in the MIME threads."""
        store = self.ctx.store.folders
        missing = MessageData(0, "", 0, 0.0)  # expunged meanwhile: searched as empty
        items = [(i, snapshot.uids[i], data.get(snapshot.uids[i], missing)) for i in positions]
        for group in _by_octets(items):
            bodies = await store.bodies(meta.body_sha256 for _, _, meta in group
                                        if meta is not missing)
            for i, uid, meta in group:
                flags, modseq = self._flags_of(selected, i)
                raw = bodies.get(meta.body_sha256, b"")
                message = _SearchMessage(i + 1, uid, flags, modseq, meta.size,
                                         meta.internaldate, raw, None)
                if len(raw) >= OFFLOAD_SIZE:
                    hit = await off_loop(functools.partial(program.matches, message))
                else:
                    hit = program.matches(message)
                    await slicer.tick()
                if hit:
                    matched.append((i, uid))
            del bodies

    # ------------------------------------------------------------- updates

    def _woken(self, selected: Selected) -> Callable[[], None]:
        def woken() -> None:
            selected.pending = True
            if self.idling and self.selected is selected and (
                    self._push_task is None or self._push_task.done()):
                self._push_task = asyncio.get_running_loop().create_task(self._push())
        return woken

    async def _push(self) -> None:
        """Send the updates to an idling client (RFC 2177). IDLE waits for this task
        after DONE, so no command runs while it writes."""
        try:
            while self.idling and self.selected is not None and self.selected.pending:
                try:  # a person revoked while idling hears no more of the folder
                    await self._check_access()
                except Reply:  # unselected, and told so with [CLOSED]
                    await self.conn.drain()
                    return
                if not self.idling:
                    return
                await self.announce(allow_expunge=True)
                await self.conn.drain()
        except Exception as exc:  # the connection went away: its reader ends the session
            log.debug("IDLE push stopped: %s", exc)

    async def announce(self, *, allow_expunge: bool) -> None:
        """Send what changed in the selected folder since the session last looked."""
        async with self._announcing:
            await self._announce(allow_expunge)

    async def _announce(self, allow_expunge: bool) -> None:
        selected = self.selected
        if selected is None:
            return
        selected.pending = False
        old = selected.snapshot
        found = await self.cache.delta(old)
        if found is None:
            self.write(b"* BYE The selected mailbox was deleted\r\n")
            raise Logout
        new, delta = found
        selected.held_back = bool(delta.expunged) and not allow_expunge
        if selected.held_back:
            return
        if new is old:  # the session's own flag changes may still move its contexts
            self.write(b"".join(await self._context_updates(selected, old)))
            return
        out: list[bytes] = []
        if self._new_keywords(selected, (flags for _, flags, _ in delta.changed)):
            out.append(self._flags_announcement(selected))  # RFC 3501 §7.2.6
        if delta.expunged:
            if self.qresync:
                out.append(b"* VANISHED " + format_uid_set(delta.expunged).encode() + b"\r\n")
            else:
                positions = sorted((old.position(uid) for uid in delta.expunged),
                                   key=lambda p: -1 if p is None else p, reverse=True)
                out += [b"* %d EXPUNGE\r\n" % (p + 1) for p in positions if p is not None]
        if delta.expunged:
            selected.recent.difference_update(delta.expunged)
        if len(new.uids) != len(old.uids) - len(delta.expunged):
            out.append(b"* %d EXISTS\r\n" % len(new.uids))
            if not self.utf8:  # RFC 3501 §7.3.2: with the new size, the recent count
                await self._claim_recent(selected, new)
                out.append(b"* %d RECENT\r\n" % len(selected.recent))
        last_old = old.uids[-1] if old.uids else 0
        for uid, flags, modseq in delta.changed:
            if uid > last_old:
                continue  # new: announced by EXISTS
            mine = selected.overlay.get(uid)
            if mine is not None and mine[0] == flags and (not self.condstore
                                                          or mine[1] == modseq):
                continue  # the session's own change, reported already (with its MODSEQ)
            i = new.position(uid)
            if i is not None:
                out.append(self._flags_line(i + 1, uid, self._shown(selected, uid, flags),
                                            modseq, with_modseq=self.condstore,
                                            with_uid=True))
        selected.snapshot = new
        top = new.folder.highestmodseq
        selected.overlay = {u: v for u, v in selected.overlay.items() if v[1] > top}
        removals, additions = await self._context_updates(selected, old)
        self.write(removals + b"".join(out) + additions)  # RFC 5267 §4.3.3, §4.3.4

    async def _context_updates(self, selected: Selected, known: Snapshot
                               ) -> tuple[bytes, bytes]:
        """The ESEARCH updates of the live contexts (contexts.py): REMOVEFROM, to go
        before the EXPUNGE responses, and ADDTO, after EXISTS."""
        if not self.contexts:
            return b"", b""
        return await self.contexts.refresh(self, selected.folder_id, known,
                                           selected.snapshot, selected.overlay)

    @staticmethod
    def _new_keywords(selected: Selected, flag_texts: Iterable[str]) -> bool:
        """Add the keywords of ``flag_texts`` (each a message's flags) that the session
        has not announced yet; whether there was any."""
        known = selected.keywords
        found = False
        for text in flag_texts:
            for flag in text.split():
                if flag[0] != "\\" and flag.lower() not in known \
                        and flag.lower() not in _ANNOUNCED_LOWER:
                    known[flag.lower()] = flag
                    found = True
        return found

    @staticmethod
    def _flags_announcement(selected: Selected) -> bytes:
        """FLAGS and PERMANENTFLAGS (RFC 3501 §7.2.6, RFC 9051 §7.3.5): the flags and
        keywords of the mailbox. Sent at SELECT, and again before the first response
        that shows a keyword the session has not been told of (set by this session,
        another one, or a delivery), so that a client never meets a flag outside the
        FLAGS it knows."""
        flags = " ".join((*ANNOUNCED_FLAGS, *sorted(selected.keywords.values())))
        permanent = "" if selected.read_only else flags + " \\*"
        return (b"* FLAGS (" + flags.encode() + b")\r\n* OK [PERMANENTFLAGS (" +
                permanent.encode() + b")] Flags permitted\r\n")

    def _lower_highestmodseq(self) -> None:
        """QRESYNC (RFC 7162; RFC 5162's verified errata 1810): while expunges are held
        back, MODSEQs this command sent may be past theirs; a client that kept the
        highest and lost the connection would never learn of them. A HIGHESTMODSEQ
        below the held expunges (the session's snapshot is older than all of them)
        tells the client where to resynchronise from."""
        selected = self.selected
        if selected is not None and selected.held_back and self.qresync:
            self.write(b"* OK [HIGHESTMODSEQ %d] Expunges held back\r\n"
                       % selected.snapshot.folder.highestmodseq)

    # ------------------------------------------------------------- helpers

    async def _check_home(self, home: str) -> None:
        """A home mailbox (PER, PAT, or a program's APP) that the operator closed or
        deleted ends the session at its next command, as a revoked shared mailbox
        does; ``ctx.mailbox`` caches the answer for 2 seconds per process."""
        mailbox = await self.ctx.mailbox(home)
        if mailbox is None or not mailbox.active:
            self.write(b"* BYE The mailbox " + home.encode() + b" was closed\r\n")
            raise Logout

    def _check_psc_session(self) -> None:
        """A session logged in with a Pro Santé Connect token ends when that PSC session
        ended (the provider's back-channel logout, auth/pscsessions.py)."""
        identity, tokens = self.identity, self.ctx.tokens
        if identity is None or identity.psc is None or tokens is None:
            return
        if tokens.ended.ended(identity.psc):
            self.write(b"* BYE Your Pro Sante Connect session has ended: log in again\r\n")
            raise Logout

    async def _check_app_password(self, app_password: int) -> None:
        """A session logged in with an application password ends once it is revoked
        (read at most every ``APP_PASSWORD_CHECK_SECONDS``)."""
        now = time.monotonic()
        if now - self._app_password_seen < APP_PASSWORD_CHECK_SECONDS:
            return
        if not await self.ctx.store.logins.app_password_live(app_password):
            self.write(b"* BYE Your application password was revoked: log in again\r\n")
            raise Logout
        self._app_password_seen = now

    async def _check_access(self) -> None:
        """Rights on a shared folder are read at every command (revocation)."""
        selected = self.selected
        if selected is None or not selected.place.shared or self.identity is None:
            return
        access = await self.ctx.store.folders.access_to(self.identity.login,
                                                        selected.place.address)
        rights = rights_for(access) if access is not None else ""
        if "r" in rights:
            if "w" not in rights:
                selected.read_only = True
            return
        self._unselect()
        self.state = State.AUTHENTICATED
        self.write(b"* OK [CLOSED] Access to the mailbox was withdrawn\r\n")
        raise no("Your access to this mailbox was withdrawn", "NOPERM")

    async def place(self, name: str) -> tuple[Place, str]:
        """Resolve a client's mailbox name and the identity's rights there."""
        place = resolve(name, self.home)
        if place is None:
            raise no("No such mailbox", "NONEXISTENT")
        try:
            place = Place(place.address, normalise_name(place.folder), place.shared)
        except ValueError as exc:
            raise no(str(exc), "CANNOT") from exc
        if not place.shared:
            return place, ALL_RIGHTS
        assert self.identity is not None
        if self.identity.is_program:
            return place, ""
        access = await self.ctx.store.folders.access_to(self.identity.login, place.address)
        if access is None or (access.address == self.home):
            return place, ""
        return place, rights_for(access)

    def mailbox_arg(self, token: Token) -> str:
        """A mailbox name as the client wrote it (modified UTF-7, or UTF-8 once
        IMAP4rev2 is enabled). A name that cannot be decoded is a well-formed
        argument naming no mailbox: NO [CANNOT], not BAD, which RFC 9051 §7.1.3 (RFC
        3501 §7.1.3) keeps for commands that are not understood."""
        raw = _bytes(token)
        if self.utf8:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise no("Invalid mailbox name: not UTF-8", "CANNOT") from exc
        try:
            return mutf7.decode(raw)
        except ValueError as exc:
            raise no(f"Invalid mailbox name: {exc}", "CANNOT") from exc

    def _selected(self) -> Selected:
        if self.selected is None:
            raise bad("no mailbox selected")
        return self.selected

    def _unselect(self) -> None:
        self.saved = []  # RFC 5182 §2.1: $ is empty after SELECT, EXAMINE, CLOSE, UNSELECT
        self.contexts.clear()  # RFC 5267 §4.3: updates cease when no longer selected
        if self.selected is not None:
            self.cache.close(self.selected.folder_id, self.selected.follower)
            self.selected = None

    @staticmethod
    def _writable(selected: Selected) -> None:
        if selected.read_only:
            raise no("The mailbox is read-only", "READ-ONLY")

    def _flags(self, tokens: Sequence[Token]) -> list[str]:
        flags: list[str] = []
        for token in tokens:
            flag = _atom(token)
            if flag.startswith("\\"):
                system = _SYSTEM_LOWER.get(flag.lower())
                if system is None:
                    raise bad(f"{flag} is not a flag a client may set")
                flag = system
            elif not flag or any(c in flag for c in '(){%*"\\]') or not flag.isascii():
                raise bad(f"bad keyword {flag!r}")
            flags.append(flag)
        return flags

    def _positions(self, text: str, uid_mode: bool, snapshot: Snapshot) -> list[int]:
        return parse_sequence_set(text).uids_in(snapshot.uids, uid_mode, saved=self.saved)

    def _flags_of(self, selected: Selected, i: int) -> tuple[str, int]:
        """The flags a client sees for the message at ``i`` (``\\Recent`` included) and
        its MODSEQ."""
        snapshot = selected.snapshot
        uid = snapshot.uids[i]
        flags, modseq = snapshot.flags[i], snapshot.modseqs[i]
        if selected.overlay:
            mine = selected.overlay.get(uid)
            if mine is not None:
                flags, modseq = mine
        return self._shown(selected, uid, flags), modseq

    @staticmethod
    def _shown(selected: Selected, uid: int, flags: str) -> str:
        """Stored flags as this session shows them: ``\\Recent`` first when the
        message is recent here (RFC 3501 §2.3.2)."""
        if uid in selected.recent:
            return "\\Recent " + flags if flags else "\\Recent"
        return flags

    async def _claim_recent(self, selected: Selected, snapshot: Snapshot, *,
                            opening: bool = False) -> None:
        """The messages of ``snapshot`` that become \\Recent in this session (RFC 3501
        §2.3.2): those no session was told of yet, claimed in the store so that no other
        session, in this process or another, claims them too. An IMAP4rev2 session
        (RFC 9051 has no \\Recent) claims none. EXAMINE must not take \\Recent from
        anyone (RFC 3501 §6.3.2): a read-only session shows the messages no one claimed
        and claims nothing."""
        if self.utf8 or not snapshot.uids:
            return
        # the snapshot's marker is never above the store's (it only grows), and may be
        # below: claims do not change a folder's MODSEQ, so no snapshot follows them
        first = self.cache.claimed(selected.folder_id, snapshot.folder.recent_uid)
        if snapshot.uids[-1] < first:
            return
        if not selected.read_only:
            first = await self.cache.claim_recent(selected.folder_id, first,
                                                  snapshot.folder.uidnext)
        elif opening:  # EXAMINE reads the marker; its updates go by what it knows
            current = await self.ctx.store.folders.by_id(selected.folder_id)
            first = first if current is None else max(first, current.recent_uid)
        start = bisect.bisect_left(snapshot.uids, first)
        selected.recent.update(snapshot.uids[start:])

    def _flags_lines(self, selected: Selected, positions: Sequence[int], *, uid: bool,
                     flags: bool, modseq: bool) -> bytes:
        """FETCH responses of UID, FLAGS and MODSEQ only: the 100,000-message
        ``UID FETCH 1:* (FLAGS)`` of a client's resynchronisation, one format per line."""
        snapshot = selected.snapshot
        uids, all_flags, modseqs = snapshot.uids, snapshot.flags, snapshot.modseqs
        if selected.overlay or selected.recent:
            all_flags, modseqs = list(all_flags), list(modseqs)
            for i in positions:
                all_flags[i], modseqs[i] = self._flags_of(selected, i)
        parts = (["UID %d"] if uid else []) + (["FLAGS (%s)"] if flags else []) + \
            (["MODSEQ (%d)"] if modseq else [])
        line = "* %d FETCH (" + " ".join(parts) + ")\r\n"
        if uid and flags and not modseq:
            text = "".join([line % (i + 1, uids[i], all_flags[i]) for i in positions])
        else:
            text = "".join([line % ((i + 1,) + ((uids[i],) if uid else ()) +
                                    ((all_flags[i],) if flags else ()) +
                                    ((modseqs[i],) if modseq else ())) for i in positions])
        return text.encode("utf-8", "surrogateescape")

    @staticmethod
    def _flags_line(seq: int, uid: int, flags: str, modseq: int, *, with_modseq: bool = True,
                    with_uid: bool = True, with_flags: bool = True) -> bytes:
        items = []
        if with_uid:
            items.append(f"UID {uid}")
        if with_flags:
            items.append(f"FLAGS ({flags})")
        if with_modseq:
            items.append(f"MODSEQ ({modseq})")
        return f"* {seq} FETCH ({' '.join(items)})\r\n".encode()

    def _modseq_code(self) -> str | None:
        if not self.condstore or self.selected is None:
            return None
        return f"HIGHESTMODSEQ {self.selected.snapshot.folder.highestmodseq}"


_SUMMARY_FIELDS = frozenset({"subject", "from", "message-id", "date"})
_NO_SUMMARY: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None)


def _summary_fields(values: tuple[str | None, str | None, str | None, str | None]
                    ) -> dict[str, list[str]]:
    """The header fields stored beside the message (decoded at delivery): enough for
    SEARCH on them without reading the message."""
    names = ("subject", "from", "message-id", "date")
    return {name: [value] for name, value in zip(names, values, strict=True)
            if value is not None}


class _SearchMessage:
    """One message as SEARCH sees it (search.SearchMessage); a plain slotted class:
    a SEARCH builds one per message of the folder."""

    __slots__ = ("_summary", "flags", "internaldate", "modseq", "raw", "seq", "size", "uid")

    def __init__(self, seq: int, uid: int, flags: str, modseq: int, size: int,
                 internaldate: float, raw: bytes | None,
                 summary: tuple[str | None, str | None, str | None, str | None] | None
                 ) -> None:
        self.seq, self.uid, self.flags, self.modseq = seq, uid, flags, modseq
        self.size, self.internaldate, self.raw = size, internaldate, raw
        self._summary = summary

    @property
    def fields(self) -> dict[str, list[str]] | None:
        """Decoded header fields kept beside the message, when SEARCH reads only those."""
        return None if self._summary is None else _summary_fields(self._summary)


@dataclass(frozen=True, slots=True)
class _FetchMessage:
    uid: int
    flags: str
    modseq: int
    internaldate: float
    size: int
    body: bytes | None


def _refuse(reason: str) -> Callable[[], Awaitable[Identity]]:
    async def refuse() -> Identity:
        raise AuthFailed(reason)
    return refuse


def _bytes(token: Token) -> bytes:
    if isinstance(token, String):
        return token.value
    if isinstance(token, Atom):
        return token.value.encode()
    raise bad("expected a string")


def _text(token: Token) -> str:
    return _bytes(token).decode("utf-8", "replace")


def _atom(token: Token) -> str:
    if not isinstance(token, Atom):
        raise bad("expected an atom")
    return token.value


def _one(args: list[Token], command: str) -> Token:
    if len(args) != 1:
        raise bad(f"{command} takes one argument")
    return args[0]


def _number(token: Token) -> int:
    """A number of the protocol; MODSEQs are 63-bit (RFC 7162 §7: mod-sequence-value)."""
    text = _atom(token)
    if not text.isdigit() or len(text) > 19 or int(text) > 2**63 - 1:
        raise bad(f"expected a number below 2^63, not {text!r}")
    return int(text)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _describe(fields: list[Token]) -> str:
    return " ".join(_text(f) if not isinstance(f, list) else "(...)" for f in fields)[:200]


def _parse_date_time(text: str) -> float:
    """RFC 9051 date-time: "27-Nov-2026 02:53:41 +0100"."""
    try:
        moment = dt.datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError as exc:
        raise bad(f"bad date-time {text!r}") from exc
    return moment.timestamp()


def _actor(identity: Identity) -> str:
    return actor_of(identity.login, identity.psc.subject if identity.psc else None,
                    identity.app_password)
