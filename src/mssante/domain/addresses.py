"""Mail addresses of the trust space, and the one parser of address header fields.

An MSSanté address is an ordinary RFC 5321 mailbox whose domain belongs to the trust
space (every such domain ends in ``mssante.fr``, and must also be on the whitelist:
that second check needs I/O and lives in the whitelist package).

Address header fields (From, Sender, Reply-To, To, Cc, Bcc) are read by
``parse_address_list`` and ``parse_one_mailbox`` only: the sending rules, the store, IMAP
ENVELOPE and SEARCH all see the same mailboxes (see the notes above ``Mailbox``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mssante.errors import InvalidAddress

PATIENT_DOMAIN = "patient.mssante.fr"
TRUST_SPACE_SUFFIX = "mssante.fr"

# RFC 5321 §4.1.2 Dot-string local part (no quoted strings: nobody in the trust space
# uses them, and refusing them closes a class of parser ambiguities).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# Used with fullmatch: "$" also matches before a final line feed, and "r\n@e.r" or
# "<a@b.fr\n>" passed as addresses.
_LOCAL_RE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# RFC 5321 §4.1.2 Domain: LDH labels, at least two of them.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A mailbox address, domain lower-cased, local part kept as written."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """The form used to compare and store addresses: all lower case."""
        return f"{self.local.lower()}@{self.domain}"

    @property
    def in_trust_space_namespace(self) -> bool:
        """True when the domain is ``mssante.fr`` or one of its subdomains."""
        return is_trust_space_domain(self.domain)

    @property
    def is_patient(self) -> bool:
        return self.domain == PATIENT_DOMAIN


def is_trust_space_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return domain == TRUST_SPACE_SUFFIX or domain.endswith("." + TRUST_SPACE_SUFFIX)


def parse_address(text: str) -> Address:
    """Parse ``local@domain`` (angle brackets allowed) or raise InvalidAddress."""
    raw = text.strip()
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1]
    if len(raw) > MAX_PATH - 2:
        raise InvalidAddress(f"address too long: {text!r}")
    local, sep, domain = raw.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidAddress(f"not a mail address: {text!r}")
    domain = domain.lower().rstrip(".")
    if len(local) > MAX_LOCAL_PART:
        raise InvalidAddress(f"local part longer than {MAX_LOCAL_PART} characters: {text!r}")
    if not _LOCAL_RE.fullmatch(local):
        raise InvalidAddress(f"invalid local part in {text!r}")
    if len(domain) > MAX_DOMAIN or not _DOMAIN_RE.fullmatch(domain):
        raise InvalidAddress(f"invalid domain in {text!r}")
    return Address(local, domain)


# --- address headers (RFC 5322 §3.4) ------------------------------------------------------
#
# One parser for every reader of From, Sender, Reply-To, To, Cc and Bcc: the sending rules,
# the store, IMAP ENVELOPE and SEARCH. Two parsers that disagree on one header let a
# message pass the rules as one sender and be shown as another; so there is one, and it
# is strict: what it does not understand is an error, never a guess.
#
# Accepted: address-list, mailbox, name-addr, angle-addr, group (RFC 5322 §3.4), the
# obsolete route in an angle-addr and the "." of obs-phrase ("Dr. Dupont") and empty list
# elements (RFC 5322 §4.4), quoted strings, nested comments, RFC 6532 UTF-8. Refused: the
# obsolete local part and domain with spaces or comments around their dots (a reader may
# rejoin them otherwise), a domain literal anywhere but after "@", anything unterminated.
# Encoded words (RFC 2047) stay as written in display names: readers decode them.
#
# Work is linear in the input: one left-to-right scan into tokens (regular expressions
# without nested repetition, a hand loop for comments) and a parser that reads each token
# once, with one token of look-ahead. Nothing backtracks.

_TEXT_CONTROL = "\x00-\x08\x0a-\x1f\x7f"
# RFC 5322 §3.2.3 atext, with RFC 6532 §3.2 UTF8-non-ascii
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\u0080-\U0010ffff"
_DOT_ATOM_TEXT = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*")
# RFC 5322 §3.2.4 quoted-string: qtext, quoted-pair, FWS (the value is unfolded)
_QUOTED = re.compile(f'"((?:[^"\\\\{_TEXT_CONTROL}]|\\\\[^{_TEXT_CONTROL}])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
# RFC 5322 §3.4.1 domain-literal: dtext and FWS
_DOMAIN_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e \t]*\]")
_SPECIALS = frozenset("<>@,;:.")
_CONTROL_CHAR = re.compile(f"[{_TEXT_CONTROL}]")
_CTEXT = re.compile(f"[^()\\\\{_TEXT_CONTROL}]+")  # RFC 5322 §3.2.2 ctext, with UTF-8

MAX_COMMENT_DEPTH = 32  # nesting deeper than any mail client writes

_ATOM, _QUOTED_STRING, _LITERAL, _SPECIAL = "atom", "quoted string", "domain literal", "special"


class AddressSyntaxError(InvalidAddress):
    """An address header that does not parse; ``str()`` says what and where."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One mailbox of an address header (RFC 5322 §3.4).

    ``local`` is the local part's value (a quoted string unquoted), ``domain`` the domain
    as written (a domain literal keeps its brackets), ``display_name`` the phrase with its
    quoted strings unquoted and encoded words left as written, ``route`` the obsolete
    source route ("@a,@b", RFC 5322 §4.4) when there is one.
    """

    display_name: str | None
    local: str
    domain: str
    route: str | None = None

    @property
    def local_text(self) -> str:
        """The local part as RFC 5322 writes it: a dot-atom, else a quoted string."""
        if _DOT_ATOM_TEXT.fullmatch(self.local):
            return self.local
        return '"' + self.local.replace("\\", "\\\\").replace('"', '\\"') + '"'

    @property
    def addr_spec(self) -> str:
        return f"{self.local_text}@{self.domain}"

    def address(self) -> Address:
        """The trust space's view of this mailbox; InvalidAddress when it is not one
        (a quoted local part, a domain literal, a one-label domain...)."""
        return parse_address(self.addr_spec)


@dataclass(frozen=True, slots=True)
class Group:
    """A named group of mailboxes (RFC 5322 §3.4), possibly empty."""

    display_name: str
    mailboxes: tuple[Mailbox, ...]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str  # atom and special: as written; quoted string: its value; literal: "[...]"
    spaced: bool  # white space or a comment before it
    position: int


def _comment_end(text: str, start: int) -> int:
    """The index after the comment opening at ``start`` (RFC 5322 §3.2.2, nested)."""
    depth, index, length = 0, start, len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            if index + 1 >= length or _CONTROL_CHAR.match(text, index + 1):
                break
            index += 2
            continue
        if char == "(":
            depth += 1
            if depth > MAX_COMMENT_DEPTH:
                raise AddressSyntaxError(
                    f"comments nested more than {MAX_COMMENT_DEPTH} deep at {start}")
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        elif _CONTROL_CHAR.match(char):
            break
        else:
            run = _CTEXT.match(text, index)
            assert run is not None  # char is ctext
            index = run.end()
            continue
        index += 1
    raise AddressSyntaxError(f"unterminated comment at {start}")


def _tokens(text: str) -> Iterator[_Token]:
    """The tokens of ``text``, made as the parser asks for them: an error stops the scan."""
    index, length, spaced = 0, len(text), False
    while index < length:
        char = text[index]
        if char in " \t":
            while index < length and text[index] in " \t":
                index += 1
            spaced = True
            continue
        if char == "(":
            index = _comment_end(text, index)
            spaced = True
            continue
        if char in _SPECIALS:
            yield _Token(_SPECIAL, char, spaced, index)
            index += 1
        elif char == '"':
            match = _QUOTED.match(text, index)
            if match is None:
                raise AddressSyntaxError(f"unterminated or invalid quoted string at {index}")
            value = _QUOTED_PAIR.sub(r"\1", match.group(1))
            yield _Token(_QUOTED_STRING, value, spaced, index)
            index = match.end()
        elif char == "[":
            match = _DOMAIN_LITERAL.match(text, index)
            if match is None:
                raise AddressSyntaxError(f"unterminated or invalid domain literal at {index}")
            yield _Token(_LITERAL, match.group(), spaced, index)
            index = match.end()
        else:
            match = _DOT_ATOM_TEXT.match(text, index)
            if match is None:
                raise AddressSyntaxError(f"unexpected {char!r} at {index}")
            yield _Token(_ATOM, match.group(), spaced, index)
            index = match.end()
        spaced = False


class _Parser:
    """Recursive descent over the tokens, one token of look-ahead (RFC 5322 §3.4)."""

    def __init__(self, text: str) -> None:
        self.stream = _tokens(text)
        self.current = next(self.stream, None)

    def peek(self) -> _Token | None:
        return self.current

    def advance(self) -> None:
        self.current = next(self.stream, None)

    def at(self, special: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == _SPECIAL and token.text == special

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise AddressSyntaxError("the address ends too early")
        self.advance()
        return token

    def expect(self, special: str, what: str) -> None:
        token = self.peek()
        if not self.at(special):
            found = "the end" if token is None else f"{token.text!r} at {token.position}"
            raise AddressSyntaxError(f"expected {what}, found {found}")
        self.advance()

    def address_list(self) -> tuple[Mailbox | Group, ...]:
        out: list[Mailbox | Group] = []
        while self.peek() is not None:
            if self.at(","):  # RFC 5322 §4.4 obs-addr-list: empty elements
                self.advance()
                continue
            out.append(self.address(groups=True))
            if self.peek() is not None:
                self.expect(",", '"," between addresses')
        return tuple(out)

    def address(self, *, groups: bool) -> Mailbox | Group:
        words = self.words()
        if self.at("<"):
            return self.angle_addr(self.phrase(words) if words else None)
        if self.at(":"):
            if not groups:
                raise AddressSyntaxError(f"a group inside a group at {self.take().position}")
            if not words:
                raise AddressSyntaxError(f"a group without a name at {self.take().position}")
            return self.group(self.phrase(words))
        if self.at("@"):
            local = self.local_part(words)
            self.advance()
            return Mailbox(None, local, self.domain())
        token = self.peek()
        if token is None:
            raise AddressSyntaxError("a display name without an address")
        raise AddressSyntaxError(f"unexpected {token.text!r} at {token.position}")

    def words(self) -> list[_Token]:
        """The run of atoms, quoted strings and dots before "<", ":" or "@"."""
        out: list[_Token] = []
        while (token := self.peek()) is not None and (
                token.kind in (_ATOM, _QUOTED_STRING) or self.at(".")):
            out.append(token)
            self.advance()
        return out

    @staticmethod
    def phrase(words: list[_Token]) -> str | None:
        """RFC 5322 §3.2.5 phrase, with obs-phrase's dots; words joined by one space."""
        if words[0].kind == _SPECIAL:
            raise AddressSyntaxError(f"a display name starts with '.' at {words[0].position}")
        text = "".join((" " if token.spaced and i else "") + token.text
                       for i, token in enumerate(words))
        return text or None

    @staticmethod
    def local_part(words: list[_Token]) -> str:
        """RFC 5322 §3.4.1 local-part: one dot-atom or one quoted string."""
        if not words:
            raise AddressSyntaxError("an address without a local part")
        if len(words) > 1 or words[0].kind == _SPECIAL:
            extra = words[1] if len(words) > 1 else words[0]
            raise AddressSyntaxError(
                f"invalid local part at {words[0].position}: {extra.text!r} at "
                f"{extra.position} (spaces, comments or a stray dot)")
        return words[0].text

    def domain(self) -> str:
        """RFC 5322 §3.4.1 domain: a dot-atom or a domain literal."""
        token = self.take()
        if token.kind not in (_ATOM, _LITERAL):
            raise AddressSyntaxError(f"expected a domain, found {token.text!r} at "
                                     f"{token.position}")
        following = self.peek()
        if following is not None and (following.kind != _SPECIAL or following.text in ".@"):
            raise AddressSyntaxError(f"invalid domain: {following.text!r} at "
                                     f"{following.position}")
        return token.text

    def angle_addr(self, name: str | None) -> Mailbox:
        self.expect("<", '"<"')
        route = self.route() if self.at("@") or self.at(",") else None
        local = self.local_part(self.words())
        self.expect("@", '"@" in the address')
        domain = self.domain()
        self.expect(">", '">" closing the address')
        return Mailbox(name, local, domain, route)

    def route(self) -> str:
        """RFC 5322 §4.4 obs-route: obs-domain-list ":"; kept for IMAP ENVELOPE only."""
        hops: list[str] = []
        while True:
            while self.at(","):
                self.advance()
            self.expect("@", '"@" in the route')
            hops.append("@" + self.domain())
            if self.at(":"):
                self.advance()
                return ",".join(hops)
            self.expect(",", '"," or ":" in the route')

    def group(self, name: str | None) -> Group:
        self.expect(":", '":"')
        members: list[Mailbox] = []
        while not self.at(";"):
            if self.peek() is None:
                raise AddressSyntaxError("unterminated group: ';' is missing")
            if self.at(","):  # RFC 5322 §4.4 obs-group-list
                self.advance()
                continue
            member = self.address(groups=False)
            assert isinstance(member, Mailbox)
            members.append(member)
            if not self.at(";"):
                self.expect(",", '"," or ";" in the group')
        self.advance()
        return Group(name or "", tuple(members))


