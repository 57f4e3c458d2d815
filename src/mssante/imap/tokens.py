"""The values the command parser produces for generic arguments.

A command's arguments arrive as a list of tokens: ``Atom`` for atoms (including
sequence sets, flags such as ``\\Seen`` and fetch attributes such as
``BODY.PEEK[HEADER.FIELDS (FROM)]<0.100>``, kept whole), ``String`` for quoted
strings and literals (RFC 9051 §4.3), and Python lists for parenthesised lists.
NIL is the atom ``NIL``: only the command that reads it knows whether it means nil.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Atom:
    value: str  # as sent; compare case-insensitively where the RFC says so

    @property
    def upper(self) -> str:
        return self.value.upper()


@dataclass(frozen=True, slots=True)
class String:
    value: bytes  # the decoded content of a quoted string, or a literal's octets
    literal: bool = False  # sent as {n} / {n+} / ~{n}
    binary: bool = False  # RFC 3516 literal8 ~{n}

    def text(self) -> str:
        return self.value.decode("utf-8", "surrogateescape")


Token: TypeAlias = "Atom | String | list[Token]"
