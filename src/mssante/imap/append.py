"""APPEND's arguments: one message or several (MULTIAPPEND, RFC 3502), each a literal
(literal8 too, RFC 3516 §4.4) or a CATENATE list of text and IMAP URLs to messages
the user may read (RFC 4469, URLs as RFC 5092 §3 writes them).

Implementation notes:
- ``parse_append`` is pure: the mailbox token and one ``Part`` per message, each with
  its flag list, date-time and content (a ``String`` or a list of ``Piece``).
- A URL names a message of a mailbox the session may read (the ``r`` right, the
  same resolution as SELECT); the session builds the message (``Session.catenated``).
  A URL that does not parse, uses URLAUTH (RFC 4467: not offered here), names
  another user, a mailbox whose UIDVALIDITY differs, or a message, part or range that
  is not there answers ``NO [BADURL <url>]`` (RFC 4469 §6) and nothing is appended.
  Relative URLs start at the server's root (``/INBOX;UIDVALIDITY=1/;UID=2``), or at
  the selected mailbox when they begin with ``;UID=`` (RFC 4469 §5, RFC 3986 §5.2).
- A message a URL names is read as a FETCH reads it: the audit trail records the
  read (``READ``, the source ``IMAP <address>``) before the message is built.
- The host of an absolute URL is not compared with this server's names (it has
  several, one per listener and per client's view); the user, when given, must be
  the session's login.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Protocol

from mssante.audit.events import READ, AuditEvent, actor_of
from mssante.auth.identity import Identity
from mssante.imap.errors import Reply, bad, no
from mssante.imap.mime import BadSection, Message, parse_section
from mssante.imap.namespace import Place
from mssante.imap.tokens import Atom, String, Token
from mssante.operator.runtime import OperatorRuntime

MAX_PIECES = 100  # parts of one CATENATE


@dataclass(frozen=True, slots=True)
class MessageUrl:
    """A message or a part of one, as an IMAP URL names it (RFC 5092 §3)."""

    text: str  # as sent, for BADURL
    user: str | None
    mailbox: str | None  # None: the selected mailbox
    uidvalidity: int | None
    uid: int
    section: str  # "" for the whole message, else as in BODY[...]
    partial: tuple[int, int | None] | None  # (offset, length)


@dataclass(frozen=True, slots=True)
class Piece:
    """One item of a CATENATE list: literal text, or a URL."""

    text: bytes | None
    url: MessageUrl | None


@dataclass(frozen=True, slots=True)
class Part:
    """One message of an APPEND."""

    flags: list[Token] | None
    date: str | None
    content: String | list[Piece]


def badurl(url: str, reason: str) -> Reply:
    return no(reason, "BADURL " + url)


_SERVER = re.compile(r"imap://(?:(?P<user>[^@/;]*)(?:;AUTH=[^@/]*)?@)?[^/]*(?=/)", re.I)
_PATH = re.compile(
    r"(?:/(?P<mailbox>.+?)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9][0-9]{0,9}))?/)?"
    r";UID=(?P<uid>[1-9][0-9]{0,9})"
    r"(?:/;SECTION=(?P<section>[^/;]*))?"
    r"(?:/;PARTIAL=(?P<offset>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?", re.I)


def parse_url(text: str) -> MessageUrl:
    """An absolute or relative IMAP URL to a message (RFC 5092 §3); BADURL if not."""
    rest = text
    user: str | None = None
    server = _SERVER.match(rest)
    if server is not None:
        user = urllib.parse.unquote(server.group("user")) if server.group("user") else None
        rest = rest[server.end():]
    elif rest.lower().startswith("imap:"):
        raise badurl(text, "not an IMAP URL to a message")
    match = _PATH.fullmatch(rest)
    if match is None:
        if ";urlauth=" in rest.lower() or ";expire=" in rest.lower():
            raise badurl(text, "URLAUTH is not supported")
        raise badurl(text, "not an IMAP URL to a message")
    mailbox = match.group("mailbox")
    if server is not None and mailbox is None:
        raise badurl(text, "an absolute URL names its mailbox")
    try:
        name = None if mailbox is None else urllib.parse.unquote(mailbox, errors="strict")
        section = urllib.parse.unquote(match.group("section") or "", errors="strict")
    except UnicodeDecodeError:
        raise badurl(text, "URLs are UTF-8") from None
    if section:
        try:
            parse_section(section)
        except BadSection:
            raise badurl(text, "bad section") from None
    partial: tuple[int, int | None] | None = None
    if match.group("offset") is not None:
        length = match.group("length")
        partial = (int(match.group("offset")), int(length) if length else None)
    uidvalidity = match.group("uidvalidity")
    return MessageUrl(text, user, name, int(uidvalidity) if uidvalidity else None,
                      int(match.group("uid")), section, partial)


def _astring(token: Token) -> str:
    if isinstance(token, Atom):
        return token.value
    if isinstance(token, String):
        return token.text()
    raise bad("expected a URL")


def _catenation(items: list[Token]) -> list[Piece]:
    """``(URL "/INBOX;UIDVALIDITY=1/;UID=2" TEXT {12}...)`` (RFC 4469 §5)."""
    if not items or len(items) % 2 or len(items) > 2 * MAX_PIECES:
        raise bad("CATENATE takes URL and TEXT items")
    pieces: list[Piece] = []
    for kind, value in zip(items[::2], items[1::2], strict=True):
        name = kind.upper if isinstance(kind, Atom) else ""
        if name == "TEXT":
            if not isinstance(value, String) or not value.literal:
                raise bad("TEXT takes a literal")
            pieces.append(Piece(value.value, None))
        elif name == "URL":
            pieces.append(Piece(None, parse_url(_astring(value))))
        else:
            raise bad("CATENATE takes URL and TEXT items")
    return pieces


def parse_append(args: list[Token]) -> tuple[Token, list[Part]]:
    """``mailbox 1*([flags] [date-time] (literal / CATENATE (...)))`` (RFC 9051 §6.3.12,
    RFC 3502 §6, RFC 4469 §5)."""
    if len(args) < 2:
        raise bad("APPEND takes a mailbox, optional flags and date, and a message")
    parts: list[Part] = []
    flags: list[Token] | None = None
    date: str | None = None
    i = 1
    while i < len(args):
        token = args[i]
        if isinstance(token, list) and flags is None and date is None:
            flags = token
        elif isinstance(token, String) and not token.literal and date is None:
            date = token.text()
        elif isinstance(token, String):
            parts.append(Part(flags, date, token))
            flags, date = None, None
        elif isinstance(token, Atom) and token.upper == "CATENATE" and i + 1 < len(args) \
                and isinstance(args[i + 1], list):
            items = args[i + 1]
            assert isinstance(items, list)
            parts.append(Part(flags, date, _catenation(items)))
            flags, date = None, None
            i += 1
        else:
            raise bad("APPEND takes a flag list, a quoted date-time and a literal")
        i += 1
    if flags is not None or date is not None or not parts:
        raise bad("the message must be a literal")
    return args[0], parts


# --- building a CATENATE message ----------------------------------------------------------


class _Selected(Protocol):
    @property
    def place(self) -> Place: ...


class _Connection(Protocol):
    @property
    def peer_address(self) -> str: ...


class Session(Protocol):
    """What CATENATE needs of a session (session.py)."""

    ctx: OperatorRuntime
    identity: Identity | None

    @property
    def conn(self) -> _Connection: ...

    @property
    def selected(self) -> _Selected | None: ...

    async def place(self, name: str) -> tuple[Place, str]: ...


async def _resolve(session: Session, url: MessageUrl) -> bytes:
    """The octets a URL names, if the session may read them; BADURL otherwise."""
    identity = session.identity
    if url.user is not None and (identity is None
                                 or url.user.casefold() != identity.login.casefold()):
        raise badurl(url.text, "the URL names another user")
    if url.mailbox is None:
        if session.selected is None:
            raise badurl(url.text, "a relative URL needs a selected mailbox")
        place, rights = session.selected.place, "r"
    else:
        try:
            place, rights = await session.place(url.mailbox)
        except Reply:
            raise badurl(url.text, "no such mailbox") from None
    if "r" not in rights:
        raise badurl(url.text, "you may not read that mailbox")
    folders = session.ctx.store.folders
    folder = await folders.get(place.address, place.folder)
    if folder is None or (url.uidvalidity is not None
                          and url.uidvalidity != folder.uidvalidity):
        raise badurl(url.text, "no such mailbox, or another UIDVALIDITY")
    found = await folders.message_data(folder.id, [url.uid])
    if not found:
        raise badurl(url.text, "no such message")
    raw = (await folders.bodies([found[0].body_sha256])).get(found[0].body_sha256)
    if raw is None:
        raise badurl(url.text, "no such message")
    # its content is read, as a FETCH of it would: the audit trail records it first
    actor = "" if identity is None else actor_of(
        identity.login, identity.psc.subject if identity.psc else None,
        identity.app_password)
    await session.ctx.store.audit_record([AuditEvent(
        READ, actor, place.address, found[0].message_id, f"IMAP {session.conn.peer_address}",
        f"{place.folder} uid {url.uid} (CATENATE)")])
    data = raw
    if url.section:
        message = Message(raw)
        section = parse_section(url.section)
        if section.part and message.part(section.part) is None:
            raise badurl(url.text, "no such part")
        data = message.section(section)
    if url.partial is not None:
        offset, length = url.partial
        data = data[offset:] if length is None else data[offset:offset + length]
    return data


async def catenate(session: Session, pieces: list[Piece], limit: int) -> bytes:
    """The message a CATENATE list makes (RFC 4469 §5); TOOBIG past ``limit`` octets."""
    out: list[bytes] = []
    size = 0
    for piece in pieces:
        data = piece.text if piece.url is None else await _resolve(session, piece.url)
        assert data is not None
        size += len(data)
        if size > limit:
            raise no(f"the message exceeds {limit} octets", "TOOBIG")
        out.append(data)
    if not size:
        raise no("the message is empty")
    return b"".join(out)