def parse_address_list(text: str) -> tuple[Mailbox | Group, ...]:
    """RFC 5322 §3.4 address-list (To, Cc, Bcc, Reply-To); empty for a blank value.
    Raises AddressSyntaxError with the reason.

    The answer is immutable, and kept for the last few thousand values of up to a
    header line's length: the same From and To come back message after message, and
    each is read by the rules, the summary and the sort keys. Longer values (a long
    list of recipients) are parsed anew, so that the cache stays small whatever is
    sent."""
    if len(text) <= _CACHED_VALUE:
        return _parse_cached(text)
    return _Parser(text).address_list()


_CACHED_VALUE = 998  # RFC 5322 §2.1.1: a line's limit


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> tuple[Mailbox | Group, ...]:
    return _Parser(text).address_list()


def mailboxes(items: tuple[Mailbox | Group, ...]) -> tuple[Mailbox, ...]:
    """Every mailbox of an address list, group members in place of their group."""
    out: list[Mailbox] = []
    for item in items:
        if isinstance(item, Group):
            out.extend(item.mailboxes)
        else:
            out.append(item)
    return tuple(out)


def parse_one_mailbox(text: str) -> Mailbox:
    """The single mailbox of a From or Sender field; AddressSyntaxError for anything else
    (RFC 5322 §3.6.2: Sender is one mailbox; MSSanté: one author, the one the rules check)."""
    items = parse_address_list(text)
    if len(items) != 1:
        raise AddressSyntaxError(f"one mailbox expected, found {len(items) or 'none'}")
    item = items[0]
    if isinstance(item, Group):
        raise AddressSyntaxError("one mailbox expected, found a group")
    return item


def readable(items: tuple[Mailbox | Group, ...],
             decode: Callable[[str], str] = str) -> str:
    """An address list as a person reads it, and as SEARCH FROM/TO/CC/BCC match it
    (RFC 9051 §6.4.4: the envelope's field): ``Name <local@domain>`` or ``local@domain``
    for each mailbox, ``Name: ...;`` for a group, comments left out, display names
    passed through ``decode`` (the caller's RFC 2047 decoder)."""

    def one(mailbox: Mailbox) -> str:
        if mailbox.display_name is None:
            return mailbox.addr_spec
        return f"{decode(mailbox.display_name)} <{mailbox.addr_spec}>"

    parts = [f"{decode(item.display_name)}: {', '.join(one(m) for m in item.mailboxes)};"
             if isinstance(item, Group) else one(item) for item in items]
    return ", ".join(parts)
