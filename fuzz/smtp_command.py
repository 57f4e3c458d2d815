"""Target ``smtp_command``: what an SMTP client sends, read by the server's protocol machine.

The octets are everything a client sends on one connection: command lines, AUTH
responses, DATA. They are handed to a real ``MSSanteSMTP`` (smtp/protocol.py over
aiosmtpd) on an in-memory transport, configured as the submission listeners are
(SMTPUTF8 on, a size limit, long AUTH lines), the MTA's XMSS-DELIVERY accepted too, with
submission's handler (smtp/submission.py) for EHLO and the AUTH mechanisms (PLAIN,
LOGIN, and XOAUTH2 and OAUTHBEARER read by auth/oauthsasl.py), every login refused
without a store, and hooks that accept every sender, recipient and message the protocol
hands over. So the command splitting of aiosmtpd, the EHLO name check, ``_getaddr``, the
ESMTP parameters, the AUTH exchanges and the DATA reader are all under the fuzzer, in
the order a session meets them.

Oracles:
- no command ends in an unexpected exception: the protocol answers one with
  ``451 4.3.0`` and logs it (smtp/protocol.py ``handle_exception``); either is a crash;
- every reply line is ``code SP/- text CRLF``, US-ASCII without control characters
  (RFC 5321 §4.2: a CR or LF from the client echoed in a reply would forge another);
- what reaches the handler is what RFC 5321 §4.1.2 allows: a sender that is empty (the
  null reverse-path) or a mailbox, a recipient that is a mailbox, neither holding a
  space, a control character or an angle bracket; the data of DATA has CRLF line ends;
- the session ends: after the input is read the server waits for more, within a bounded
  number of turns of the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from aiosmtpd.smtp import AuthResult

from fuzz.oracles import OracleFailure, expect
from mssante.auth import oauthsasl
from mssante.operator.accept import RcptParams
from mssante.smtp.protocol import MSSanteSMTP
from mssante.smtp.replies import AUTH_FAILED
from mssante.smtp.submission import SubmissionHandler

MAX_LEN = 64 * 1024
SIZE_LIMIT = 16 * 1024  # DATA larger than this is refused (552), as a listener's limit
MAX_TURNS = 20_000  # turns of the event loop one input may take

_REPLY = re.compile(rb"[2-5][0-9][0-9](?:[ -][\t\x20-\x7e]*)?\r\n")  # RFC 5321 §4.2
# no control character; outside quoted strings, no space nor angle bracket (RFC 5321 §4.1.2)
_QUOTED = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"')
_ADDRESS_CHARS = re.compile(r"[\x00-\x20\x7f<>]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Failures(logging.Handler):
    """Errors logged by the protocol: an unexpected exception in a command."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Transport(asyncio.Transport):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.out = bytearray()
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                self.loop.call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 25)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True


def _plain(address: str) -> bool:
    return not _ADDRESS_CHARS.search(_QUOTED.sub("", address)) and not _CONTROL.search(address)


