"""The operator's HTTPS listener (``[web]``): the web application served by the
embedded uvicorn of ``mssante.httpserve``.

- The operator's certificate (``[tls] cert_file``/``key_file``, with its issuing CA)
  and the project's TLS policy (``pki.tls.server_context``: TLS 1.2 minimum,
  MSSanté suites). No client certificate is asked for: a mail client fetching its
  settings must not be prompted for one.
- Port 0 in ``[web]`` means no listener (``start_web`` returns None).
- ``stop`` closes the listener and lets requests under way finish, for at most
  ``httpserve.GRACEFUL_SHUTDOWN`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib

from mssante.config import OperatorConfig
from mssante.httpserve import bind, serve, wait_started
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.tls import server_context
from mssante.web.app import create_app


class WebListener:
    """The HTTPS service running in a background task."""

    def __init__(self, task: asyncio.Task[None], port: int) -> None:
        self._task = task
        self.ports = {"web": port}

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def start_web(runtime: OperatorRuntime, config: OperatorConfig, *,
                    reuse_port: bool = False) -> WebListener | None:
    """Listen on ``[web]`` and return once serving; None when its port is 0.
    ``reuse_port``: the port is shared with the operator's other workers."""
    listener = config.web
    if listener.port == 0:
        return None
    context = server_context(config.tls.cert_file, config.tls.key_file, config.tls.ca_file,
                             client_cert="none")
    app = create_app(runtime, config)
    sock = bind(listener.host, listener.port, reuse_port=reuse_port)
    port = sock.getsockname()[1]
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve(app, sock, ssl_context=context, name=f"operator-https-{port}", ready=ready))
    try:
        started = await wait_started(task, ready)
    except BaseException:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise
    if not started:
        raise OSError(f"the HTTPS listener on {listener.host}:{port} stopped while starting")
    return WebListener(task, port)
