"""What one IMAP client may cost the server: memory and event-loop time (issue 9 §2.5,
§2.6).

Each test runs an IMAP server of its own in the test's event loop, on a SQLite store in
the test's folder and the suite's TLS certificate, so that it can look at what the
server holds for a connection (the transport's write buffer, and tracemalloc over the
process) and at how long its event loop was held (a probe task that records the
longest gap between its wake-ups). Clients are raw TLS sockets and imaplib, in threads.
"""

from __future__ import annotations

import asyncio
import gc
import imaplib
import socket
import ssl
import threading
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bench.imap_limits import hostile_message, large_message
from bench.imap_server import NoTrustSpace

from mssante.auth.passwords import hash_password
from mssante.config import Listener, OperatorConfig, OperatorSettings, TrustSettings
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.imap import server as imap_server
from mssante.imap import session as imap_session
from mssante.imap.server import ImapListeners, start_imap
from mssante.operator.runtime import OperatorRuntime
from mssante.store import Store, open_store
from tests.imap.conftest import HOSPITAL, tls_context


@dataclass
class Bare:
    """An IMAP server alone on its store, and one account with a PER mailbox."""

    store: Store
    listeners: ImapListeners
    port: int
    login: str
    password: str
    context: ssl.SSLContext

    async def add(self, folder: str, bodies: list[bytes]) -> None:
        found = await self.store.folders.get(self.login, folder)
        if found is None:
            await self.store.folders.create(self.login, folder)
            found = await self.store.folders.get(self.login, folder)
        assert found is not None
        for body in bodies:
            await self.store.folders.append(found.id, body)

    def raw(self, *, receive_buffer: int | None = None) -> ssl.SSLSocket:
        """A TLS socket, logged in (the caller reads and writes it in a thread)."""
        sock = socket.socket()
        if receive_buffer is not None:  # before connect, so that the window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", self.port))
        tls = self.context.wrap_socket(sock, server_hostname="127.0.0.1")
        _until(tls, b"* OK")
        tls.sendall(f'L LOGIN "{self.login}" "{self.password}"\r\n'.encode())
        _until(tls, b"L OK")
        return tls

    def imaplib(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=self.context, timeout=60)
        client.login(self.login, self.password)
        return client


def _until(sock: ssl.SSLSocket, start: bytes) -> None:
    """Read until a line starts with ``start`` (the responses before are dropped)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection before {start!r}: {data[-200:]!r}"
        data += chunk
        if data.startswith(start) or b"\n" + start in data:
            return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def bare(environment: Any, tmp_path: Path) -> AsyncIterator[Bare]:
    tls = environment.service(HOSPITAL).config.tls
    store = await open_store(f"sqlite:///{tmp_path / 'operator.sqlite3'}")
    login, password = f"t{uuid.uuid4().hex[:10]}@{HOSPITAL}", uuid.uuid4().hex
    await store.create_person(login, PersonKind.HEALTH, "Test",
                              password_hash=hash_password(password))
    await store.create_mailbox(login, MailboxType.PER, rules=Rules(), owner=login)
    port = _free_port()
    config = OperatorConfig(
        path=Path("operator.toml"), tls=tls,
        operator=OperatorSettings(domains=[HOSPITAL], hostname=f"imap.{HOSPITAL}"),
        trust=TrustSettings(url="https://127.0.0.1:9"), imaps=Listener("127.0.0.1", port))
    listeners = await start_imap(OperatorRuntime(config.operator, store, NoTrustSpace()),
                                 config)
    try:
        yield Bare(store, listeners, port, login, password, tls_context(environment))
    finally:
        listeners.close()
        await listeners.wait_closed()
        await store.close()


def _buffered(transport: Any) -> int:
    """Octets waiting in a TLS connection's write buffers: the TLS layer's and those of
    the socket transport beneath it (asyncio's, which the test's loop runs), where
    whatever the TLS layer encrypts goes."""
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    assert inner is not None, "expected asyncio's TLS transport"
    return int(transport.get_write_buffer_size()) + int(inner.get_write_buffer_size())


async def _until_true(predicate: Any, what: str, timeout: float = 60.0) -> None:
    """Wait for something to happen (polling), or fail saying what did not."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


# --- §2.5 memory ---------------------------------------------------------------------------

MESSAGE_SIZE = 3 << 20  # > FETCH_CHUNK: streamed from the store
MESSAGES = 6  # 18 MB in all: more than the kernel's socket buffers take