class _Handler(SubmissionHandler):
    """Submission's own AUTH mechanisms (PLAIN, LOGIN: how it reads the client's
    responses), every login refused without a store; accepts whatever sender, recipient
    and data the protocol hands over, after checking them."""

    def __init__(self) -> None:  # no runtime: nothing here reaches the store
        pass

    async def _login(self, server: MSSanteSMTP, login: str, password: str) -> AuthResult:
        return await self._failed(server, login)

    async def _failed(self, server: MSSanteSMTP, login: str,
                      reply: str | None = str(AUTH_FAILED)) -> AuthResult:
        if reply is not None:
            await server.push(reply)
        return AuthResult(success=False, handled=True)

    async def auth_EXTERNAL(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        await server.push("535 5.7.8 no certificate")
        return AuthResult(success=False, handled=True)

    async def auth_XOAUTH2(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, oauthsasl.XOAUTH2, args)

    async def auth_OAUTHBEARER(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, oauthsasl.OAUTHBEARER, args)

    async def _bearer(self, server: MSSanteSMTP, mechanism: str,
                      args: list[str]) -> AuthResult:
        """As submission reads a bearer token's message, without checking the token."""
        blob = await self._initial_response(server, args)
        if isinstance(blob, AuthResult):
            return blob
        with contextlib.suppress(oauthsasl.MalformedMessage):
            oauthsasl.parse(mechanism, blob)
        return await self._failed(server, "?")

    async def handle_MAIL(self, server: MSSanteSMTP, session: Any, envelope: Any,
                          address: str, options: list[str]) -> str:
        expect(isinstance(address, str) and _plain(address),
               f"MAIL hands over the sender {address!r}")
        expect(address == "" or "@" in address, f"MAIL hands over the sender {address!r}")
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: MSSanteSMTP, session: Any, envelope: Any,
                          address: str, params: RcptParams) -> str:
        expect(isinstance(address, str) and "@" in address and _plain(address),
               f"RCPT hands over the recipient {address!r}")
        expect(isinstance(params, RcptParams), f"RCPT hands over {params!r}")
        return "250 2.1.5 OK"

    async def handle_TRACE(self, server: MSSanteSMTP, session: Any, envelope: Any) -> bytes:
        return b"Received: from fuzz\r\n"

    async def handle_DATA(self, server: MSSanteSMTP, session: Any, envelope: Any) -> str:
        content = envelope.content
        expect(isinstance(content, bytes), "DATA hands over no bytes")
        expect(len(content) <= SIZE_LIMIT + 64, f"{len(content)} octets over the limit")
        expect(re.search(rb"(?<!\r)\n|\r(?!\n)", content) is None,
               "DATA hands over a bare CR or LF")
        return "250 2.0.0 OK"


_loop: asyncio.AbstractEventLoop | None = None
_failures = _Failures()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop


def close() -> None:
    """Close the event loop the sessions run on (a new one is made when needed)."""
    global _loop
    if _loop is not None:
        _loop.close()
        _loop = None


async def _settle(server: MSSanteSMTP, transport: _Transport) -> bool:
    """Let the server read everything; True once it waits for more (or has hung up)."""
    reader = server._reader
    for _ in range(MAX_TURNS):
        await asyncio.sleep(0)
        task = server._handler_coroutine
        if transport.closed or task is None or task.done():
            return True
        # waiting for octets: the rest of the buffer is an unfinished line, if any
        if reader is not None and reader._waiter is not None:  # type: ignore[attr-defined]
            return True
    return False


def _replies(out: bytes) -> None:
    position = 0
    while position < len(out):
        m = _REPLY.match(out, position)
        if m is None:
            raise OracleFailure(f"a bad reply line at {position}: {out[position:position + 80]!r}")
        expect(m.end() - position <= 512, f"a reply line of {m.end() - position} octets")
        expect(not m.group().startswith(b"451 4.3.0"), f"an unexpected exception: {m.group()!r}")
        position = m.end()


def check(data: bytes) -> None:
    loop = _event_loop()
    transport = _Transport(loop)
    server = MSSanteSMTP(_Handler(), hostname="fuzz.mssante.fr", ident="fuzz",
                         data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True, long_auth=True,
                         auth_require_tls=False, delivery_ids=True,
                         timeout=300, loop=loop)
    transport.protocol = server
    del _failures.records[:]
    protocol_log = logging.getLogger("mssante.smtp.protocol")
    protocol_log.addHandler(_failures)

    async def session() -> bool:
        server.connection_made(transport)
        server.data_received(data[:MAX_LEN])
        return await _settle(server, transport)

    try:
        settled = loop.run_until_complete(session())
    finally:
        task = server._handler_coroutine
        if task is not None and not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        if not transport.closed:
            transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        protocol_log.removeHandler(_failures)
    expect(settled, "the session does not settle")
    expect(not _failures.records, "logged: " + "; ".join(
        f"{r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
        for r in _failures.records))
    _replies(bytes(transport.out))
