"""The local environment's stand-in for a mail relay: it accepts every notification
and writes it as a file, so that `mssante up` works offline and one can read what a
patient would have received.

Each message is written whole (``<time>-<n>.eml``, RFC 5322 as received, with a
``X-Sink-Rcpt`` header per envelope recipient) under its folder, atomically
(files.py). Plain SMTP on 127.0.0.1 without authentication: a demonstration only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from mssante.files import private_dir, write_atomic


class _Writer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        recipients = b"".join(b"X-Sink-Rcpt: " + r.encode() + b"\r\n"
                              for r in envelope.rcpt_tos)
        name = f"{time.time():.6f}-{next(self._numbers)}.eml"
        await asyncio.to_thread(write_atomic, self.folder / name, recipients + content)
        return "250 2.0.0 written"


class NotificationSink:
    """``await start()``, ``close()``; ``port`` once started."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.folder = folder
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        private_dir(self.folder)
        writer = _Writer(self.folder)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(writer, hostname="notifications.localhost",
                         ident="mssante notification sink"),
            self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def messages(self) -> list[Path]:
        """The files written so far, oldest first."""
        return sorted(self.folder.glob("*.eml"))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
