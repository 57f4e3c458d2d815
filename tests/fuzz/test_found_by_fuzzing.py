"""The bugs the fuzzers found, each a test named after its threat.

Each crashing input is also in ``fuzz/corpus/<target>/crash-*``, replayed by
test_corpus.py. The SMTP ones are checked on the wire too: the project's MSSanteSMTP on
a loopback socket, a client writing raw octets as an attacker would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mssante.domain.addresses import parse_address, parse_one_mailbox
from mssante.errors import InvalidAddress
from mssante.smtp.params import parse_mail_params, parse_rcpt_params
from mssante.smtp.protocol import MSSanteSMTP
from mssante.smtp.replies import SMTPReply


class _Accepting:
    """Accepts everything, and keeps the addresses the protocol hands over."""

    def __init__(self) -> None:
        self.addresses: list[str] = []

    async def handle_MAIL(self, server: MSSanteSMTP, session: object, envelope: object,
                          address: str, options: list[str]) -> str:
        self.addresses.append(address)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: MSSanteSMTP, session: object, envelope: object,
                          address: str, params: object) -> str:
        self.addresses.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: MSSanteSMTP, session: object, envelope: object) -> str:
        return "250 2.0.0 kept"


HANDLER = _Accepting()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    HANDLER.addresses.clear()
    server = await loop.create_server(
        lambda: MSSanteSMTP(HANDLER, hostname="test", enable_SMTPUTF8=True, loop=loop),
        "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def converse(port: int, lines: list[bytes]) -> list[bytes]:
    """The reply to each line (the last line of a multi-line reply), read one at a time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # greeting
    replies = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        while True:
            reply = await asyncio.wait_for(reader.readline(), 5)
            if reply[3:4] != b"-":
                break
        replies.append(reply)
    writer.close()
    return replies


def refused(params: str, *, rcpt: bool = False) -> int:
    with pytest.raises(SMTPReply) as info:
        (parse_rcpt_params if rcpt else parse_mail_params)(params)
    return info.value.reply.code


# ------------------------------------------------------------ SMTP parameters


async def test_size_in_unicode_digits_cannot_crash_the_mail_command(port: int) -> None:
    # "²".isdigit() is True but int("²") raises: the command ended in 451 4.3.0 and a
    # logged traceback, at will (fuzz/corpus/smtp_params/crash-size-superscript-digit)
    assert refused("SIZE=²") == 501
    # Arabic-Indic digits were read as a number (RFC 1870 §3: size-value is ASCII DIGIT)
    assert refused("SIZE=١٢") == 501
    replies = await converse(port, [b"EHLO c\r\n", "MAIL FROM:<a@x.mssante.fr> SIZE=²\r\n"
                                    .encode(), b"MAIL FROM:<a@x.mssante.fr> SIZE=12\r\n"])
    assert replies[1].startswith(b"501 5.5.4") and replies[2].startswith(b"250")


def test_parameters_hidden_behind_unicode_white_space_are_refused() -> None:
    # str.split() splits at \x0b, \x1c-\x1f, U+0085, U+2028...: a parameter the next hop
    # and a log reader see inside another one was read as a parameter of its own
    # (RFC 5321 §4.1.2: parameters are separated by SP)
    assert refused("SIZE=100\x0bBODY=8BITMIME") == 501
    assert refused("NOTIFY=SUCCESS\u2028ORCPT=rfc822;a@b.fr", rcpt=True) == 501
    assert parse_mail_params("  SIZE=100   BODY=8BITMIME ").size == 100  # runs of SP: fine


@pytest.mark.parametrize("params", ["AUTH=", "ENVID=", "AUTH=a=b", "AUTH", "BODY=8BIT\x00MIME"])
def test_parameter_values_outside_the_esmtp_grammar_are_refused(params: str) -> None:
    # RFC 5321 §4.1.2 esmtp-value = 1*(%d33-60 / %d62-126); RFC 4954 §5: AUTH has a value
    assert refused(params) == 501


def test_notify_never_cannot_be_combined_even_with_itself() -> None:
    # RFC 3461 §4.1: "NEVER" alone, or a list of SUCCESS, FAILURE and DELAY
    assert refused("NOTIFY=NEVER,NEVER", rcpt=True) == 501
    assert refused("NOTIFY=SUCCESS,,DELAY", rcpt=True) == 501
    assert parse_rcpt_params("NOTIFY=success,SUCCESS").notify == {"SUCCESS"}


