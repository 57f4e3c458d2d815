"""Run the trust space's HTTPS service with uvicorn, inside another program.

Invariants:
- The listening socket is bound here, before uvicorn starts: a busy port raises
  OSError to the caller (uvicorn would call ``sys.exit``), and port 0 works.
- uvicorn installs no signal handlers (``capture_signals`` is a no-op): the
  program that embeds the server owns SIGINT/SIGTERM.
- Cancelling ``serve`` shuts uvicorn down gracefully (listener closed,
  connections finished or cut after ``GRACEFUL_SHUTDOWN`` seconds) before the
  cancellation propagates.
- uvicorn does not touch the logging configuration (``log_config=None``).
- The listener asks for (does not require) a client certificate; see ``tls``.
- The directory's store is opened before the server listens and closed after it
  stopped; a directory that cannot be opened stops the start with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from mssante.directory.service import DirectoryService
from mssante.directory.store import open_directory
from mssante.errors import TrustSpaceUnavailable
from mssante.trustspace.app import create_app
from mssante.trustspace.service import TrustSpace
from mssante.trustspace.tls import PeerCertificateProtocol

GRACEFUL_SHUTDOWN = 5.0  # seconds


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone and reports when it listens."""

    def __init__(self, config: uvicorn.Config, ready: asyncio.Event | None) -> None:
        super().__init__(config)
        self._ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._ready is not None:
            self._ready.set()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP, and without it every response waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_socket(trust_space: TrustSpace, sock: socket.socket, *,
                       ready: asyncio.Event | None = None) -> None:
    """Serve HTTPS on an already bound socket until cancelled."""
    try:
        store = await open_directory(trust_space.directory_database)
    except BaseException:
        sock.close()
        raise
    directory = DirectoryService(store, trust_space.extract_dir,
                                 extract_interval=trust_space.extract_interval)
    try:
        await _serve(trust_space, directory, sock, ready)
    finally:
        await directory.close()
        await store.close()


async def _serve(trust_space: TrustSpace, directory: DirectoryService, sock: socket.socket,
                 ready: asyncio.Event | None) -> None:
    config = uvicorn.Config(
        create_app(trust_space, directory,
                   base_url=trust_space.base_url(sock.getsockname()[1])),
        http=PeerCertificateProtocol,
        ssl_certfile=trust_space.https_cert.cert_file,
        ssl_keyfile=trust_space.https_cert.key_file,
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        ssl_ca_certs=str(trust_space.root_cert_file),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
    )
    server = _EmbeddedServer(config, ready)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="trust-space-https")
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise
    finally:
        sock.close()


async def serve(trust_space: TrustSpace, host: str, port: int, *,
                ready: asyncio.Event | None = None) -> None:
    """Serve the trust space over HTTPS on ``host:port`` until cancelled."""
    await serve_socket(trust_space, bind(host, port), ready=ready)


class RunningTrustSpace:
    """The HTTPS service running in a background task: ``async with`` or start/stop."""

    def __init__(self, trust_space: TrustSpace, host: str = "127.0.0.1", port: int = 0) -> None:
        self.trust_space = trust_space
        self.host = host
        self.port = port
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def start(self) -> None:
        """Listen (keeping the same port across restarts) and wait until serving."""
        if self._task is not None:
            return
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        ready = asyncio.Event()
        self._task = asyncio.create_task(serve_socket(self.trust_space, sock, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            task, self._task = self._task, None
            await task  # re-raises why it stopped
            raise TrustSpaceUnavailable("trust space HTTPS server stopped while starting")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> RunningTrustSpace:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
