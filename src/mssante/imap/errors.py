"""The tagged NO and BAD replies a command ends with when it cannot complete.

An error knows its wire reply (RFC 9051 §7.1): raised anywhere below a command (the
parser of its arguments, FETCH rendering, SEARCH), it is caught once, by the
connection loop, which writes ``<tag> <status> [<code>] <text>``.
"""

from __future__ import annotations

from mssante.imap import wire


class Reply(Exception):
    """A tagged NO or BAD, with an optional response code (RFC 9051 §7.1)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code

    def line(self, tag: str) -> bytes:
        return wire.tagged(tag, self.status, self.text, self.code)


class CommandError(Reply):
    """A command's arguments or data that cannot be answered: BAD unless told."""

    def __init__(self, message: str, *, status: str = "BAD", code: str | None = None) -> None:
        super().__init__(status, message, code)


def no(text: str, code: str | None = None) -> Reply:
    return Reply("NO", text, code)


def bad(text: str, code: str | None = None) -> Reply:
    return Reply("BAD", text, code)
