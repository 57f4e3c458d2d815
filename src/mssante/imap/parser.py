"""Client commands: bytes to ``Command`` (RFC 9051 §2.2.1, §9), without I/O.

The server owns the socket. It reads a line; while ``split_literal`` finds that
the line announces a literal, it answers ``+`` (synchronising literals only),
reads the literal's octets and the next line; then it hands the whole command,
exactly as sent and without its final CRLF, to ``parse_command``::

    a1 LOGIN {5}\\r\\nalice {6+}\\r\\nsecret

``parse_command`` returns the tag, the command name and the arguments as generic
tokens (tokens.py); each command reads its own arguments.

Implementation notes:
- Tokens: an atom (ATOM-CHAR, plus ``]`` as in astrings, ``*`` and ``%`` for
  sequence sets and LIST patterns, and ``\\`` as the first character of a flag),
  a quoted string (``\\\\`` and ``\\"`` are the only escapes; any octet but CR, LF
  and NUL, so that UTF-8 strings of IMAP4rev2 pass), a literal ``{n}``, ``{n+}``
  (RFC 7888), ``~{n}`` or ``~{n+}`` (RFC 3516; a literal may hold any octet), or a
  parenthesised list of tokens. ``NIL`` is an atom.
- A ``[`` in an atom opens a section that runs to its ``]`` and may hold spaces,
  parenthesised lists and quoted strings: ``BODY.PEEK[HEADER.FIELDS (From To)]<0.2048>``
  is one atom. Inside, spaces are normalised (one between items, none inside
  parentheses) and a quoted string that is a plain atom loses its quotes
  (``("From")`` reads as ``(From)``); other quoted strings are kept, quoted.
  Deliberate deviations: a literal inside brackets is refused, and so is a ``]``
  inside a quoted string there; a ``[`` with no ``]`` later on the line is an
  ordinary atom character (an astring may hold it: ``LOGIN pa[ss ...``).
- Between tokens the grammar wants one space; runs of spaces and a trailing space
  are accepted, as Dovecot does. A token must end at a space, a ``)`` or the end:
  ``"a"b`` and ``(a)(b)`` are refused.
- Limits, checked while parsing: ``MAX_LINE`` octets per line (the text between
  literals, literal markers included), ``MAX_DEPTH`` nested lists, ``MAX_ARGS``
  tokens in all. The size of literals is the server's business (it has read them).
- Errors are ``ParseError``, whose ``tag`` is the command's tag when one could be
  read, so that the server answers ``<tag> BAD <message>`` (``* BAD`` without).
  Nothing else escapes ``parse_command``, whatever the octets.
- Speed: every token is one match of a compiled pattern at the current offset,
  never a loop over characters in Python; ``a1 UID FETCH 1:* (FLAGS)`` parses in a
  few microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mssante.imap import wire
from mssante.imap.tokens import Atom, String, Token

MAX_LINE = 64 * 1024  # octets per line, outside literals
MAX_DEPTH = 32  # nested parenthesised lists
MAX_ARGS = 100_000  # tokens in one command, lists and their items included


class ParseError(Exception):
    """The octets are not a command. ``tag`` is the tag if one was read."""

    def __init__(self, message: str, tag: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag

    def response(self) -> bytes:
        """The reply: ``<tag> BAD <message>``, or ``* BAD <message>`` without a tag."""
        return wire.tagged(self.tag or "*", "BAD", self.message)


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str  # upper case; "UID FETCH" for a UID command
    args: list[Token]


# RFC 9051 §9: tag = 1*<any ASTRING-CHAR except "+">
_TAG = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\+]+")
# a command name, or a quoted header name inside brackets that needs no quotes
_PLAIN = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\[\]]+")
# atom characters: ATOM-CHAR plus "]", "*", "%"; stops at "[" (a section)
_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){\"\\\[]*")
_QUOTED = re.compile(rb'"([^"\\\r\n\x00]*(?:\\["\\][^"\\\r\n\x00]*)*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
# RFC 9051 §4.3 literal, RFC 7888 {n+}, RFC 3516 ~{n}; numbers are 32-bit
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,10})(\+?)\}\r\n")
_LINE_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}")
_SECTION = re.compile(rb"\[([^\x00-\x1f\x7f-\xff\[\]{]*)\]")
_SECTION_ITEM = re.compile(
    rb' *(?:(\()|(\))|"([^"\\]*(?:\\["\\][^"\\]*)*)"|([^ ()"]+))')
_PARENS = re.compile(rb"[()]")

_SP, _LPAREN, _RPAREN, _QUOTE = 0x20, 0x28, 0x29, 0x22  # octets, as raw[i] gives them
_LBRACE, _TILDE, _BACKSLASH, _LBRACKET = 0x7B, 0x7E, 0x5C, 0x5B


def split_literal(line: bytes) -> tuple[int, bool, bool] | None:
    """For a line (without CRLF) that ends with a literal marker ``{n}``, ``{n+}``,
    ``~{n}`` or ``~{n+}``: (n, non-synchronising, binary); else None. A number of
    more than 20 digits is no marker (``parse_command`` then refuses the line)."""
    if not line.endswith(b"}"):
        return None
    brace = line.rfind(b"{")
    if brace < 0:
        return None
    start = brace - 1 if brace > 0 and line[brace - 1] == _TILDE else brace
    m = _LINE_LITERAL.fullmatch(line, start)
    if m is None:
        return None
    return int(m.group(2)), bool(m.group(3)), bool(m.group(1))


def peek_tag(line: bytes) -> str | None:
    """The tag a line starts with, if any: for a reply before the command is whole
    (a literal too large to read, say)."""
    m = _TAG.match(line)
    if m is None or (m.end() < len(line) and line[m.end()] != _SP):
        return None
    return m.group().decode("ascii")


def parse_command(raw: bytes) -> Command:
    """The command in ``raw``: one command as the client sent it, literals included,
    without the final CRLF. Raises ``ParseError`` and nothing else."""
    size = len(raw)
    m = _TAG.match(raw)
    if m is None:
        raise ParseError("missing or bad tag" if raw else "empty command line")
    tag = m.group().decode("ascii")
    pos = m.end()
    line_end = raw.find(b"\r\n")
    if (line_end if line_end >= 0 else size) > MAX_LINE:
        raise ParseError(f"line longer than {MAX_LINE} octets", tag)
    if pos < size and raw[pos] != _SP:  # not a tag: answer untagged
        raise ParseError(_unexpected(raw, pos, "in the tag"))
    while pos < size and raw[pos] == _SP:
        pos += 1
    name, pos = _name(raw, pos, tag)
    if name == "UID":
        while pos < size and raw[pos] == _SP:
            pos += 1
        second, pos = _name(raw, pos, tag, after="UID")
        name = "UID " + second
    return Command(tag, name, _arguments(raw, pos, tag))


def _name(raw: bytes, pos: int, tag: str, after: str = "") -> tuple[str, int]:
    m = _PLAIN.match(raw, pos)
    if m is None:
        if pos >= len(raw):
            raise ParseError(f"missing command name after {after}" if after
                             else "missing command name", tag)
        raise ParseError(_unexpected(raw, pos, "in the command name"), tag)
    end = m.end()
    if end < len(raw) and raw[end] != _SP:
        raise ParseError(_unexpected(raw, end, "in the command name"), tag)
    return m.group().upper().decode("ascii"), end


def _arguments(raw: bytes, pos: int, tag: str) -> list[Token]:
    size = len(raw)
    args: list[Token] = []
    current = args
    stack: list[list[Token]] = []
    count = 0
    while True:
        while pos < size and raw[pos] == _SP:
            pos += 1
        if pos >= size:
            break
        c = raw[pos]
        if c == _LPAREN:
            if len(stack) >= MAX_DEPTH:
                raise ParseError(f"lists nested deeper than {MAX_DEPTH}", tag)
            inner: list[Token] = []
            current.append(inner)
            stack.append(current)
            current = inner
            pos += 1
            count += 1
            if count > MAX_ARGS:
                raise ParseError(f"more than {MAX_ARGS} arguments", tag)
            continue
        if c == _RPAREN:
            if not stack:
                raise ParseError("unbalanced parentheses: ')' without '('", tag)
            current = stack.pop()
            pos += 1
        elif c == _QUOTE:
            m = _QUOTED.match(raw, pos)
            if m is None:
                raise ParseError(_quoted_error(raw, pos), tag)
            value = m.group(1)
            if b"\\" in value:
                value = _UNESCAPE.sub(rb"\1", value)
            current.append(String(value))
            pos = m.end()
            count += 1
        elif c == _LBRACE or (c == _TILDE and raw[pos + 1:pos + 2] == b"{"):
            m = _LITERAL.match(raw, pos)
            if m is None:
                raise ParseError("bad literal: expected {n}, {n+} or ~{n} at the end "
                                 "of a line", tag)
            start = m.end()
            end = start + int(m.group(2))
            if end > size:
                raise ParseError("the literal is shorter than announced", tag)
            current.append(String(raw[start:end], literal=True, binary=bool(m.group(1))))
            pos = end
            count += 1
            line_end = raw.find(b"\r\n", pos)
            if (line_end if line_end >= 0 else size) - pos > MAX_LINE:
                raise ParseError(f"line longer than {MAX_LINE} octets", tag)
        else:
            atom, pos = _atom(raw, pos, tag)
            current.append(Atom(atom))
            count += 1
        if count > MAX_ARGS:
            raise ParseError(f"more than {MAX_ARGS} arguments", tag)
        if pos < size and raw[pos] != _SP and raw[pos] != _RPAREN:
            raise ParseError(_unexpected(raw, pos, "after an argument"), tag)
    if stack:
        raise ParseError("unbalanced parentheses: '(' without ')'", tag)
    return args


def _atom(raw: bytes, pos: int, tag: str) -> tuple[str, int]:
    start = pos
    if raw[pos] == _BACKSLASH:  # a flag: \Seen
        pos += 1
    end = _atom_end(raw, pos)
    if end >= len(raw) or raw[end] != _LBRACKET:
        if end == pos:
            raise ParseError(_unexpected(raw, pos, "in an atom") if pos < len(raw)
                             else "a backslash alone is not an atom", tag)
        return raw[start:end].decode("ascii"), end
    pieces: list[bytes] = [raw[start:end]]
    pos = end
    while pos < len(raw) and raw[pos] == _LBRACKET:
        m = _SECTION.match(raw, pos)
        if m is None:  # no "]": an ordinary character
            end = _atom_end(raw, pos + 1)
            pieces.append(raw[pos:end])
        else:
            pieces.append(b"[" + _section(m.group(1), tag) + b"]")
            end = _atom_end(raw, m.end())
            pieces.append(raw[m.end():end])
        pos = end
    return b"".join(pieces).decode("ascii"), pos


def _atom_end(raw: bytes, pos: int) -> int:
    m = _ATOM.match(raw, pos)
    return pos if m is None else m.end()


def _section(content: bytes, tag: str) -> bytes:
    """The inside of ``[...]`` with its spacing normalised and its lists checked."""
    if b'"' not in content:
        text = b" ".join(content.split())
        if b"(" not in text and b")" not in text:
            return text
        text = text.replace(b"( ", b"(").replace(b" )", b")")
        depth = 0
        for paren in _PARENS.finditer(text):
            depth += 1 if paren.group() == b"(" else -1
            if depth < 0 or depth > MAX_DEPTH:
                break
        else:
            if depth == 0:
                return text
        raise ParseError("unbalanced parentheses inside brackets", tag)
    out: list[bytes] = []
    depth = 0
    pos = 0
    size = len(content.rstrip(b" "))
    while pos < size:
        m = _SECTION_ITEM.match(content, pos)
        if m is None:
            raise ParseError("bad quoting inside brackets", tag)
        opening, closing, quoted, plain = m.groups()
        # one space between items, none after "(" nor before ")"; "X(" stays so
        if out and out[-1] != b"(" and closing is None and (
                opening is None or content[pos] == _SP):
            out.append(b" ")
        if opening is not None:
            depth += 1
            if depth > MAX_DEPTH:
                raise ParseError("unbalanced parentheses inside brackets", tag)
            out.append(b"(")
        elif closing is not None:
            depth -= 1
            if depth < 0:
                raise ParseError("unbalanced parentheses inside brackets", tag)
            out.append(b")")
        elif quoted is not None:
            value = _UNESCAPE.sub(rb"\1", quoted)
            out.append(value if _PLAIN.fullmatch(value) else
                       wire.quoted(value) or b'"' + quoted + b'"')
        else:
            out.append(plain)
        pos = m.end()
    if depth:
        raise ParseError("unbalanced parentheses inside brackets", tag)
    return b"".join(out)


def _quoted_error(raw: bytes, pos: int) -> str:
    i = pos + 1
    while i < len(raw):
        c = raw[i]
        if c == _QUOTE:
            break
        if c == _BACKSLASH:
            if raw[i + 1:i + 2] not in (b'"', b"\\"):
                return "bad quoting: only \\\\ and \\\" may follow a backslash"
            i += 2
            continue
        if c in (0x0D, 0x0A):
            return "bad quoting: CR or LF in a quoted string (send a literal)"
        if c == 0:
            return "bad quoting: NUL in a quoted string"
        i += 1
    return "bad quoting: missing closing quote"


def _unexpected(raw: bytes, pos: int, where: str) -> str:
    c = raw[pos]
    if c >= 0x80:
        return f"8-bit octet {where} (only strings may hold one)"
    if c in (0x0D, 0x0A):
        return "CR or LF outside a literal"
    if c < 0x20 or c == 0x7F:
        return f"control character 0x{c:02x} {where}"
    if c == _SP:
        return f"unexpected space {where}"
    return f"unexpected {chr(c)!r} {where}"
