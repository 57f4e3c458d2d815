"""A connection dropped in the middle of DATA leaves no idle timer behind.

Threat: aiosmtpd's ``connection_lost`` cancels the idle timer, then the DATA command
ended and restarted it; five minutes later its callback ran on a connection without
transport (``AssertionError`` in ``SMTP._timeout_cb``), once per dropped connection.
Here the server's timeout is a fraction of a second, and the loop's exception handler
records what would have been logged.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
import uvloop

from mssante.smtp.protocol import MSSanteSMTP

TIMEOUT = 0.3


class Handler:
    """No hooks: aiosmtpd's defaults accept every command."""


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
def test_a_peer_dropping_mid_data_leaves_no_timer_to_fire(loop_kind: str, reset: bool) -> None:
    """On the loop of the product (uvloop) and asyncio's; the peer closes or resets."""
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        loop.run_until_complete(drop_mid_data(reset=reset))
    finally:
        loop.close()


async def drop_mid_data(*, reset: bool) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    made: list[MSSanteSMTP] = []

    def factory() -> MSSanteSMTP:
        made.append(MSSanteSMTP(Handler(), hostname="mx.test", timeout=TIMEOUT, loop=loop))
        return made[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220")
        writer.write(b"EHLO client.test\r\n")
        while not (line := await reader.readline()).startswith(b"250 "):
            assert line.startswith(b"250-")
        for command, code in ((b"MAIL FROM:<a@example.org>", b"250"),
                              (b"RCPT TO:<b@example.org>", b"250"), (b"DATA", b"354")):
            writer.write(command + b"\r\n")
            assert (await reader.readline()).startswith(code)
        writer.write(b"Subject: cut short\r\n\r\nthe first line of the body")
        await writer.drain()
        if reset:  # SO_LINGER 0: the close sends RST
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # the peer goes, in the middle of the data
        await asyncio.sleep(TIMEOUT * 3)  # past the timeout the server would have set
    finally:
        server.close()
        await server.wait_closed()
    assert [c.get("message") for c in errors] == []
    (protocol,) = made
    assert protocol.transport is None
    assert protocol._timeout_handle is None or protocol._timeout_handle.cancelled()