@pytest.mark.parametrize("items", ["BODY.PEEK[]", "BODY.PEEK[TEXT]", "(RFC822.SIZE BODY[])"])
async def test_fetch_memory_amplification_is_bounded(bare: Bare, items: str) -> None:
    """A client asks every large message and reads nothing: the server waits for it with
    at most MAX_BUFFERED octets in the connection's write buffer, and holds at most one
    message besides (tracemalloc's peak over the whole process while it answered).
    Before, it loaded 200 bodies and wrote the whole answer at once: 18 MB here."""
    await bare.add("INBOX", [large_message(MESSAGE_SIZE, n) for n in range(MESSAGES)])
    sock = await asyncio.to_thread(bare.raw, receive_buffer=32 * 1024)
    try:
        await asyncio.to_thread(sock.sendall, b"S SELECT INBOX\r\n")
        await asyncio.to_thread(_until, sock, b"S OK")
        [writer] = bare.listeners.connections
        transport = writer.transport
        tracemalloc.start()
        try:
            await asyncio.to_thread(sock.sendall, b"F FETCH 1:* " + items.encode() + b"\r\n")
            # the session waits for the client once its buffer is past the high-water mark
            await _until_true(lambda: _buffered(transport) > imap_session.WRITE_HIGH_WATER,
                              "the server to fill the connection's buffers")
            buffered = _buffered(transport)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert buffered <= imap_session.MAX_BUFFERED, buffered
        # one message (and, for a section, its copy) at most, however many are asked
        assert peak < imap_session.MAX_BUFFERED + 3 * MESSAGE_SIZE, peak
    finally:
        sock.close()
    await _until_true(lambda: not bare.listeners.connections, "the session to end")


async def test_a_streamed_fetch_gives_the_stored_octets(bare: Bare) -> None:
    """BODY[] streamed from the store in pieces, a partial across pieces, and a section
    of a large message: each answer is what the store holds."""
    bodies = [large_message(imap_session.FETCH_CHUNK * 2 + 123, n) for n in range(2)]
    small = large_message(5000, 9)
    await bare.add("INBOX", [*bodies, small])

    def scenario() -> list[Any]:
        client = bare.imaplib()
        try:
            client.select("INBOX", readonly=True)
            whole = client.fetch("1:3", "(UID RFC822.SIZE BODY.PEEK[])")
            middle = client.fetch("2", f"(BODY.PEEK[]<{imap_session.FETCH_CHUNK - 10}.20>)")
            text = client.fetch("1", "(BODY.PEEK[TEXT])")
            return [whole, middle, text]
        finally:
            client.logout()

    whole, middle, text = await asyncio.to_thread(scenario)
    assert whole[0] == "OK" and middle[0] == "OK" and text[0] == "OK"
    got = [part for part in whole[1] if isinstance(part, tuple)]
    assert [literal for _, literal in got] == [*bodies, small]
    assert all(b"RFC822.SIZE %d" % len(body) in head
               for (head, _), body in zip(got, [*bodies, small], strict=True))
    start = imap_session.FETCH_CHUNK - 10
    assert middle[1][0][1] == bodies[1][start:start + 20]
    assert text[1][0][1] == bodies[0][bodies[0].index(b"\r\n\r\n") + 4:]


