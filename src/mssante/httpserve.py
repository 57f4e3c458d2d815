"""Serve an ASGI application over HTTPS with uvicorn, inside another program.

The trust space and every operator embed the same server; what differs (the
application, the TLS context, the HTTP protocol class) is given by the caller.

Invariants:
- The listening socket is bound here (``bind``), before uvicorn starts: a busy port
  raises OSError to the caller (uvicorn would call ``sys.exit``), and port 0 works.
- uvicorn installs no signal handlers (``capture_signals`` is a no-op): the
  program that embeds the server owns SIGINT/SIGTERM.
- Cancelling ``serve`` shuts uvicorn down gracefully (listener closed,
  connections finished or cut after ``GRACEFUL_SHUTDOWN`` seconds) before the
  cancellation propagates. The socket is closed when ``serve`` returns, whatever
  the reason.
- uvicorn does not touch the logging configuration (``log_config=None``) and keeps
  no access log. Answers carry no ``Server`` header: the software is not advertised
  (as the SMTP greeting does not name it).
- TLS is the caller's ``ssl.SSLContext`` (``mssante.pki.tls.server_context``: the
  project's one TLS policy), never uvicorn's own defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

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


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` is an IPv6 address);
    ``reuse_port``: shared with the operator's other workers (environment/workers.py)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP, and without it every response waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(app: ASGIApp, sock: socket.socket, *,
                ssl_context: ssl.SSLContext, name: str, http: type[asyncio.Protocol] | str = "h11",
                ready: asyncio.Event | None = None) -> None:
    """Serve ``app`` over HTTPS on an already bound socket until cancelled; ``ready`` is
    set once it listens. ``name`` names the task (for the logs and debuggers)."""
    config = uvicorn.Config(
        app,
        http=http,
        ssl_context_factory=lambda _config, _default: ssl_context,
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="auto",
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
    )
    server = _EmbeddedServer(config, ready)
    try:
        task = asyncio.create_task(server.serve(sockets=[sock]), name=name)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            server.should_exit = True
            await task
            raise
    finally:
        sock.close()


async def wait_started(task: asyncio.Task[None], ready: asyncio.Event) -> bool:
    """Wait until ``ready`` is set (True) or ``task`` has ended (False; its error, if it
    failed, is raised here)."""
    waiter = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if ready.is_set():
        return True
    task.result()  # re-raises why it stopped
    return False
