"""LIST, LSUB and STATUS: which mailboxes a session sees, with what attributes.

- LIST follows RFC 9051 §6.3.9 and LIST-EXTENDED (RFC 5258): selection options
  SUBSCRIBED, REMOTE (accepted, nothing is remote), RECURSIVEMATCH and SPECIAL-USE
  (RFC 6154); return options SUBSCRIBED, CHILDREN, SPECIAL-USE and STATUS
  (LIST-STATUS, RFC 5819); several patterns in one command.
- Special-use attributes and \\HasChildren / \\HasNoChildren are always returned:
  clients find Sent and Drafts by them without asking.
- Levels that are not folders themselves (``Shared``, ``Shared/<address>``, a
  parent deleted under its children) are listed as ``\\Noselect`` (and
  ``\\NonExistent`` for an extended LIST) with ``\\HasChildren``.
- Subscriptions are names (RFC 3501 §6.3.6): a subscribed name that is no folder (its
  folder deleted, or never created) is listed by LSUB as ``\\Noselect`` and by LIST
  (SUBSCRIBED) as ``\\NonExistent \\Subscribed`` (RFC 5258 §3.4, §5); LSUB ``%``
  lists an unsubscribed parent of a subscribed name it does not reach as
  ``\\Noselect`` (RFC 3501 §6.3.9).
- STATUS of the selected folder is read from the session's snapshot (RFC 9051
  §6.3.11 allows it for every item but SIZE); other folders are counted by one
  aggregate query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mssante.auth.identity import Identity
from mssante.imap import wire
from mssante.imap.errors import bad, no
from mssante.imap.namespace import SHARED_PREFIX, Place, shared_mailboxes
from mssante.imap.tokens import Atom, String, Token
from mssante.operator.runtime import OperatorRuntime
from mssante.store.folders import DELIMITER


class Session(Protocol):
    """What LIST, LSUB and STATUS need of a session (session.py)."""

    ctx: OperatorRuntime
    home: str | None
    identity: Identity | None
    enabled: set[str]

    @property
    def utf8(self) -> bool: ...

    @property
    def append_limit(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def ok(self, tag: str, text: str, code: str | None = None) -> None: ...

    def mailbox_arg(self, token: Token) -> str: ...

    def enable_condstore(self) -> None: ...

    async def place(self, name: str) -> tuple[Place, str]: ...

_WILDCARD_RUN = re.compile(r"[*%]{2,}")
STATUS_ITEMS = frozenset({"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "RECENT", "SIZE",
                          "HIGHESTMODSEQ", "DELETED", "APPENDLIMIT"})
_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})


@dataclass(frozen=True, slots=True)
class Visible:
    name: str  # as the client sees it
    folder_id: int | None  # None: a level that is not a folder
    special_use: str | None
    subscribed: bool


async def visible_mailboxes(session: Session, *, subscriptions: bool = False
                            ) -> list[Visible]:
    """Every name the session may list, sorted, with the levels between them; with
    ``subscriptions`` (LSUB, LIST (SUBSCRIBED)), also the names subscribed that are no
    folder (RFC 3501 §6.3.6: deleted since, or never created)."""
    store = session.ctx.store.folders
    found: dict[str, Visible] = {}
    if session.home is not None:
        for folder in await store.all(session.home):
            found[folder.name] = Visible(folder.name, folder.id, folder.special_use,
                                         folder.subscribed)
        if subscriptions:
            for name in await store.subscribed_names(session.home):
                found.setdefault(name, Visible(name, None, None, True))
    identity = session.identity
    if identity is not None and not identity.is_program:
        for address, rights in shared_mailboxes(identity.login,
                                                await store.access(identity.login)):
            if "l" not in rights:
                continue
            prefix = f"{SHARED_PREFIX}{address}{DELIMITER}"
            for folder in await store.all(address, viewer=identity.login):
                found[prefix + folder.name] = Visible(prefix + folder.name, folder.id,
                                                      folder.special_use, folder.subscribed)
            if subscriptions:
                for name in await store.subscribed_names(address, viewer=identity.login):
                    found.setdefault(prefix + name, Visible(prefix + name, None, None, True))
    for name in list(found):
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            found.setdefault(parent, Visible(parent, None, None, False))
    return sorted(found.values(), key=lambda v: (v.name != "INBOX", v.name))


def full_pattern(reference: str, pattern: str) -> str:
    """RFC 9051 §6.3.9: the reference is prefixed unless the pattern starts with the
    delimiter; INBOX in any case is INBOX; runs of wildcards are one wildcard (``*`` if
    the run holds one, else ``%``), which matches the same names."""
    full = pattern if pattern.startswith(DELIMITER) or not reference else reference + pattern
    if reference.endswith(DELIMITER) and pattern.startswith(DELIMITER):
        full = reference + pattern[1:]
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in "/*%"):
        full = "INBOX" + full[5:]  # INBOX in any case (stored names spell it so)
    return _WILDCARD_RUN.sub(lambda m: "*" if "*" in m.group() else "%", full)


def matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches a full pattern: ``*`` anything, ``%`` anything but the
    delimiter. A walk over the set of pattern positions, O(len(name) × len(pattern)):
    a regular expression would backtrack exponentially on ``*a*a*a…`` and stall the
    operator's event loop."""
    states = _closure({0}, pattern)
    for char in name:
        following: set[int] = set()
        for i in states:
            if i == len(pattern):
                continue
            wanted = pattern[i]
            if wanted == "*" or (wanted == "%" and char != DELIMITER):
                following.add(i)
            elif wanted == char:
                following.add(i + 1)
        if not following:
            return False
        states = _closure(following, pattern)
    return len(pattern) in states