async def test_a_client_that_never_reads_is_cut_off(bare: Bare,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that leaves the answers unread WRITE_TIMEOUT seconds is disconnected
    (its transport aborted: a close would wait for the buffer to empty), and its session
    and buffers go with it."""
    monkeypatch.setattr(imap_server, "WRITE_TIMEOUT", 0.5)
    await bare.add("INBOX", [large_message(MESSAGE_SIZE, n) for n in range(MESSAGES)])
    sock = await asyncio.to_thread(bare.raw, receive_buffer=32 * 1024)
    try:
        await asyncio.to_thread(sock.sendall, b"S SELECT INBOX\r\nF FETCH 1:* BODY.PEEK[]\r\n")
        await _until_true(lambda: not bare.listeners.connections,
                          "the server to cut the client off")
    finally:
        sock.close()


async def test_a_body_gone_while_streamed_ends_the_connection(bare: Bare) -> None:
    """The body being streamed is expunged by another session and its last reference
    goes: the literal announced cannot be completed, so the connection is closed
    rather than sending other octets in its place."""
    size = 4 * MESSAGE_SIZE  # more than the kernel's socket buffers take
    await bare.add("INBOX", [large_message(size, n) for n in range(2)])
    sock = await asyncio.to_thread(bare.raw, receive_buffer=32 * 1024)
    try:
        await asyncio.to_thread(sock.sendall, b"S SELECT INBOX\r\n")
        await asyncio.to_thread(_until, sock, b"S OK")
        [writer] = bare.listeners.connections
        await asyncio.to_thread(sock.sendall, b"F FETCH 2 BODY.PEEK[]\r\n")
        await _until_true(lambda: _buffered(writer.transport) > imap_session.WRITE_HIGH_WATER,
                          "the server to wait for the client")
        inbox = await bare.store.folders.get(bare.login, "INBOX")
        assert inbox is not None
        await bare.store.folders.store_flags(inbox.id, [2], "+", ["\\Deleted"])
        await bare.store.folders.expunge(inbox.id, [2])

        def read_all() -> bytes:
            data = b""
            while chunk := sock.recv(1 << 20):
                data += chunk
            return data

        received = await asyncio.to_thread(read_all)
    finally:
        sock.close()
    head, _, literal = received.partition(b"}\r\n")
    assert head.endswith(b"BODY[] {%d" % size), head[-80:]
    assert 0 < len(literal) < size  # cut short, and nothing after it
    assert large_message(size, 1).startswith(literal)


# --- §2.6 the event loop ---------------------------------------------------------------------

HOSTILE_PARTS = 20_000  # 1.9 MB a message
COPIES = 8


class LoopProbe:
    """A task in the server's event loop that wakes every millisecond and keeps the
    longest gap between two wake-ups: how long the loop was held by anything else."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now


def _while_another_noops(command: Callable[[], tuple[str, list[Any]]],
                         other: imaplib.IMAP4) -> tuple[float, tuple[str, list[Any]], list[str]]:
    """Run ``command`` while ``other`` sends NOOPs one after the other: (its duration,
    its result, the statuses of the NOOPs answered while it ran)."""
    running = threading.Event()
    running.set()
    answered: list[str] = []

    def noops() -> None:
        while running.is_set():
            typ, _ = other.noop()
            if running.is_set():
                answered.append(typ)

    side = threading.Thread(target=noops)
    side.start()
    start = time.monotonic()
    try:
        result = command()
    finally:
        took = time.monotonic() - start
        running.clear()
        side.join()
    return took, result, answered


async def test_search_text_does_not_stall_other_clients(bare: Bare) -> None:
    """SEARCH TEXT and FETCH BODYSTRUCTURE over messages of 20,000 base64 parts: another
    client's NOOPs are answered while the command runs, and the event loop is never held
    for a noticeable share of the command (before, it was held from the first message
    parsed to the last: the whole command). The answers are right, and the MIME walk's
    part limit (mime.MAX_PARTS) still serves every message."""
    await bare.add("Parts", [hostile_message(HOSTILE_PARTS, n, needle=b"aiguille" if n == 5
                                             else None) for n in range(COPIES)])
    worker = await asyncio.to_thread(bare.imaplib)
    other = await asyncio.to_thread(bare.imaplib)
    try:
        await asyncio.to_thread(worker.select, "Parts", True)
        await asyncio.to_thread(other.select, "Parts", True)
        commands: list[tuple[str, Callable[[], tuple[str, list[Any]]]]] = [
            ("SEARCH", lambda: worker.search(None, "TEXT", "aiguille")),
            ("FETCH", lambda: worker.fetch("1:*", "(BODYSTRUCTURE)"))]
        for name, command in commands:
            # A full collection of the whole test session's heap can hold the loop for
            # half a second by itself: measured without it, it is the server's own work.
            gc.collect()
            gc.disable()
            try:
                async with LoopProbe() as probe:
                    took, (typ, data), answered = await asyncio.to_thread(
                        _while_another_noops, command, other)
            finally:
                gc.enable()
            assert typ == "OK", data
            if name == "SEARCH":
                assert data == [b"6"]
            else:
                structures = [d for d in data if isinstance(d, bytes) and b"BODYSTRUCTURE" in d]
                assert len(structures) == COPIES
                assert all(s.count(b'("text" "plain"') == 10_000 for s in structures)
            assert answered and set(answered) == {"OK"}, name  # others were served
            # the loop was held at most a small share of the command, not the whole of it
            assert probe.longest < took / 4, (name, probe.longest, took)
    finally:
        await asyncio.to_thread(worker.logout)
        await asyncio.to_thread(other.logout)