# ------------------------------------------------------------ SMTP replies


async def test_control_characters_echoed_in_a_reply_cannot_forge_a_reply_line(port: int) -> None:
    # aiosmtpd echoes an unknown command in its 500 reply: a CR in it, or any control
    # character, is no text of a reply (RFC 5321 §4.2) and a bare CR may end the line
    # for the client (fuzz/corpus/smtp_command/crash-control-characters-echoed)
    replies = await converse(port, [b"FOO\rBAR\r\n", b"\x01\x1b[2J\r\n", b"NOOP\r\n"])
    assert replies[0] == b'500 Error: command "FOO?BAR" not recognized\r\n'
    assert replies[1] == b'500 Error: command "??[2J" not recognized\r\n'
    assert replies[2].startswith(b"250")


async def test_a_client_cannot_make_the_server_write_reply_lines_over_512_octets(
        port: int) -> None:
    # the 500 reply echoed a command of 500 octets (the longest line taken), the 501 reply
    # a parameter of 8-bit octets each written as 6 characters ('\\udcff'): RFC 5321
    # §4.5.3.1.5 bounds a reply line to 512 octets with its CRLF, which a client may read
    # with a fixed buffer (fuzz/corpus/smtp_command/crash-long-*-echoed-in-reply)
    replies = await converse(port, [
        b"X" * 500 + b"\r\n", b"EHLO c\r\n", b"MAIL FROM:<a@x.mssante.fr>\r\n",
        b"RCPT TO:<b@y.mssante.fr> NOTIFY=" + b"\xff" * 100 + b"\r\n", b"NOOP\r\n"])
    assert [len(replies[0]), len(replies[3])] == [512, 512]
    assert replies[0].startswith(b'500 Error: command "XXX') and replies[0].endswith(b"...\r\n")
    assert replies[3].startswith(b"501 5.5.4 invalid parameter 'NOTIFY=\\udcff")
    assert replies[4].startswith(b"250")


@pytest.mark.parametrize("path", [b"<a\x00b@x.mssante.fr>", b"<a@x\x01.mssante.fr>",
                                  b'<"a\x00b"@x.mssante.fr>', b"<a\x7f@x.mssante.fr>"])
async def test_control_characters_in_a_path_never_reach_the_handler(port: int,
                                                                     path: bytes) -> None:
    # a NUL in MAIL FROM went on to the handler as part of the sender (RFC 5321 §4.1.2:
    # no control character in a Path, quoted or not); each handler had to refuse it
    # itself (fuzz/corpus/smtp_command/crash-nul-in-sender-handed-over)
    replies = await converse(port, [b"EHLO c\r\n", b"MAIL FROM:" + path + b"\r\n",
                                    b"MAIL FROM:<a@x.mssante.fr>\r\n",
                                    b"RCPT TO:" + path + b"\r\n"])
    assert replies[1].startswith(b"553") and replies[3].startswith(b"553")
    assert replies[2].startswith(b"250")
    assert HANDLER.addresses == ["a@x.mssante.fr"]


# ------------------------------------------------------------ addresses


@pytest.mark.parametrize("text", ["r\n@e.r", "marie.bernard\n@ch-xyz.mssante.fr",
                                  "<marie.bernard@ch-xyz.mssante.fr\n>", "a@b.fr\n\n>"])
def test_an_address_cannot_carry_a_line_feed(text: str) -> None:
    # the strict parser's patterns ended in "$", which also matches before a final line
    # feed: "r\n@e.r" was the address of local part "r\n", and "<a@b.fr\n>" had the
    # domain "b.fr\n"; an address goes into SMTP commands and header fields, where a line
    # feed ends the line (fuzz/corpus/address/crash-line-feed-in-*)
    with pytest.raises(InvalidAddress):
        parse_address(text)
    assert parse_address(" <marie.bernard@ch-xyz.mssante.fr>\n") == parse_address(
        "marie.bernard@ch-xyz.mssante.fr")  # white space around it is no part of it
    with pytest.raises(InvalidAddress):
        parse_one_mailbox(text)  # the header parser agrees
