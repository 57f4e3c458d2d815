"""Raw IMAP transcripts: exact lines to an operator's IMAP port, replies checked line by line.

A transcript test writes what a client sends and what the server must answer, as an
RFC's examples do::

    t = Transcript.open(env)
    t.run("a1 LOGIN alice secret", "a1 OK [CAPABILITY {*}] Logged in")
    t.run("a2 SELECT INBOX",
          "* FLAGS ({*})",
          ...
          "* OK [UIDVALIDITY {#uv}] UIDs valid",
          "a2 OK [READ-WRITE] SELECT completed")

Expected lines are matched whole against the received ones, in order, with these
placeholders for the parts a server chooses:

- ``{*}`` any text (possibly empty, on one line);
- ``{#}`` a number; ``{#name}`` a number remembered as ``name``;
- ``{name}`` the value remembered as ``name`` earlier (``t.vars``);
- a line starting with ``re:`` is a regular expression matched against the whole
  line; its named groups are remembered too.

Literals the server sends are kept inline in the line they belong to, exactly as on
the wire (``* 1 FETCH (BODY[] {5}\\r\\nhello)``).
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import Any, NoReturn

from tests.imap.conftest import HOSPITAL

TIMEOUT = 10.0  # seconds to wait for one line
_PLACEHOLDER = re.compile(r"\{(\*|#[A-Za-z_]\w*|#|[A-Za-z_]\w*)\}")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")


class Transcript:
    """One connection, with everything sent and received kept for failure reports."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.context = context
        self.file = sock.makefile("rb")
        self.log: list[str] = []
        self.vars: dict[str, str] = {}

    @classmethod
    def open(cls, env: Any, domain: str = HOSPITAL, *, port: str = "imaps",
             greeting: str | None = "* OK [CAPABILITY {*}] {*}") -> Transcript:
        """Connect to the ``imaps`` port (implicit TLS) or the ``imap`` port (plain, for
        STARTTLS) and check the greeting (``greeting=None``: leave it unread)."""
        listener = env.operator(domain)[port]
        context = ssl.create_default_context(cafile=env.ca_file)
        sock = socket.create_connection((listener["host"], listener["port"]), timeout=TIMEOUT)
        if port == "imaps":
            sock = context.wrap_socket(sock, server_hostname=listener["host"])
        transcript = cls(sock, context)
        if greeting is not None:
            transcript.expect(greeting)
        return transcript

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Transcript:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- sending

    def send(self, data: bytes | str) -> None:
        """Send octets exactly as given (no CRLF added)."""
        raw = data.encode() if isinstance(data, str) else data
        self.log.append("C: " + raw.decode("utf-8", "replace").removesuffix("\r\n"))
        self.sock.sendall(raw)

    def line(self, text: bytes | str) -> None:
        """Send one line, CRLF added."""
        self.send((text.encode() if isinstance(text, str) else text) + b"\r\n")

    def starttls(self, hostname: str = "127.0.0.1") -> None:
        """Switch the connection to TLS (after the server's OK to STARTTLS)."""
        self.file.close()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=hostname)
        self.file = self.sock.makefile("rb")
        self.log.append("-- TLS --")

    # -------------------------------------------------------------- receiving

    def read(self) -> str:
        """One response, literals included, without its final CRLF."""
        parts: list[bytes] = []
        while True:
            try:
                got = self.file.readline(1 << 20)
            except TimeoutError:
                self.fail("timed out waiting for a line")
            if not got:
                self.fail("the server closed the connection")
            parts.append(got)
            literal = _LITERAL.search(got)
            if literal is None:
                break
            parts.append(self.file.read(int(literal.group(1))))
        text = b"".join(parts).decode("utf-8", "surrogateescape").removesuffix("\r\n")
        self.log.append("S: " + text)
        return text

    def expect(self, *patterns: str) -> list[str]:
        """Read one line per pattern and match each."""
        lines = []
        for pattern in patterns:
            got = self.read()
            self.check(pattern, got)
            lines.append(got)
        return lines

    def until(self, tag: str, *patterns: str) -> list[str]:
        """Read up to the reply tagged ``tag``; the lines must match ``patterns``, all
        of them, in order (the last pattern is the tagged reply)."""
        lines: list[str] = []
        while True:
            got = self.read()
            lines.append(got)
            if got.startswith(tag + " "):
                break
        if len(lines) != len(patterns):
            self.fail(f"expected {len(patterns)} lines up to {tag}, got {len(lines)}:\n"
                      + "\n".join(patterns))
        for pattern, got in zip(patterns, lines, strict=True):
            self.check(pattern, got)
        return lines

    def run(self, command: str, *patterns: str) -> list[str]:
        """Send a command line, read and check the responses up to its tagged reply."""
        self.line(command)
        return self.until(command.split(" ", 1)[0], *patterns)

    # --------------------------------------------------------------- matching

    def check(self, pattern: str, got: str) -> None:
        found = re.fullmatch(self.regex(pattern), got, re.DOTALL)
        if found is None:
            self.fail(f"expected {pattern!r}\n     got {got!r}")
        self.vars.update({k: v for k, v in found.groupdict().items() if v is not None})

    def regex(self, pattern: str) -> str:
        if pattern.startswith("re:"):
            return pattern[3:]
        out: list[str] = []
        pos = 0
        for ph in _PLACEHOLDER.finditer(pattern):
            out.append(re.escape(pattern[pos:ph.start()]))
            name = ph.group(1)
            if name == "*":
                out.append(".*?")
            elif name == "#":
                out.append(r"\d+")
            elif name.startswith("#"):
                out.append(rf"(?P<{name[1:]}>\d+)")
            elif name in self.vars:
                out.append(re.escape(self.vars[name]))
            else:
                raise KeyError(f"{name} was not remembered before {pattern!r}")
            pos = ph.end()
        out.append(re.escape(pattern[pos:]))
        return "".join(out)

    def fail(self, message: str) -> NoReturn:
        history = "\n".join(self.log[-60:])
        raise AssertionError(f"{message}\n--- transcript ---\n{history}")
