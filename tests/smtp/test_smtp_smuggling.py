"""The DATA phase, byte by byte: terminator, dot-stuffing, limits, pipelining.

The server is the project's MSSanteSMTP on a loopback socket with a handler that
keeps what it receives; the client writes raw bytes, as an attacker would.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from mssante.content.headers import canonical_line_endings
from mssante.queue.smtpclient import to_wire
from mssante.smtp import protocol
from mssante.smtp.protocol import TERMINATOR, MSSanteSMTP, MSSEnvelope


@dataclass
class Recorder:
    messages: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: MSSanteSMTP, session: object,
                          envelope: MSSEnvelope) -> str:
        assert envelope.original_content is not None
        self.messages.append(envelope.original_content)
        return "250 2.0.0 kept"


@dataclass
class Server:
    recorder: Recorder
    port: int


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: MSSanteSMTP(recorder, hostname="test", data_size_limit=5000, loop=loop),
        "127.0.0.1", 0)
    try:
        yield Server(recorder, srv.sockets[0].getsockname()[1])
    finally:
        srv.close()
        await srv.wait_closed()


async def converse(port: int, payload: bytes, replies: int) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [await reader.readline()]  # greeting
    writer.write(payload)
    await writer.drain()
    while len(lines) < replies + 1:
        line = await asyncio.wait_for(reader.readline(), 5)
        if not line:
            break
        if line[3:4] == b"-":  # multi-line EHLO reply
            continue
        lines.append(line)
    writer.close()
    return lines[1:]


def txn(data: bytes) -> bytes:
    return (b"EHLO c\r\nMAIL FROM:<a@x.mssante.fr>\r\nRCPT TO:<b@y.mssante.fr>\r\nDATA\r\n"
            + data)


async def test_bare_lf_dot_lf_does_not_end_the_data(server: Server) -> None:
    # RFC 5321 §4.1.1.4: only CRLF.CRLF ends the data; "\n.\n" and "\r.\r" are content.
    smuggled = b"Subject: a\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\nbody\r.\rmore\r\n.\r\n"
    replies = await converse(server.port, txn(smuggled) + b"QUIT\r\n", 5)
    assert replies[3].startswith(b"354") and replies[4].startswith(b"250")
    # stored with canonical line endings, so that the next hop sees the same lines
    stored = b"Subject: a\r\n\r\nhello\r\n.\r\nMAIL FROM:<evil@x>\r\nbody\r\n.\r\nmore\r\n"
    assert server.recorder.messages == [stored]
    # ... and relayed dot-stuffed: the "." lines cannot end the data at the next hop
    assert to_wire(stored) == (b"Subject: a\r\n\r\nhello\r\n..\r\nMAIL FROM:<evil@x>\r\n"
                               b"body\r\n..\r\nmore\r\n")


async def test_other_lone_line_endings_do_not_end_the_data(server: Server) -> None:
    for smuggled in (b"a\r\n.\nb\r\n.\r\n", b"a\n.\r\nb\r\n.\r\n"):
        server.recorder.messages.clear()
        replies = await converse(server.port, txn(smuggled), 5)
        assert replies[4].startswith(b"250")
        (stored,) = server.recorder.messages
        assert stored.endswith(b"b\r\n")  # both lines kept: the data did not end early


async def test_ehlo_name_cannot_carry_a_header(server: Server) -> None:
    replies = await converse(server.port, b"EHLO x\rFrom: <boss@x.mssante.fr>\r\n"
                             b"HELO a b\r\nEHLO [127.0.0.1]\r\n", 3)
    assert replies[0].startswith(b"501") and replies[1].startswith(b"501")
    assert replies[2].startswith(b"250")


async def test_dot_stuffing_is_undone(server: Server) -> None:
    data = b"..first line starts with a dot\r\nx\r\n...two dots\r\n.\r\n"
    await converse(server.port, txn(data), 5)
    assert server.recorder.messages == [b".first line starts with a dot\r\nx\r\n..two dots\r\n"]


async def test_empty_and_tiny_messages(server: Server) -> None:
    payload = txn(b".\r\n") + b"MAIL FROM:<a@x.mssante.fr>\r\nRCPT TO:<b@y.mssante.fr>\r\n" \
        b"DATA\r\nx\r\n.\r\n"
    replies = await converse(server.port, payload, 9)
    assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354", b"250", b"250", b"250",
                                        b"354", b"250"]
    assert server.recorder.messages == [b"", b"x\r\n"]


async def test_oversized_data_is_refused_and_the_session_goes_on(server: Server) -> None:
    big = b"y" * 70 + b"\r\n"
    payload = txn(big * 100 + b".\r\n") + b"NOOP\r\n"
    replies = await converse(server.port, payload, 6)
    assert replies[4].startswith(b"552 5.3.4")
    assert replies[5].startswith(b"250")  # the pipelined NOOP after the terminator
    assert server.recorder.messages == []


async def test_long_line_is_refused(server: Server) -> None:
    replies = await converse(server.port, txn(b"z" * 999 + b"\r\n.\r\n"), 5)
    assert replies[4].startswith(b"500 5.5.6")
    assert server.recorder.messages == []


async def test_transaction_is_reset_after_data(server: Server) -> None:
    # after DATA, a new MAIL is not "nested" even when the handler refused the message
    payload = txn(b"a\r\n.\r\n") + b"MAIL FROM:<c@x.mssante.fr>\r\n"
    replies = await converse(server.port, payload, 6)
    assert replies[5].startswith(b"250")


def _reference(data: bytes) -> bytes:
    """What DATA must yield for ``data`` (its last line ended): the stuffing undone
    (RFC 5321 §4.5.2) and bare CR and LF made CRLF, computed on the whole message."""
    if data.startswith(b"."):
        data = data[1:]
    return canonical_line_endings(data.replace(b"\r\n.", b"\r\n"))


async def test_data_read_in_chunks_is_the_data_read_whole(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk boundaries fall inside every CR LF, CRLF "." and terminator: what is kept
    is what one pass over the whole data gives, and no terminator is missed or made."""
    monkeypatch.setattr(protocol, "DATA_CHUNK", 3)
    rng = random.Random(9)
    pieces = [b"a", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.", b"\r.\r", b"\n.\n"]
    cases: list[bytes] = []
    while len(cases) < 60:
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30))) + b"\r\n"
        # keep the cases whose first terminator is the one that ends them
        if (b"\r\n" + data + b".\r\n").find(TERMINATOR) == len(data):
            cases.append(data)
    payload = b"EHLO c\r\n" + b"".join(
        b"MAIL FROM:<a@x.mssante.fr>\r\nRCPT TO:<b@y.mssante.fr>\r\nDATA\r\n" + data + b".\r\n"
        for data in cases)
    replies = await converse(server.port, payload, 1 + 4 * len(cases))
    assert [r[:3] for r in replies[1:]] == [b"250", b"250", b"354", b"250"] * len(cases)
    assert server.recorder.messages == [_reference(data) for data in cases]
