"""Run the trust space's HTTPS service inside another program (``mssante.httpserve``:
bound socket first, no signal handlers, graceful shutdown on cancellation).

Invariants:
- The listener asks for (does not require) a client certificate; see ``tls``. Its
  TLS is the project's one policy (``pki.tls.server_context``).
- The directory's store is opened before the server listens and closed after it
  stopped; a directory that cannot be opened stops the start with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

from mssante.directory.service import DirectoryService
from mssante.directory.store import open_directory
from mssante.errors import TrustSpaceUnavailable
from mssante.httpserve import bind, wait_started
from mssante.httpserve import serve as serve_https
from mssante.pki.tls import server_context
from mssante.trustspace.app import create_app
from mssante.trustspace.service import TrustSpace
from mssante.trustspace.tls import PeerCertificateProtocol


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
        sock.close()  # already closed unless the server could not be set up
        await directory.close()
        await store.close()


async def _serve(trust_space: TrustSpace, directory: DirectoryService, sock: socket.socket,
                 ready: asyncio.Event | None) -> None:
    app = create_app(trust_space, directory, base_url=trust_space.base_url(sock.getsockname()[1]))
    context = server_context(trust_space.https_cert.cert_file, trust_space.https_cert.key_file,
                             trust_space.root_cert_file, client_cert="optional")
    await serve_https(app, sock, ssl_context=context, name="trust-space-https",
                      http=PeerCertificateProtocol, ready=ready)


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
        try:
            started = await wait_started(self._task, ready)
        except BaseException:
            self._task = None
            raise
        if not started:
            self._task = None
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