def _closure(states: set[int], pattern: str) -> set[int]:
    """A wildcard may match nothing: from its position, the next one is reached too."""
    out = set(states)
    todo = list(states)
    while todo:
        i = todo.pop()
        if i < len(pattern) and pattern[i] in "*%" and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return out


async def list_command(session: Session, tag: str, args: list[Token], *, lsub: bool) -> None:
    selection: set[str] = set()
    returns: set[str] = set()
    status_items: list[str] = []
    i = 0
    extended = False
    if not lsub and args and isinstance(args[0], list):
        extended = True
        for option in args[0]:
            name = _atom(option).upper()
            if name not in _SELECTION:
                raise bad(f"unknown LIST selection option {name}")
            selection.add(name)
        i = 1
    if len(args) < i + 2:
        raise bad("LIST takes a reference and a mailbox pattern")
    reference = session.mailbox_arg(args[i])
    raw_patterns = args[i + 1]
    patterns = ([session.mailbox_arg(p) for p in raw_patterns]
                if isinstance(raw_patterns, list) else [session.mailbox_arg(raw_patterns)])
    if isinstance(raw_patterns, list):
        extended = True
    rest = args[i + 2:]
    if rest:
        if lsub or len(rest) != 2 or _atom(rest[0]).upper() != "RETURN" \
                or not isinstance(rest[1], list):
            raise bad("LIST options end with RETURN (...)")
        extended = True
        options = rest[1]
        j = 0
        while j < len(options):
            name = _atom(options[j]).upper()
            if name == "STATUS":
                if j + 1 >= len(options) or not isinstance(options[j + 1], list):
                    raise bad("RETURN STATUS takes a list of items")
                status_items = [_atom(item).upper() for item in options[j + 1]]  # type: ignore[union-attr]
                if not status_items or any(item not in STATUS_ITEMS for item in status_items):
                    raise bad("unknown STATUS item")
                j += 2
                continue
            if name not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
                raise bad(f"unknown LIST return option {name}")
            returns.add(name)
            j += 1
    if "RECURSIVEMATCH" in selection and "SUBSCRIBED" not in selection:
        raise bad("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3.1
    verb = b"LSUB" if lsub else b"LIST"

    if patterns == [""] and not extended:  # RFC 9051 §6.3.9: the delimiter and root
        session.write(b"* " + verb + b' (\\Noselect) "/" ""\r\n')
        session.ok(tag, f"{verb.decode()} completed")
        return

    by_subscription = lsub or "SUBSCRIBED" in selection
    everything = await visible_mailboxes(session, subscriptions=by_subscription)
    # children are mailboxes (and the levels above them), not subscribed names
    existing = [v.name for v in everything if v.folder_id is not None]
    wanted = [full_pattern(reference, p) for p in patterns]
    lines: list[bytes] = []
    statuses: list[tuple[str, int]] = []
    subscribed = [v.name for v in everything if v.subscribed]
    for visible in everything:
        if not any(matches(p, visible.name) for p in wanted):
            continue
        attributes: list[str] = []
        below = visible.name + DELIMITER
        children = any(n.startswith(below) for n in existing)
        subscribed_below = [n for n in subscribed if n.startswith(below)]
        # RFC 5258 §3.5 (RFC 9051 §6.3.9.3 table): a parent of a mailbox that meets the
        # selection is listed with CHILDINFO, whether it meets it itself or not
        childinfo = "RECURSIVEMATCH" in selection and bool(subscribed_below)
        # RFC 3501 §6.3.9: with "foo/bar" subscribed and not "foo", LSUB "%" lists "foo"
        # as \Noselect, since the pattern does not reach "foo/bar"
        hidden = lsub and any(not any(matches(p, n) for p in wanted) for n in subscribed_below)
        if by_subscription and not visible.subscribed and not (childinfo or hidden):
            continue
        if visible.folder_id is None and not (children or by_subscription):
            continue  # a level above subscribed names only
        if "SPECIAL-USE" in selection and visible.special_use is None:
            continue
        if lsub and (visible.folder_id is None or not visible.subscribed):
            attributes.append("\\Noselect")
        elif visible.folder_id is None:
            # RFC 5258 §3.4: \NonExistent (which implies \Noselect) for a level or a
            # subscribed name that is no mailbox
            attributes.append("\\NonExistent" if extended else "\\Noselect")
        attributes.append("\\HasChildren" if children else "\\HasNoChildren")
        if visible.special_use:
            attributes.append(visible.special_use)
        if visible.subscribed and ("SUBSCRIBED" in returns or "SUBSCRIBED" in selection):
            attributes.append("\\Subscribed")
        lines.append(b"* " + verb + b" (" + " ".join(attributes).encode() + b') "/" ' +
                     wire.mailbox_name(visible.name, session.utf8) +
                     (b' ("CHILDINFO" ("SUBSCRIBED"))' if childinfo else b"") + b"\r\n")
        if status_items and visible.folder_id is not None:
            statuses.append((visible.name, len(lines)))
    out: list[bytes] = []
    status_at = {position: name for name, position in statuses}
    for n, line in enumerate(lines, start=1):
        out.append(line)
        if n in status_at:
            out.append(await _status_line(session, status_at[n], status_items))
    session.write(b"".join(out))
    session.ok(tag, f"{verb.decode()} completed")


async def status_command(session: Session, tag: str, args: list[Token]) -> None:
    if len(args) != 2 or not isinstance(args[1], list) or not args[1]:
        raise bad("STATUS takes a mailbox and a list of items")
    name = session.mailbox_arg(args[0])
    items = [_atom(item).upper() for item in args[1]]
    unknown = [item for item in items if item not in STATUS_ITEMS]
    if unknown:
        raise bad(f"unknown STATUS item {unknown[0]}")
    session.write(await _status_line(session, name, items))
    session.ok(tag, "STATUS completed")


async def _status_line(session: Session, name: str, items: Sequence[str]) -> bytes:
    place, rights = await session.place(name)
    if "r" not in rights:
        raise no("No such mailbox", "NONEXISTENT")
    folder = await session.ctx.store.folders.get(place.address, place.folder)
    if folder is None:
        raise no("No such mailbox", "NONEXISTENT")
    total, unseen, deleted, size = await session.ctx.store.folders.counts(folder.id)
    recent = 0
    if "RECENT" in items:  # messages no session claimed as \Recent (RFC 3501 §6.3.10)
        recent = await session.ctx.store.folders.recent_count(folder.id)
    values = {"MESSAGES": total, "UIDNEXT": folder.uidnext, "UIDVALIDITY": folder.uidvalidity,
              "UNSEEN": unseen, "RECENT": recent, "SIZE": size,
              "HIGHESTMODSEQ": folder.highestmodseq, "DELETED": deleted,
              "APPENDLIMIT": session.append_limit}  # RFC 7889 §3.1: the same everywhere
    if "HIGHESTMODSEQ" in items:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE enabling command
    body = " ".join(f"{item} {values[item]}" for item in items)
    return (b"* STATUS " + wire.mailbox_name(name, session.utf8) + b" (" + body.encode() +
            b")\r\n")


def _atom(token: Token) -> str:
    if isinstance(token, Atom):
        return token.value
    if isinstance(token, String):
        return token.text()
    raise bad("expected an atom")

