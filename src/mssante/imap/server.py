"""IMAP listeners of an operator: 143 (STARTTLS) and 993 (implicit TLS, RFC 8314).

Implementation notes:
- One asyncio task per connection reads a command (its line, then each literal
  the line announces), parses it without I/O (parser.py), lets the session run it
  and writes the tagged reply. Commands of one connection run one at a time, in
  order; only IDLE's pushes write between commands (session.py).
- Every connection defends itself (RFC 9051 §6 leaves limits to the server):
  a line longer than ``MAX_LINE`` or a literal longer than its limit (APPENDLIMIT
  for APPEND, ``MAX_LITERAL`` otherwise) is refused, and the connection closed
  when the client cannot be resynchronised; ``MAX_BAD`` bad commands in a row
  close it; so does silence: ``LOGIN_TIMEOUT`` before authentication,
  ``AUTO_LOGOUT`` after (RFC 9051 §5.4: at least 30 minutes). Before
  authentication a whole command is held to ``MAX_LINE`` octets, literals
  included, and APPEND's literal gets no more than any other.
- Octets a client sends after STARTTLS and before the TLS handshake close the
  connection: they came in plaintext and must not run as if sent over TLS.
- A synchronising literal gets ``+ Ready`` only after its size was accepted; a
  non-synchronising one (LITERAL+, RFC 7888) over the limit cannot be refused
  without reading it, so the connection is closed after a BAD (RFC 7888 §4).
- Timeouts are one timer per connection (``call_later``), reset at each line,
  not a task per read: ten thousand idle clients cost their sockets and sessions.
- Closing: once the session ends (LOGOUT, BYE), the transport is closed and cut after
  ``CLOSE_GRACE`` at most: under TLS the server does not wait for the client's
  close_notify, which a client that read its BYE may never send.
- Writing: the transport's high-water mark is ``WRITE_HIGH_WATER`` (session.py), and
  the session waits (``drain``) after each piece it writes (session.py ``_Output``),
  so a client that does not read costs at most ``MAX_BUFFERED`` octets of buffer. A
  client that leaves answers unread for ``WRITE_TIMEOUT`` seconds is cut off (the
  transport aborted: a close would wait for the buffer to empty).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass

from mssante.config import Listener, OperatorConfig
from mssante.imap import wire
from mssante.imap.cache import FolderCache
from mssante.imap.errors import Reply
from mssante.imap.parser import ParseError, parse_command, split_literal
from mssante.imap.session import WRITE_HIGH_WATER, Limits, Logout, Session
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.tls import server_context

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024  # octets of one line outside literals
MAX_LITERAL = 64 * 1024  # octets of a literal in any command but APPEND
MAX_BAD = 10  # bad commands in a row before the connection is closed
LOGIN_TIMEOUT = 60.0  # seconds of silence allowed before authentication
AUTO_LOGOUT = 31 * 60.0  # seconds of silence allowed after (RFC 9051 §5.4)
MAX_COMMAND = 64 * 1024 * 1024  # octets of one whole command (literals included)
WRITE_TIMEOUT = 10 * 60.0  # seconds a client may leave the server's answers unread
CLOSE_GRACE = 0.25  # seconds a closing connection's last octets have before it is cut


class _Closed(Exception):
    """The client went away or was sent away."""


class ImapConnection:
    """The socket side of a session: reading lines and literals, writing, TLS."""

    __slots__ = ("_timer", "_tls", "_tls_context", "reader", "timeout", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tls_context: ssl.SSLContext, *, implicit_tls: bool) -> None:
        self.reader = reader
        self.writer = writer
        self._tls_context = tls_context
        self._tls = implicit_tls
        self._timer: asyncio.TimerHandle | None = None
        self.timeout = LOGIN_TIMEOUT
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    @property
    def tls(self) -> bool:
        return self._tls

    @property
    def peer_address(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    def peer_certificate(self) -> bytes | None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        der: bytes | None = ssl_object.getpeercert(binary_form=True)
        return der

    def write(self, data: bytes) -> None:
        if data:
            self.writer.write(data)

    async def drain(self) -> None:
        transport = self.writer.transport
        if transport.get_write_buffer_size() <= WRITE_HIGH_WATER:
            await self.writer.drain()  # no wait: only reports a lost connection
            return
        stalled = asyncio.get_running_loop().call_later(WRITE_TIMEOUT, transport.abort)
        try:
            await self.writer.drain()
        finally:
            stalled.cancel()

    async def start_tls(self) -> None:
        # What the client pipelined after STARTTLS came in plaintext: it must not run
        # as if sent over TLS (STARTTLS injection, CVE-2011-0411). asyncio keeps it in
        # the reader's buffer, which has no public accessor; such a client is sent away.
        if getattr(self.reader, "_buffer", None):
            log.warning("IMAP client sent data after STARTTLS before the handshake")
            raise _Closed
        await self.writer.start_tls(self._tls_context)
        self._tls = True

    def _arm(self, timeout: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expire)

    def _expire(self) -> None:
        self.writer.write(b"* BYE Autologout: idle for too long\r\n")
        self.writer.close()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def readline(self, timeout: float | None = None) -> bytes:
        self._arm(timeout or self.timeout)
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            raise _TooLong from exc
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _Closed from exc
        finally:
            self.disarm()
        return line

    async def read_exactly(self, n: int) -> bytes:
        self._arm(self.timeout)
        try:
            return await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _Closed from exc
        finally:
            self.disarm()


class _TooLong(Exception):
    """A line over MAX_LINE."""


async def read_command(conn: ImapConnection, max_message: int | None,
                       max_command: int = MAX_COMMAND) -> bytes:
    """One command as the client sent it (literals inline), without its final CRLF.

    ``max_message`` is the limit of APPEND's literal; None before authentication,
    when APPEND is not allowed and its literal has the limit of any other, and
    ``max_command`` keeps the whole command as small as a line."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = await conn.readline()
        if not line.endswith(b"\r\n"):
            line = line[:-1] + b"\r\n"  # a bare LF ends a line too
        total += len(line)
        body = line[:-2]
        literal = split_literal(body)
        if literal is None:
            parts.append(body)
            return b"".join(parts)
        size, non_sync, _binary = literal
        append = max_message is not None and _is_append(parts[0] if parts else body)
        limit = max_message if append and max_message is not None else MAX_LITERAL
        if size > limit or total + size > max_command:
            tag = (parts[0] if parts else body).split(b" ", 1)[0].decode("ascii", "replace")
            if non_sync:
                conn.write(wire.tagged(tag, "BAD", f"literal of {size} octets refused",
                                       "TOOBIG" if append else None))
                conn.write(b"* BYE Cannot resynchronise after a refused literal\r\n")
                raise _Closed
            raise _TaggedReply(tag, Reply(
                "NO" if append else "BAD",
                f"literal of {size} octets over the limit of {min(limit, max_command)}",
                "TOOBIG" if append else None))
        if not non_sync:
            conn.write(b"+ Ready for literal data\r\n")
            await conn.drain()
        data = await conn.read_exactly(size)
        total += size
        parts.append(line)
        parts.append(data)


def _is_append(first_line: bytes) -> bool:
    words = first_line.split(b" ", 2)
    return len(words) > 1 and words[1].upper() == b"APPEND"


async def serve_connection(ctx: OperatorRuntime, cache: FolderCache, limits: Limits,
                           reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           tls_context: ssl.SSLContext, *, implicit_tls: bool) -> None:
    conn = ImapConnection(reader, writer, tls_context, implicit_tls=implicit_tls)
    session = Session(ctx, cache, conn, limits)
    bad_in_a_row = 0
    try:
        conn.write(session.greeting())
        while True:
            authenticated = session.identity is not None
            conn.timeout = AUTO_LOGOUT if authenticated else LOGIN_TIMEOUT
            try:
                # before authentication nothing needs more than a line's worth
                raw = await read_command(conn, limits.max_message if authenticated else None,
                                         MAX_COMMAND if authenticated else MAX_LINE)
            except _TooLong:
                conn.write(b"* BYE Line too long\r\n")
                break
            except _TaggedReply as refused:
                conn.write(wire.tagged(refused.tag, refused.reply.status, refused.reply.text,
                                       refused.reply.code))
                await conn.drain()
                continue
            try:
                command = parse_command(raw)
            except ParseError as exc:
                bad_in_a_row += 1
                conn.write(wire.tagged(exc.tag, "BAD", str(exc)) if exc.tag
                           else b"* BAD " + str(exc).encode() + b"\r\n")
                if bad_in_a_row >= MAX_BAD:
                    conn.write(b"* BYE Too many bad commands\r\n")
                    break
                await conn.drain()
                continue
            try:
                await session.handle(command)
                bad_in_a_row = 0
            except Reply as reply:
                if reply.status == "BAD":
                    bad_in_a_row += 1
                else:
                    bad_in_a_row = 0
                if session.selected is not None:
                    try:
                        await session.announce(allow_expunge=False)
                    except Logout:
                        raise
                conn.write(wire.tagged(command.tag, reply.status, reply.text, reply.code))
                if bad_in_a_row >= MAX_BAD:
                    conn.write(b"* BYE Too many bad commands\r\n")
                    break
            await conn.drain()
    except (Logout, _Closed, ConnectionError, ssl.SSLError):
        pass
    except _TooLong:  # a line read inside a command: AUTHENTICATE's response, IDLE's DONE
        conn.write(b"* BYE Line too long\r\n")
    except Exception:
        log.exception("IMAP session failed")
        with contextlib.suppress(Exception):  # the transport may be gone
            conn.write(b"* BYE Internal server error\r\n")
    finally:
        conn.disarm()
        session.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
            await writer.drain()
        await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection once the server said its last words (LOGOUT's BYE and OK,
    RFC 9051 §6.1.3). Under TLS, closing sends close_notify and asyncio then waits for
    the client's own (30 seconds by default): a client that never sends it, having
    read the BYE, would keep the connection open that long. The server does not wait
    for it (RFC 8446 §6.1: the closing side need not read the peer's close_notify):
    what is written has ``CLOSE_GRACE`` seconds to go out, then the transport is cut."""
    try:
        writer.close()
    except RuntimeError:  # the loop is closing
        return
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE)
    except (TimeoutError, ConnectionError, ssl.SSLError):
        writer.transport.abort()


class _TaggedReply(Exception):
    def __init__(self, tag: str, reply: Reply) -> None:
        super().__init__(reply.text)
        self.tag = tag
        self.reply = reply


@dataclass
class ImapListeners:
    servers: list[asyncio.Server]
    ports: dict[str, int]  # "imap" | "imaps" -> bound port
    cache: FolderCache
    connections: set[asyncio.StreamWriter]

    def close(self) -> None:
        """Stop listening and tell every client goodbye (RFC 9051 §7.1.5 BYE)."""
        for server in self.servers:
            server.close()
        for writer in list(self.connections):
            with contextlib.suppress(Exception):
                writer.write(b"* BYE Server shutting down\r\n")
                writer.close()

    async def wait_closed(self) -> None:
        for server in self.servers:
            await server.wait_closed()
        for _ in range(50):  # the connection tasks end once their transports closed
            if not self.connections:
                break
            await asyncio.sleep(0.02)
        # a TLS client that never answers the close (close_notify) would keep its
        # transport open, and the event loop could not close: cut it
        for writer in list(self.connections):
            writer.transport.abort()
        for _ in range(50):
            if not self.connections:
                break
            await asyncio.sleep(0.02)
        await self.cache.stop()


async def start_imap(ctx: OperatorRuntime, config: OperatorConfig, *,
                     reuse_port: bool = False) -> ImapListeners:
    """Listen on the configured IMAP ports (a port 0 listener is not started);
    ``reuse_port``: shared with the operator's other workers."""
    tls = config.tls
    # the card or organisation certificate is optional: EXTERNAL needs it, LOGIN does not
    tls_context = server_context(tls.cert_file, tls.key_file, tls.ca_file,
                                 client_cert="optional")
    cache = FolderCache(ctx.store.folders, poll=ctx.store.dialect == "sqlite")
    cache.start()
    ctx.store.listen_for_changes()
    limits = Limits(max_message=config.operator.max_message_size)
    servers: list[asyncio.Server] = []
    ports: dict[str, int] = {}
    connections: set[asyncio.StreamWriter] = set()

    async def listen(name: str, listener: Listener, implicit: bool) -> None:
        if listener.port == 0:
            return

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.add(writer)
            try:
                await serve_connection(ctx, cache, limits, reader, writer, tls_context,
                                       implicit_tls=implicit)
            finally:
                connections.discard(writer)

        server = await asyncio.start_server(
            handle, listener.host, listener.port, limit=MAX_LINE,
            ssl=tls_context if implicit else None, backlog=1024,
            reuse_port=reuse_port or None)
        servers.append(server)
        ports[name] = server.sockets[0].getsockname()[1]

    try:
        await listen("imap", config.imap, implicit=False)
        await listen("imaps", config.imaps, implicit=True)
    except BaseException:
        for server in servers:
            server.close()
        await cache.stop()
        raise
    return ImapListeners(servers, ports, cache, connections)

