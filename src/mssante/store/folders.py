"""Folders (IMAP mailboxes) of an MSSanté mailbox, and the messages in them.

Every MSSanté mailbox has an INBOX, where delivery puts messages, and the
special-use folders Sent, Drafts, Trash and Archive (RFC 6154); its users add
their own, with "/" between hierarchy levels.

Implementation notes:
- UIDs and MODSEQs are taken from the folder row inside the writing transaction
  (RFC 9051 §2.3.1.1, RFC 7162 §3.1): on PostgreSQL that row is locked first
  (``UPDATE ... RETURNING`` or ``FOR UPDATE``), on SQLite the write lock already
  serialises writers. Writers of one folder thus commit in MODSEQ order, so a
  reader that saw MODSEQ n and later asks "what changed after n" misses nothing.
- Every change that touches messages takes one new MODSEQ for the folder (all the
  messages it changes get it) and records expunged UIDs in ``expunged`` with it,
  for QRESYNC (RFC 7162 §3.2.10).
- A folder created again after a delete, and a renamed folder, get a UIDVALIDITY
  greater than any its mailbox gave before (``mailboxes.uidvalidity`` keeps the last
  one), so that a client never mixes UIDs of the old and the new folder.
- INBOX is never deleted and never given a special use; renaming it moves its
  messages to the new folder and leaves it empty (RFC 9051 §6.3.6).
- Flags are stored as one space-separated string per message, sorted, without
  duplicates; ``\\Recent`` is never stored (it is a property of a session): the folder
  keeps only ``recent_uid``, the first UID no session claimed (``claim_recent``).
- Subscriptions are names (RFC 3501 §6.3.6): a folder's own (``folders.subscribed``,
  and each person's in ``folder_subscriptions``) move to ``subscriptions`` under its
  name when it is deleted, and back to the folder created again under that name;
  SUBSCRIBE of a name that is no folder writes there too.
- A large body is read in pieces (``body_piece``, for IMAP's streamed FETCH); the
  database materialises the whole value to cut a piece (SQLite always, PostgreSQL when
  the value is compressed), so at most ``PIECE_READERS`` such reads run at once.
- After each commit, the folders it changed are published on the store's change
  hub (changes.py); on PostgreSQL the same transaction notifies other processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Integer,
    LargeBinary,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.content.headers import MAX_HEADER_SECTION, read_headers
from mssante.content.sortkeys import stored as stored_sort_keys
from mssante.domain.mailboxes import Holding, MailboxType, Role
from mssante.errors import Conflict, NotFound, PolicyViolation
from mssante.store.bodies import drop_orphans_in as drop_orphan_bodies
from mssante.store.bodies import insert_in as insert_bodies
from mssante.store.changes import CHANNEL, ChangeHub
from mssante.store.delivery import INBOX
from mssante.store.models import (
    Folder,
    FolderChanges,
    FolderState,
    MessageData,
)
from mssante.store.schema import (
    bodies,
    expunged,
    folder_subscriptions,
    folders,
    mailbox_roles,
    mailboxes,
    messages,
    persons,
    subscriptions,
)
from mssante.store.transactions import Transactions

DELIMITER = "/"
DEFAULT_FOLDERS = (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"),
                   ("Archive", "\\Archive"))
SPECIAL_USES = frozenset(use for _, use in DEFAULT_FOLDERS) | {"\\Junk", "\\Flagged",
                                                                "\\All"}
# An APPEND to Sent of a message that submission already kept there (same
# Message-ID, Subject, From and Date, kept within SENT_COPY_WINDOW, among the
# folder's SENT_COPY_LOOKBACK newest messages) is that copy: see submitted_copy.
# Clients save right after sending; a short window keeps synchronising tools,
# which push old local copies, out of it.
SENT_COPY_WINDOW = 600.0
SENT_COPY_LOOKBACK = 200
MAX_NAME = 255  # characters of a folder name
MAX_DEPTH = 16  # hierarchy levels
_CHUNK = 900  # UIDs per IN (...) list
PIECE_READERS = 2  # body_piece reads running at once (each may hold a whole body briefly)
_BY_ID = (select(folders, mailboxes.c.address)
          .join(mailboxes, mailboxes.c.id == folders.c.mailbox_id)
          .where(folders.c.id == bindparam("folder_id")))
_SUMMARY_COLUMNS = {"subject": messages.c.subject, "from": messages.c.from_header,
                    "message-id": messages.c.message_id, "date": messages.c.date_header}
SUMMARY_FIELDS = frozenset(_SUMMARY_COLUMNS)
_SUMMARIES = text("SELECT uid, subject, from_header, message_id, date_header FROM messages "
                  "WHERE folder_id = :folder_id AND uid BETWEEN :lo AND :hi")
_SORT_DATA = text("SELECT uid, received_at, size, sort_keys, body_sha256 FROM messages "
                  "WHERE folder_id = :folder_id AND uid BETWEEN :lo AND :hi")
# changed messages (flags never NULL) then expunged UIDs (NULL flags), in one trip
# One statement sees one state of the database: the folder's HIGHESTMODSEQ and UIDNEXT
# (the row of kind 2, UIDNEXT in the uid column) are read with the messages (kind 0)
# and expunged UIDs (kind 1) they describe, so a snapshot never holds a change its
# label does not count.
_LABEL = "SELECT uidnext, NULL, highestmodseq, 2 FROM folders WHERE id = :folder_id"
_CHANGES = text("SELECT uid, flags, modseq, 0 FROM messages WHERE folder_id = :folder_id "
                "AND modseq > :since UNION ALL SELECT uid, NULL, modseq, 1 FROM expunged "
                f"WHERE folder_id = :folder_id AND modseq > :since UNION ALL {_LABEL} "
                "ORDER BY 4, 1")
_STATE = text("SELECT uid, flags, modseq, 0 FROM messages WHERE folder_id = :folder_id "
              f"UNION ALL {_LABEL} ORDER BY 4, 1")
# The statements of the grouped writes (STORE, EXPUNGE, APPEND, \Recent), built once:
# building a Core statement costs more than SQLite takes to run it.
_IN_FOLDER = messages.c.folder_id == bindparam("folder_id")
_THIS_FOLDER = folders.c.id == bindparam("folder_id")
_UID_LIST = bindparam("uids", expanding=True, type_=Integer)
_NEXT_MODSEQ = (update(folders).where(_THIS_FOLDER)
                .values(highestmodseq=folders.c.highestmodseq + 1)
                .returning(folders.c.highestmodseq))
_TAKE_UIDS = (update(folders).where(_THIS_FOLDER)
              .values(uidnext=folders.c.uidnext + bindparam("count", type_=Integer),
                      highestmodseq=folders.c.highestmodseq + 1)
              .returning(folders.c.mailbox_id, folders.c.uidnext, folders.c.highestmodseq,
                         folders.c.uidvalidity))
_FOLDER_ROW = select(folders.c.id).where(_THIS_FOLDER)
_RECENT_UID = select(folders.c.recent_uid).where(_THIS_FOLDER)
_SET_RECENT_UID = update(folders).where(_THIS_FOLDER).values(recent_uid=bindparam("upto"))
_CURRENT_FLAGS = select(messages.c.uid, messages.c.flags, messages.c.modseq)
_FLAGS_BETWEEN = _CURRENT_FLAGS.where(
    _IN_FOLDER, messages.c.uid.between(bindparam("lo"), bindparam("hi")))
_FLAGS_IN = _CURRENT_FLAGS.where(_IN_FOLDER, messages.c.uid.in_(_UID_LIST))
_SET_FLAGS = (update(messages)
              .where(messages.c.folder_id == bindparam("b_folder"),
                     messages.c.uid == bindparam("b_uid"))
              .values(flags=bindparam("b_flags"), modseq=bindparam("b_modseq")))
_DELETED = (select(messages.c.uid, messages.c.flags, messages.c.body_sha256)
            .where(_IN_FOLDER, messages.c.flags.like("%\\Deleted%", escape="!")))
_DELETE_UIDS = delete(messages).where(_IN_FOLDER, messages.c.uid.in_(_UID_LIST))
_INSERT_MESSAGES = insert(messages)
_INSERT_EXPUNGED = insert(expunged)
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


# A person's access to an MSSanté mailbox: the domain's Holding (role, rights, open or
# closed, creation order, recorded home), which decides home and visibility.
Access = Holding

_HOLDINGS = (select(mailboxes.c.address, mailboxes.c.type, mailboxes.c.active,
                    mailboxes.c.id, mailbox_roles.c.role, mailbox_roles.c.rights,
                    mailbox_roles.c.home)
             .select_from(persons)
             .join(mailbox_roles, mailbox_roles.c.person_id == persons.c.id)
             .join(mailboxes, mailboxes.c.id == mailbox_roles.c.mailbox_id))


# A login's holdings, read at every MAIL and DATA of submission: one statement built
# once, whose cache key SQLAlchemy then keeps (it costs more than the query to build).
HOLDINGS_OF_LOGIN = (_HOLDINGS.where(persons.c.login == bindparam("login"))
                      .order_by(mailboxes.c.address))


async def read_holdings(conn: AsyncConnection, *, login: str | None = None,
                        person_id: int | None = None, address: str | None = None
                        ) -> list[Holding]:
    """The roles of one person (by login or id) on mailboxes, ordered by address; with
    ``address``, on that mailbox only."""
    if login is not None and person_id is None and address is None:
        rows = await conn.execute(HOLDINGS_OF_LOGIN, {"login": login})
    else:
        query = _HOLDINGS
        if login is not None:
            query = query.where(persons.c.login == login)
        if person_id is not None:
            query = query.where(persons.c.id == person_id)
        if address is not None:
            query = query.where(mailboxes.c.address == address)
        rows = await conn.execute(query.order_by(mailboxes.c.address))
    return [holding(tuple(row)) for row in rows]


def holding(row: tuple[Any, ...]) -> Holding:
    """A row of ``_HOLDINGS`` (or ``HOLDINGS_OF_LOGIN``), in its column order."""
    address, type_, active, mailbox_id, role, rights, home = row
    return Holding(address, MailboxType(type_), Role(role), rights, bool(active),
                   int(mailbox_id), bool(home))


def normalise_name(name: str) -> str:
    """The stored form of a folder name: INBOX in upper case (RFC 9051 §5.1: INBOX is
    case-insensitive), including as the first level of a hierarchy; ValueError when
    the name cannot be a folder."""
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a folder name has 1 to {MAX_NAME} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or "*" in name or "%" in name:
        raise ValueError("a folder name holds no control character, '*' nor '%'")
    parts = name.split(DELIMITER)
    if any(part == "" for part in parts):
        raise ValueError(f"empty level in folder name {name!r}")
    if len(parts) > MAX_DEPTH:
        raise ValueError(f"a folder name has at most {MAX_DEPTH} levels")
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    return DELIMITER.join(parts)


def canonical_flags(flags: Iterable[str]) -> str:
    """Sorted, unique, without \\Recent; system flags keep their RFC spelling."""
    seen: dict[str, str] = {}
    for flag in flags:
        if not flag or flag.lower() == "\\recent":
            continue
        spelled = _SYSTEM.get(flag.lower(), flag)
        seen.setdefault(spelled.lower(), spelled)
    return " ".join(sorted(seen.values()))


_SYSTEM = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                  "\\Draft")}


class FolderStore:
    """Folder operations of a store (``store.folders``)."""

    def __init__(self, tx: Transactions, hub: ChangeHub) -> None:
        self._tx = tx
        self.hub = hub
        # SQLite (and a compressed PostgreSQL value) materialises a whole body to cut a
        # piece of it: so many such reads at once, not one per streaming client
        self._piece_readers = asyncio.Semaphore(PIECE_READERS)

    # ------------------------------------------------------------ access

    async def access(self, login: str) -> list[Access]:
        """The MSSanté mailboxes ``login`` holds a role on, ordered by address."""
        async with self._tx.read() as conn:
            return await read_holdings(conn, login=login)

    async def access_to(self, login: str, address: str) -> Access | None:
        """``login``'s current access to one mailbox (None: none any more)."""
        async with self._tx.read() as conn:
            found = await read_holdings(conn, login=login, address=address)
        return found[0] if found else None

    # ----------------------------------------------------------- folders

    async def all(self, address: str, *, viewer: str | None = None) -> list[Folder]:
        """The folders of a mailbox, INBOX first then by name; with ``viewer`` (a
        person's login), ``subscribed`` is that person's own choice where they made
        one (``subscribe(viewer=...)``), the folder's otherwise."""
        query = (select(folders, mailboxes.c.address)
                 .join(mailboxes, mailboxes.c.id == folders.c.mailbox_id)
                 .where(mailboxes.c.address == address.lower()))
        if viewer is not None:
            person_id = select(persons.c.id).where(persons.c.login == viewer).scalar_subquery()
            query = (select(*(c for c in folders.c if c.name != "subscribed"),
                            func.coalesce(folder_subscriptions.c.subscribed,
                                          folders.c.subscribed).label("subscribed"),
                            mailboxes.c.address)
                     .join(mailboxes, mailboxes.c.id == folders.c.mailbox_id)
                     .outerjoin(folder_subscriptions,
                                and_(folder_subscriptions.c.folder_id == folders.c.id,
                                     folder_subscriptions.c.person_id == person_id))
                     .where(mailboxes.c.address == address.lower()))
        async with self._tx.read() as conn:
            rows = (await conn.execute(query)).all()
        found = [_folder(row) for row in rows]
        return sorted(found, key=lambda f: (f.name != INBOX, f.name))

    async def get(self, address: str, name: str) -> Folder | None:
        try:
            name = normalise_name(name)
        except ValueError:
            return None
        async with self._tx.read() as conn:
            return await self._get(conn, address.lower(), name)

    async def by_id(self, folder_id: int) -> Folder | None:
        async with self._tx.read() as conn:
            row = (await conn.execute(_BY_ID, {"folder_id": folder_id})).first()
        return _folder(row) if row is not None else None

    async def special(self, address: str, special_use: str, name: str) -> Folder:
        """The folder of a mailbox with this special use (RFC 6154 §2: a client finds
        Drafts or Trash by its attribute, not its name), created as ``name`` with the
        use when the mailbox has none (its holder deleted it); a folder already called
        ``name`` without a use is taken as it is. NotFound when the mailbox is gone."""
        if special_use not in SPECIAL_USES:
            raise ValueError(f"unknown special use {special_use!r}")
        for _ in range(2):  # a second look when another writer created it meanwhile
            found = [f for f in await self.all(address) if f.special_use == special_use]
            if found:
                return found[0]
            named = await self.get(address, name)
            if named is not None:
                return named
            try:
                return await self.create(address, name, special_use=special_use)
            except Conflict:
                continue
        raise Conflict(f"the {special_use} folder of {address} keeps changing")

    async def create(self, address: str, name: str, *, special_use: str | None = None,
                     subscribed: bool = True) -> Folder:
        """Create a folder and those of its superior levels that do not exist (RFC 9051
        §6.3.4: the server SHOULD create them); Conflict if it exists, ValueError for a
        bad name. ``subscribed``: whether they start subscribed (IMAP's CREATE: no, as
        RFC 9051 §6.3.4 does not ask it; the special-use folders the operator makes:
        yes); a subscription kept under the name (after a DELETE, or a SUBSCRIBE before
        the folder existed) is theirs anyway."""
        name = normalise_name(name)
        if name == INBOX:
            raise Conflict("INBOX exists already")
        if special_use is not None and special_use not in SPECIAL_USES:
            raise ValueError(f"unknown special use {special_use!r}")
        async with self._tx.write(conflict=f"the folder {name} exists already") as conn:
            mailbox_id = await self._mailbox_id(conn, address, lock=True)
            if special_use is not None and (await conn.execute(
                    select(folders.c.id).where(folders.c.mailbox_id == mailbox_id,
                                               folders.c.special_use == special_use))).first():
                raise Conflict(f"a folder is {special_use} already")
            await self._create_parents(conn, mailbox_id, name, subscribed)
            uidvalidity = await self._next_uidvalidity(conn, mailbox_id)
            folder_id, subscribed = await self._insert_folder(
                conn, mailbox_id, name, special_use=special_use, uidvalidity=uidvalidity,
                subscribed=subscribed)
        return Folder(folder_id, address.lower(), name, special_use, uidvalidity, 1, 1,
                      subscribed)

    async def _insert_folder(self, conn: AsyncConnection, mailbox_id: int, name: str, *,
                             special_use: str | None = None, uidvalidity: int,
                             uidnext: int = 1, highestmodseq: int = 1,
                             subscribed: bool) -> tuple[int, bool]:
        """Insert a folder row, which takes the subscriptions kept under its name (RFC
        3501 §6.3.6); returns its id and whether its own login is subscribed."""
        kept = (await conn.execute(
            select(subscriptions.c.person_id, subscriptions.c.subscribed)
            .where(subscriptions.c.mailbox_id == mailbox_id, subscriptions.c.name == name)
            .order_by(subscriptions.c.id))).all()
        own = [bool(r.subscribed) for r in kept if r.person_id is None]
        if own:
            subscribed = own[-1]
        folder_id = int((await conn.execute(insert(folders).values(
            mailbox_id=mailbox_id, name=name, special_use=special_use,
            uidvalidity=uidvalidity, uidnext=uidnext, highestmodseq=highestmodseq,
            recent_uid=uidnext, subscribed=subscribed, created_at=time.time())
            .returning(folders.c.id))).scalar_one())
        chosen = {int(r.person_id): bool(r.subscribed) for r in kept if r.person_id is not None}
        if chosen:
            await conn.execute(insert(folder_subscriptions), [
                {"folder_id": folder_id, "person_id": person, "subscribed": on}
                for person, on in chosen.items()])
        if kept:
            await conn.execute(delete(subscriptions).where(
                subscriptions.c.mailbox_id == mailbox_id, subscriptions.c.name == name))
        return folder_id, subscribed

    async def _create_parents(self, conn: AsyncConnection, mailbox_id: int, name: str,
                              subscribed: bool = True) -> None:
        """Create the superior levels of ``name`` that do not exist (RFC 9051 §6.3.4 and
        §6.3.6: CREATE and RENAME SHOULD); each is an ordinary folder."""
        parts = name.split(DELIMITER)
        parents = [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]
        if not parents:
            return
        existing = set((await conn.execute(
            select(folders.c.name).where(folders.c.mailbox_id == mailbox_id,
                                         folders.c.name.in_(parents)))).scalars())
        for parent in parents:
            if parent not in existing:
                await self._insert_folder(
                    conn, mailbox_id, parent,
                    uidvalidity=await self._next_uidvalidity(conn, mailbox_id),
                    subscribed=subscribed)

    async def delete(self, address: str, name: str) -> None:
        """Delete a folder and its messages; its children stay (RFC 9051 §6.3.4)."""
        name = normalise_name(name)
        if name == INBOX:
            raise PolicyViolation("INBOX cannot be deleted")
        async with self._tx.write() as conn:
            mailbox_id = await self._mailbox_id(conn, address, lock=True)
            row = (await conn.execute(
                select(folders.c.id, folders.c.subscribed).where(
                    folders.c.mailbox_id == mailbox_id, folders.c.name == name))).first()
            if row is None:
                raise NotFound(f"no folder {name}")
            await self._keep_subscriptions(conn, mailbox_id, int(row.id), name,
                                           bool(row.subscribed))
            shas = (await conn.execute(select(messages.c.body_sha256).distinct()
                                       .where(messages.c.folder_id == row.id))).scalars().all()
            await conn.execute(delete(messages).where(messages.c.folder_id == row.id))
            await conn.execute(delete(expunged).where(expunged.c.folder_id == row.id))
            await conn.execute(delete(folders).where(folders.c.id == row.id))
            await conn.run_sync(drop_orphan_bodies, shas, postgresql=self._tx.postgresql)
            await self.notify(conn, [int(row.id)])
        self.hub.publish([int(row.id)])

    async def _keep_subscriptions(self, conn: AsyncConnection, mailbox_id: int,
                                  folder_id: int, name: str, own: bool) -> None:
        """The subscriptions of a folder being deleted stay, under its name (RFC 3501
        §6.3.4: DELETE does not unsubscribe; §6.3.6)."""
        chosen = (await conn.execute(
            select(folder_subscriptions.c.person_id, folder_subscriptions.c.subscribed)
            .where(folder_subscriptions.c.folder_id == folder_id))).all()
        rows = [{"mailbox_id": mailbox_id, "person_id": None, "name": name,
                 "subscribed": True}] if own else []
        rows += [{"mailbox_id": mailbox_id, "person_id": int(r.person_id), "name": name,
                  "subscribed": bool(r.subscribed)} for r in chosen]
        await conn.execute(delete(subscriptions).where(
            subscriptions.c.mailbox_id == mailbox_id, subscriptions.c.name == name))
        if rows:
            await conn.execute(insert(subscriptions), rows)

    async def subscribed_names(self, address: str, *, viewer: str | None = None
                               ) -> list[str]:
        """The names subscribed in a mailbox that are no folder (deleted since, or never
        created): for its own login, or with ``viewer``, that person's (their own
        choice where they made one, the mailbox's otherwise), as ``all`` reads them."""
        query = (select(subscriptions.c.name, subscriptions.c.person_id,
                        subscriptions.c.subscribed)
                 .join(mailboxes, mailboxes.c.id == subscriptions.c.mailbox_id)
                 .where(mailboxes.c.address == address.lower())
                 .order_by(subscriptions.c.id))
        if viewer is None:
            query = query.where(subscriptions.c.person_id.is_(None))
        else:
            person_id = select(persons.c.id).where(persons.c.login == viewer).scalar_subquery()
            query = query.where(or_(subscriptions.c.person_id.is_(None),
                                    subscriptions.c.person_id == person_id))
        async with self._tx.read() as conn:
            rows = (await conn.execute(query)).all()
        own: dict[str, bool] = {}
        mine: dict[str, bool] = {}
        for row in rows:
            (own if row.person_id is None else mine)[row.name] = bool(row.subscribed)
        return sorted(name for name in own.keys() | mine.keys()
                      if mine.get(name, own.get(name, False)))

    async def rename(self, address: str, old: str, new: str) -> None:
        """Rename a folder and its children (RFC 9051 §6.3.6), creating the missing
        superior levels of the new name; renaming INBOX moves its messages into a new
        folder and leaves INBOX empty."""
        old, new = normalise_name(old), normalise_name(new)
        if new == INBOX or new.startswith(old + DELIMITER):
            raise PolicyViolation(f"cannot rename {old} to {new}")
        async with self._tx.write(conflict=f"the folder {new} exists already") as conn:
            mailbox_id = await self._mailbox_id(conn, address, lock=True)
            rows = (await conn.execute(
                select(folders.c.id, folders.c.name).where(
                    folders.c.mailbox_id == mailbox_id,
                    or_(folders.c.name == old,
                        folders.c.name.startswith(old + DELIMITER, autoescape=True))))).all()
            # SQLite's LIKE ignores case: "projets/x" is no child of "Projets"
            rows = [r for r in rows if r.name == old or r.name.startswith(old + DELIMITER)]
            if not any(r.name == old for r in rows):
                raise NotFound(f"no folder {old}")
            # The parents of ``new`` are neither ``old`` nor under it (refused above).
            await self._create_parents(conn, mailbox_id, new)
            if old == INBOX:
                inbox_id = await self._rename_inbox(conn, address, mailbox_id, new)
            else:
                # A new name may be the old name of another of these folders (renaming
                # "a/b" to "a": "a/b/b" becomes "a/b"): free it first, the names
                # shrinking shortest first, growing longest first.
                rows.sort(key=lambda r: len(r.name), reverse=len(new) > len(old))
                # RFC 9051 §2.3.1.1: a name and its UIDVALIDITY always mean the same
                # messages; the renamed folders take a UIDVALIDITY no name had before
                uidvalidity = await self._next_uidvalidity(conn, mailbox_id)
                for row in rows:
                    await conn.execute(update(folders).where(folders.c.id == row.id)
                                       .values(name=new + row.name[len(old):],
                                               uidvalidity=uidvalidity))
                return
        self.hub.publish([inbox_id])

    async def _rename_inbox(self, conn: AsyncConnection, address: str, mailbox_id: int,
                            new: str) -> int:
        inbox = await self._get(conn, address.lower(), INBOX)
        assert inbox is not None
        uidvalidity = await self._next_uidvalidity(conn, mailbox_id)
        folder_id, _ = await self._insert_folder(
            conn, mailbox_id, new, uidvalidity=uidvalidity, uidnext=inbox.uidnext,
            highestmodseq=inbox.highestmodseq + 1, subscribed=True)
        uids = (await conn.execute(select(messages.c.uid).where(
            messages.c.folder_id == inbox.id))).scalars().all()
        await conn.execute(update(messages).where(messages.c.folder_id == inbox.id)
                           .values(folder_id=folder_id, modseq=inbox.highestmodseq + 1))
        modseq = await self._bump(conn, inbox.id)
        if uids:
            await conn.execute(insert(expunged), [
                {"folder_id": inbox.id, "uid": uid, "modseq": modseq} for uid in uids])
        await self.notify(conn, [inbox.id])
        return inbox.id

    async def subscribe(self, address: str, name: str, subscribed: bool, *,
                        viewer: str | None = None) -> None:
        """SUBSCRIBE or UNSUBSCRIBE a folder: for the mailbox's own login, or with
        ``viewer``, for that person only (a shared mailbox's folder, which each
        delegate sees in their own way)."""
        name = normalise_name(name)
        if viewer is not None:
            await self._subscribe_viewer(address, name, subscribed, viewer)
            return
        async with self._tx.write(writes_first=True) as conn:
            mailbox_id = await self._mailbox_id(conn, address, lock=False)
            done = await conn.execute(update(folders).where(
                folders.c.mailbox_id == mailbox_id, folders.c.name == name)
                .values(subscribed=subscribed))
            if done.rowcount == 0:
                await self._subscribe_name(conn, mailbox_id, name, None, subscribed)

    async def _subscribe_name(self, conn: AsyncConnection, mailbox_id: int, name: str,
                              person_id: int | None, subscribed: bool) -> None:
        """SUBSCRIBE or UNSUBSCRIBE a name that is no folder (RFC 3501 §6.3.6, RFC 9051
        §6.3.7: the mailbox need not exist); UNSUBSCRIBE of a name with no subscription
        at all is NotFound."""
        whose = (subscriptions.c.person_id.is_(None) if person_id is None
                 else subscriptions.c.person_id == person_id)
        same = and_(subscriptions.c.mailbox_id == mailbox_id, subscriptions.c.name == name)
        removed = (await conn.execute(delete(subscriptions).where(same, whose))).rowcount
        default = False
        if person_id is not None:  # a person's choice hides the mailbox's own
            default = bool((await conn.execute(
                select(subscriptions.c.subscribed).where(
                    same, subscriptions.c.person_id.is_(None)))).scalar())
        if subscribed or default:
            await conn.execute(insert(subscriptions).values(
                mailbox_id=mailbox_id, person_id=person_id, name=name,
                subscribed=subscribed))
        elif not removed:
            raise NotFound(f"no folder nor subscription {name}")

    async def _subscribe_viewer(self, address: str, name: str, subscribed: bool,
                                viewer: str) -> None:
        async with self._tx.write() as conn:
            person_id = (await conn.execute(
                select(persons.c.id).where(persons.c.login == viewer))).scalar()
            if person_id is None:
                raise NotFound(f"no person {viewer}")
            folder = await self._get(conn, address.lower(), name)
            if folder is None:
                mailbox_id = await self._mailbox_id(conn, address, lock=False)
                await self._subscribe_name(conn, mailbox_id, name, int(person_id), subscribed)
                return
            # one statement, so that two SUBSCRIBEs at once both succeed
            upsert = pg_insert if self._tx.dialect == "postgresql" else sqlite_insert
            await conn.execute(
                upsert(folder_subscriptions)
                .values(person_id=person_id, folder_id=folder.id, subscribed=subscribed)
                .on_conflict_do_update(index_elements=["person_id", "folder_id"],
                                       set_={"subscribed": subscribed}))

    # --------------------------------------------------------- reading

    async def state(self, folder_id: int) -> FolderState | None:
        """The folder with every message's UID, flags and MODSEQ (SELECT); None if
        the folder is gone. HIGHESTMODSEQ and UIDNEXT are read in the same statement as
        the messages (``_STATE``)."""
        async with self._tx.read() as conn:
            row = (await conn.execute(_BY_ID, {"folder_id": folder_id})).first()
            if row is None:
                return None
            rows: Sequence[Any] = (await conn.execute(_STATE, {"folder_id": folder_id})).all()
        if not rows or rows[-1][3] != 2:
            return None  # deleted between the two reads
        label = rows[-1]
        rows = rows[:-1]
        folder = dataclasses.replace(_folder(row), uidnext=int(label[0]),
                                     highestmodseq=int(label[2]))
        return FolderState(folder, [r[0] for r in rows], [r[1] for r in rows],
                           [r[2] for r in rows])

    async def page(self, folder_id: int, offset: int, limit: int
                   ) -> tuple[int, list[tuple[int, str]]]:
        """One page of a folder, newest first: (how many messages the folder holds,
        ``[(uid, flags), ...]`` of the ``limit`` messages after the ``offset`` newest).
        The (folder, uid) index serves it: a list page reads its rows only, never the
        whole folder (``state`` does, for IMAP's SELECT)."""
        async with self._tx.read() as conn:
            total = int((await conn.execute(
                select(func.count()).select_from(messages)
                .where(messages.c.folder_id == folder_id))).scalar_one())
            rows = (await conn.execute(
                select(messages.c.uid, messages.c.flags)
                .where(messages.c.folder_id == folder_id)
                .order_by(messages.c.uid.desc())
                .offset(max(offset, 0)).limit(max(limit, 0)))).all()
        return total, [(int(uid), str(flags)) for uid, flags in rows]

    async def unread_with_keyword(self, folder_id: int, keyword: str, limit: int
                                  ) -> list[tuple[int, str]]:
        """``[(uid, flags), ...]`` of the newest ``limit`` messages of a folder that
        have ``keyword`` and not ``\\Seen`` (the webmail puts unread alerts first)."""
        async with self._tx.read() as conn:
            rows = (await conn.execute(
                select(messages.c.uid, messages.c.flags)
                .where(messages.c.folder_id == folder_id, _has_flag(keyword),
                       ~_has_flag("\\Seen"))
                .order_by(messages.c.uid.desc()).limit(max(limit, 0)))).all()
        return [(int(uid), str(flags)) for uid, flags in rows]

    async def changes(self, folder_id: int, since: int) -> FolderChanges | None:
        """Messages added or changed, and UIDs expunged, after MODSEQ ``since``; None
        if the folder is gone. The folder's HIGHESTMODSEQ is read with them."""
        async with self._tx.read() as conn:
            row = (await conn.execute(_BY_ID, {"folder_id": folder_id})).first()
            if row is None:
                return None
            if int(row.highestmodseq) <= since:
                return FolderChanges(_folder(row), [], [])
            rows = (await conn.execute(_CHANGES, {"folder_id": folder_id, "since": since})).all()
        if not rows or rows[-1][3] != 2:
            return None
        label = rows[-1]
        folder = dataclasses.replace(_folder(row), uidnext=int(label[0]),
                                     highestmodseq=int(label[2]))
        changed = [(int(uid), flags, int(modseq)) for uid, flags, modseq, kind in rows
                   if kind == 0]
        gone = [int(uid) for uid, _, _, kind in rows if kind == 1]
        return FolderChanges(folder, changed, gone)

    async def expunged_since(self, folder_id: int, since: int,
                             uids: Sequence[int] | None = None) -> list[int]:
        """UIDs expunged after MODSEQ ``since`` (all of them with ``since`` 0), among
        ``uids`` if given (QRESYNC, RFC 7162 §3.2.5)."""
        async with self._tx.read() as conn:
            query = select(expunged.c.uid).where(expunged.c.folder_id == folder_id,
                                                 expunged.c.modseq > since)
            found = [int(u) for u in (await conn.execute(
                query.order_by(expunged.c.uid))).scalars()]
        if uids is not None:
            wanted = set(uids)
            found = [u for u in found if u in wanted]
        return found

    async def claim_recent(self, folder_id: int, upto: int) -> int:
        """Claim as ``\\Recent`` the UIDs below ``upto`` that no session claimed yet (RFC
        3501 §2.3.2: a message is recent in one session only, the first to be told of
        it): the folder's ``recent_uid`` moves up to ``upto`` in one write transaction
        (the folder row locked on PostgreSQL, the write lock taken first on SQLite), so
        that two sessions, in one process or two, never claim the same UID. Returns its
        value before: the UIDs from there up to ``upto`` are the caller's (none when it
        is ``upto`` or more, or the folder is gone)."""

        query = _RECENT_UID.with_for_update() if self._tx.postgresql else _RECENT_UID

        def claim(conn: Connection) -> int:
            first = conn.execute(query, {"folder_id": folder_id}).scalar()
            if first is None:
                return upto
            if int(first) < upto:
                conn.execute(_SET_RECENT_UID, {"folder_id": folder_id, "upto": upto})
            return int(first)

        return await self._tx.grouped(claim, folder_id)

    async def recent_count(self, folder_id: int) -> int:
        """How many messages of a folder no session claimed as ``\\Recent`` yet (STATUS
        RECENT, RFC 3501 §6.3.10)."""
        async with self._tx.read() as conn:
            return int((await conn.execute(
                select(func.count()).select_from(messages)
                .join(folders, folders.c.id == messages.c.folder_id)
                .where(messages.c.folder_id == folder_id,
                       messages.c.uid >= folders.c.recent_uid))).scalar_one())

    async def counts(self, folder_id: int) -> tuple[int, int, int, int]:
        """(messages, unseen, deleted, total size in octets) of a folder (STATUS)."""
        async with self._tx.read() as conn:
            rows = (await conn.execute(
                select(messages.c.flags, func.count(), func.sum(messages.c.size))
                .where(messages.c.folder_id == folder_id)
                .group_by(messages.c.flags))).all()
        total = unseen = deleted = size = 0
        for flags, count, octets in rows:
            words = flags.split()
            total += count
            size += int(octets or 0)
            if "\\Seen" not in words:
                unseen += count
            if "\\Deleted" in words:
                deleted += count
        return total, unseen, deleted, size

    async def message_data(self, folder_id: int, uids: Sequence[int]) -> list[MessageData]:
        """Body hash, size, INTERNALDATE and Message-ID of the messages with these UIDs
        (those still there), in UID order."""
        found: list[MessageData] = []
        async with self._tx.read() as conn:
            for chunk in _uid_chunks(uids):
                rows = await conn.execute(
                    select(messages.c.uid, messages.c.body_sha256, messages.c.size,
                           messages.c.received_at, messages.c.message_id)
                    .where(messages.c.folder_id == folder_id, _uid_filter(chunk)))
                wanted = set(chunk)
                found.extend(MessageData(int(r.uid), r.body_sha256, int(r.size),
                                         float(r.received_at), r.message_id or "")
                             for r in rows if r.uid in wanted)
        found.sort(key=lambda m: m.uid)
        return found

    async def flags(self, folder_id: int, uids: Sequence[int]) -> dict[int, str]:
        """UID -> flags (as stored: sorted, space-separated) of the messages with these
        UIDs that are still there."""
        found: dict[int, str] = {}
        async with self._tx.read() as conn:
            for chunk in _uid_chunks(uids):
                wanted = set(chunk)
                rows = await conn.execute(
                    select(messages.c.uid, messages.c.flags)
                    .where(messages.c.folder_id == folder_id, _uid_filter(chunk)))
                found.update((int(r.uid), str(r.flags)) for r in rows if r.uid in wanted)
        return found

    async def summaries(self, folder_id: int, uids: Sequence[int]
                        ) -> dict[int, tuple[str | None, str | None, str | None, str | None]]:
        """UID -> (subject, from, message-id, date) as stored at delivery, decoded."""
        if not uids:
            return {}
        ordered = sorted(uids)
        wanted = set(ordered)
        async with self._tx.read() as conn:
            rows = (await conn.execute(_SUMMARIES, {"folder_id": folder_id, "lo": ordered[0],
                                                    "hi": ordered[-1]})).all()
            return {uid: (subject, sender, message_id, date)
                    for uid, subject, sender, message_id, date in rows if uid in wanted}

    async def containing(self, folder_id: int, field: str, needle: str
                         ) -> dict[int, tuple[str | None, str | None, str | None, str | None]]:
        """The messages whose stored header ``field`` (subject, from, message-id or
        date) contains the ASCII ``needle``, ignoring case, with their summaries (as
        ``summaries``): the candidates of a SEARCH on that field, which the caller
        still checks one by one."""
        column = _SUMMARY_COLUMNS[field]
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        async with self._tx.read() as conn:
            rows = await conn.execute(
                select(messages.c.uid, messages.c.subject, messages.c.from_header,
                       messages.c.message_id, messages.c.date_header)
                .where(messages.c.folder_id == folder_id,
                       column.ilike(pattern, escape="\\")))
            return {int(uid): (subject, sender, message_id, date)
                    for uid, subject, sender, message_id, date in rows}

    async def sort_data(self, folder_id: int, uids: Sequence[int]
                        ) -> dict[int, tuple[float, int, str | None, str]]:
        """UID -> (INTERNALDATE, size, stored sort keys or None, body hash) of the
        messages with these UIDs still there: what IMAP SORT and THREAD read."""
        if not uids:
            return {}
        ordered = sorted(uids)
        wanted = set(ordered)
        async with self._tx.read() as conn:
            rows = await conn.execute(_SORT_DATA, {"folder_id": folder_id, "lo": ordered[0],
                                                   "hi": ordered[-1]})
            return {int(uid): (float(received), int(size), keys, sha)
                    for uid, received, size, keys, sha in rows if uid in wanted}

    async def set_sort_keys(self, folder_id: int, keys: dict[int, str]) -> None:
        """Keep the sort keys IMAP computed for these messages (``sort_data``). Not a
        change of the messages: no MODSEQ, no notification."""
        if not keys:
            return
        async with self._tx.write(writes_first=True) as conn:
            await conn.execute(
                update(messages).where(messages.c.folder_id == bindparam("f"),
                                       messages.c.uid == bindparam("u"))
                .values(sort_keys=bindparam("k")),
                [{"f": folder_id, "u": uid, "k": value} for uid, value in keys.items()])

    async def body_heads(self, shas: Iterable[str], length: int) -> dict[str, bytes]:
        """The first ``length`` octets of each body: its header section, mostly."""
        wanted = sorted(set(shas))
        head = func.substr(bodies.c.data, 1, length, type_=LargeBinary)
        out: dict[str, bytes] = {}
        async with self._tx.read() as conn:
            for start in range(0, len(wanted), _CHUNK):
                rows = await conn.execute(select(bodies.c.sha256, head).where(
                    bodies.c.sha256.in_(wanted[start:start + _CHUNK])))
                out.update((sha, bytes(data)) for sha, data in rows)
        return out

    async def bodies(self, shas: Iterable[str]) -> dict[str, bytes]:
        wanted = sorted(set(shas))
        out: dict[str, bytes] = {}
        async with self._tx.read() as conn:
            for start in range(0, len(wanted), _CHUNK):
                rows = await conn.execute(select(bodies.c.sha256, bodies.c.data).where(
                    bodies.c.sha256.in_(wanted[start:start + _CHUNK])))
                out.update((r.sha256, bytes(r.data)) for r in rows)
        return out

    async def body_piece(self, sha256: str, start: int, length: int) -> bytes | None:
        """``length`` octets of a body from offset ``start`` (fewer at its end, b"" past
        it); None when no such body is stored (any more). IMAP streams a large body with
        it, one short query per piece, so that neither the session nor the database
        connection holds the whole body while a slow client reads."""
        if start < 0 or length <= 0:
            raise ValueError("a piece starts at 0 or after and has a positive length")
        piece = func.substr(bodies.c.data, start + 1, length, type_=LargeBinary)  # 1-based
        async with self._piece_readers, self._tx.read() as conn:
            data = (await conn.execute(select(piece).where(bodies.c.sha256 == sha256))
                    ).scalar_one_or_none()
        return None if data is None else bytes(data)

    # --------------------------------------------------------- writing

    async def append(self, folder_id: int, body: bytes, *, flags: Iterable[str] = (),
                     internaldate: float | None = None) -> tuple[int, int]:
        """Add a message (APPEND); returns (UIDVALIDITY, UID) for APPENDUID (RFC 4315)."""
        uidvalidity, [uid] = await self._append(folder_id, [(body, canonical_flags(flags),
                                                             internaldate or time.time())])
        return uidvalidity, uid

    async def append_many(self, folder_id: int,
                          items: Sequence[tuple[bytes, Iterable[str], float | None]]
                          ) -> tuple[int, list[int]]:
        """Add several messages (body, flags, INTERNALDATE or None for now) in one
        transaction, all or none (MULTIAPPEND, RFC 3502 §6); returns (UIDVALIDITY,
        UIDs) for APPENDUID (RFC 4315 §3)."""
        now = time.time()
        return await self._append(folder_id, [(body, canonical_flags(flags), date or now)
                                              for body, flags, date in items])

    async def submitted_copy(self, folder_id: int, body: bytes, *,
                             now: float | None = None) -> int | None:
        """The UID of the copy of ``body`` that submission kept in this folder, if any.

        Mail clients save what they send in Sent by an APPEND; the operator already
        keeps a copy there (delivery.py). The copy counts as the same message when it
        came from submission (a non-empty envelope sender: an APPEND has none), within
        ``SENT_COPY_WINDOW``, is not marked \\Deleted, and has the same Message-ID,
        Subject, From and Date. Anything else is stored: a message without Message-ID,
        and one with a Bcc field, which only the client's copy has (it would be lost).
        """
        wanted = read_headers(body)
        if not wanted.message_id or wanted.has_bcc:
            return None
        since = (time.time() if now is None else now) - SENT_COPY_WINDOW
        newest = (select(messages.c.uid, messages.c.envelope_from, messages.c.received_at,
                         messages.c.flags,
                         messages.c.message_id, messages.c.subject, messages.c.from_header,
                         messages.c.date_header)
                  .where(messages.c.folder_id == folder_id)
                  .order_by(messages.c.uid.desc()).limit(SENT_COPY_LOOKBACK))
        async with self._tx.read() as conn:
            rows = (await conn.execute(newest)).all()
        for row in rows:
            if (row.envelope_from and row.received_at >= since
                    and "\\Deleted" not in row.flags.split()
                    and (row.message_id, row.subject, row.from_header, row.date_header)
                    == (wanted.message_id, wanted.subject, wanted.from_header, wanted.date)):
                return int(row.uid)
        return None

    async def bulk_append(self, address: str, name: str,
                          items: Sequence[tuple[bytes, str, float]]) -> list[int]:
        """Add many messages (body, flags, INTERNALDATE) to a folder in one transaction
        per thousand; for imports and benchmarks."""
        folder = await self.get(address, name)
        if folder is None:
            raise NotFound(f"no folder {name} in {address}")
        uids: list[int] = []
        for start in range(0, len(items), 1000):
            uids += (await self._append(folder.id, [
                (body, canonical_flags(flags.split()), date)
                for body, flags, date in items[start:start + 1000]]))[1]
        return uids

    async def _append(self, folder_id: int, items: Sequence[tuple[bytes, str, float]]
                      ) -> tuple[int, list[int]]:
        """Add messages in one transaction; returns (UIDVALIDITY, their UIDs)."""
        rows = []
        for body, flags, date in items:
            head = _crlf_head(body)
            headers = read_headers(head)
            rows.append((hashlib.sha256(body).hexdigest(), body, flags, date, headers,
                         stored_sort_keys(head)))

        def add(conn: Connection) -> tuple[int, int]:
            bumped = conn.execute(_TAKE_UIDS, {"folder_id": folder_id,
                                               "count": len(items)}).first()
            if bumped is None:
                raise NotFound("the folder is gone")
            first = int(bumped.uidnext) - len(items)
            insert_bodies(conn, {sha: body for sha, body, *_ in rows},
                          postgresql=self._tx.postgresql)
            conn.execute(_INSERT_MESSAGES, [{
                "mailbox_id": bumped.mailbox_id, "folder_id": folder_id, "uid": first + i,
                "modseq": bumped.highestmodseq, "body_sha256": sha, "received_at": date,
                "flags": flags, "envelope_from": "", "message_id": headers.message_id,
                "subject": headers.subject, "from_header": headers.from_header,
                "date_header": headers.date, "size": len(body), "sort_keys": keys}
                for i, (sha, body, flags, date, headers, keys) in enumerate(rows)])
            self._notify(conn, [folder_id])
            return int(bumped.uidvalidity), first

        uidvalidity, first = await self._tx.grouped(
            add, folder_id, weight=sum(len(body) for body, *_ in items))
        self.hub.publish([folder_id])
        return uidvalidity, list(range(first, first + len(items)))

    async def store_flags(self, folder_id: int, uids: Sequence[int], mode: str,
                          flags: Iterable[str], *, unchanged_since: int | None = None
                          ) -> tuple[list[tuple[int, str, int]], list[int]]:
        """STORE (RFC 9051 §6.4.6): ``mode`` "+" adds, "-" removes, "" replaces.
        Returns the messages whose flags changed (UID, flags, new MODSEQ) and the UIDs
        refused by UNCHANGEDSINCE (RFC 7162 §3.1.3: MODIFIED)."""
        wanted = canonical_flags(flags).split()
        lowered = {f.lower() for f in wanted}

        def change(conn: Connection) -> tuple[list[tuple[int, str, int]], list[int]]:
            if self._tx.postgresql:  # SQLite: the transaction holds the write lock already
                self._locked(conn, folder_id)
            current: list[tuple[int, str, int]] = []
            for chunk in _uid_chunks(uids):
                keep = set(chunk)
                if chunk[-1] - chunk[0] + 1 <= 2 * len(chunk):  # dense: a range
                    rows = conn.execute(_FLAGS_BETWEEN, {"folder_id": folder_id,
                                                         "lo": chunk[0], "hi": chunk[-1]})
                else:
                    rows = conn.execute(_FLAGS_IN, {"folder_id": folder_id, "uids": chunk})
                current.extend((int(r.uid), r.flags, int(r.modseq)) for r in rows
                               if r.uid in keep)
            if not current and not self._tx.postgresql:
                self._locked(conn, folder_id)  # NotFound if it is gone
            modified: list[int] = []
            updates: list[tuple[int, str]] = []
            for uid, old, modseq in current:
                if unchanged_since is not None and modseq > unchanged_since:
                    modified.append(uid)
                    continue
                have = old.split()
                if mode == "+":
                    new = canonical_flags(have + wanted)
                elif mode == "-":
                    new = canonical_flags(f for f in have if f.lower() not in lowered)
                else:
                    new = canonical_flags(wanted)
                if new != old:
                    updates.append((uid, new))
            if not updates:
                return [], sorted(modified)
            modseq = self._next_modseq(conn, folder_id)
            conn.execute(_SET_FLAGS, [{"b_folder": folder_id, "b_uid": uid, "b_flags": new,
                                       "b_modseq": modseq} for uid, new in updates])
            self._notify(conn, [folder_id])
            return [(uid, new, modseq) for uid, new in sorted(updates)], sorted(modified)

        changed, modified = await self._tx.grouped(change, folder_id)
        if changed:
            self.hub.publish([folder_id])
        return changed, modified

    async def expunge(self, folder_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove the messages flagged \\Deleted (among ``uids`` if given: UID
        EXPUNGE, RFC 4315); returns their UIDs."""

        def remove(conn: Connection) -> list[int]:
            if self._tx.postgresql:  # SQLite: the transaction holds the write lock already
                self._locked(conn, folder_id)
            rows = conn.execute(_DELETED, {"folder_id": folder_id}).all()
            keep = set(uids) if uids is not None else None
            gone = [(int(r.uid), r.body_sha256) for r in rows
                    if "\\Deleted" in r.flags.split() and (keep is None or r.uid in keep)]
            if not gone:
                if not self._tx.postgresql:
                    self._locked(conn, folder_id)  # NotFound if it is gone
                return []
            self._removed(conn, folder_id, gone)
            return sorted(uid for uid, _ in gone)

        removed = await self._tx.grouped(remove, folder_id)
        if removed:
            self.hub.publish([folder_id])
        return removed

    async def copy(self, folder_id: int, uids: Sequence[int], target_id: int, *,
                   move: bool = False) -> tuple[int, list[int], list[int]]:
        """COPY or MOVE (RFC 6851) the messages with ``uids`` to another folder,
        keeping flags and INTERNALDATE; returns (target UIDVALIDITY, source UIDs,
        target UIDs) for COPYUID (RFC 4315 §3). A MOVE into the messages' own folder
        gives them new UIDs, the old ones expunged (RFC 6851 §3.1: a MOVE is a COPY, then
        an expunge of the originals; it is no error)."""
        async with self._tx.write() as conn:
            for fid in sorted({folder_id, target_id}):  # in id order: no deadlock
                await self._lock_folder(conn, fid)
            source: list[Any] = []
            for chunk in _uid_chunks(uids):
                keep = set(chunk)
                rows = await conn.execute(
                    select(messages).where(messages.c.folder_id == folder_id,
                                           _uid_filter(chunk)))
                source.extend(r for r in rows if r.uid in keep)
            source.sort(key=lambda r: r.uid)
            target = (await conn.execute(
                select(folders.c.uidvalidity, folders.c.mailbox_id)
                .where(folders.c.id == target_id))).first()
            if target is None:
                raise NotFound("the target folder is gone")
            if not source:
                return int(target.uidvalidity), [], []
            bumped = (await conn.execute(
                update(folders).where(folders.c.id == target_id)
                .values(uidnext=folders.c.uidnext + len(source),
                        highestmodseq=folders.c.highestmodseq + 1)
                .returning(folders.c.uidnext, folders.c.highestmodseq))).one()
            first = int(bumped.uidnext) - len(source)
            await conn.execute(insert(messages), [{
                "mailbox_id": target.mailbox_id, "folder_id": target_id, "uid": first + i,
                "modseq": bumped.highestmodseq, "body_sha256": r.body_sha256,
                "received_at": r.received_at, "flags": r.flags,
                "envelope_from": r.envelope_from, "message_id": r.message_id,
                "subject": r.subject, "from_header": r.from_header,
                "date_header": r.date_header, "size": r.size, "sort_keys": r.sort_keys}
                for i, r in enumerate(source)])
            changed = [target_id]
            if move:
                await self._remove(conn, folder_id, [(int(r.uid), r.body_sha256)
                                                     for r in source], drop_bodies=False)
                changed.append(folder_id)
            await self.notify(conn, [target_id])  # _remove notified the source
        self.hub.publish(changed)
        return (int(target.uidvalidity), [int(r.uid) for r in source],
                list(range(first, first + len(source))))

    # --------------------------------------------------------- helpers

    # Each helper below is a function of a synchronous Connection (the grouped writes,
    # transactions.py), which the async writers run through ``run_sync``.

    async def _remove(self, conn: AsyncConnection, folder_id: int,
                      gone: Sequence[tuple[int, str]], *, drop_bodies: bool = True) -> None:
        await conn.run_sync(self._removed, folder_id, gone, drop_bodies=drop_bodies)

    def _removed(self, conn: Connection, folder_id: int, gone: Sequence[tuple[int, str]], *,
                 drop_bodies: bool = True) -> None:
        """Expunge the messages ``gone`` (UID, body) under one new MODSEQ."""
        modseq = self._next_modseq(conn, folder_id)
        uids = [uid for uid, _ in gone]
        for chunk in _uid_chunks(uids):
            conn.execute(_DELETE_UIDS, {"folder_id": folder_id, "uids": chunk})
        conn.execute(_INSERT_EXPUNGED, [
            {"folder_id": folder_id, "uid": uid, "modseq": modseq} for uid in uids])
        if drop_bodies:
            drop_orphan_bodies(conn, {sha for _, sha in gone}, postgresql=self._tx.postgresql)
        self._notify(conn, [folder_id])

    async def _bump(self, conn: AsyncConnection, folder_id: int) -> int:
        return await conn.run_sync(self._next_modseq, folder_id)

    def _next_modseq(self, conn: Connection, folder_id: int) -> int:
        """Take the folder's next MODSEQ."""
        return int(conn.execute(_NEXT_MODSEQ, {"folder_id": folder_id}).scalar_one())

    async def _lock_folder(self, conn: AsyncConnection, folder_id: int) -> None:
        await conn.run_sync(self._locked, folder_id)

    def _locked(self, conn: Connection, folder_id: int) -> None:
        """Lock the folder row (PostgreSQL; on SQLite the transaction holds the write
        lock already); NotFound if the folder is gone."""
        query = _FOLDER_ROW.with_for_update() if self._tx.postgresql else _FOLDER_ROW
        if conn.execute(query, {"folder_id": folder_id}).first() is None:
            raise NotFound("the folder is gone")

    async def notify(self, conn: AsyncConnection, folder_ids: Sequence[int]) -> None:
        if self._tx.postgresql:
            await conn.run_sync(self._notify, folder_ids)

    def _notify(self, conn: Connection, folder_ids: Sequence[int]) -> None:
        if self._tx.postgresql:
            conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": self.hub.payload(folder_ids)})

    async def _get(self, conn: AsyncConnection, address: str, name: str) -> Folder | None:
        row = (await conn.execute(
            select(folders, mailboxes.c.address)
            .join(mailboxes, mailboxes.c.id == folders.c.mailbox_id)
            .where(mailboxes.c.address == address, folders.c.name == name))).first()
        return _folder(row) if row is not None else None

    async def _mailbox_id(self, conn: AsyncConnection, address: str, *, lock: bool) -> int:
        query = select(mailboxes.c.id).where(mailboxes.c.address == address.lower())
        if lock and self._tx.dialect == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"no mailbox {address}")
        return int(row.id)

    async def _next_uidvalidity(self, conn: AsyncConnection, mailbox_id: int) -> int:
        last = int((await conn.execute(select(mailboxes.c.uidvalidity).where(
            mailboxes.c.id == mailbox_id))).scalar_one())
        value = min(max(int(time.time()), last + 1), 2**32 - 1)
        await conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id)
                           .values(uidvalidity=value))
        return value


async def create_default_folders(conn: AsyncConnection, mailbox_id: int, uidvalidity: int,
                                 now: float) -> None:
    """INBOX and the special-use folders of a new mailbox."""
    await conn.execute(insert(folders), [
        {"mailbox_id": mailbox_id, "name": name, "special_use": use,
         "uidvalidity": uidvalidity, "uidnext": 1, "highestmodseq": 1, "subscribed": True,
         "created_at": now}
        for name, use in ((INBOX, None), *DEFAULT_FOLDERS)])


_BARE_LF = re.compile(rb"(?<!\r)\n")


def _crlf_head(body: bytes) -> bytes:
    """The start of an appended message as ``read_headers`` reads it, lines ended by
    CRLF (RFC 5322 §2.1). A client may append a message with bare LF line ends (one
    copied from an mbox file): it is stored as sent, IMAP's MIME reading takes either,
    and its summary (From, Subject: what SEARCH FROM reads) is read from a CRLF copy of
    its start, or it would be the whole header as one From value."""
    head = body[:MAX_HEADER_SECTION + 2]
    if b"\n" not in head or not _BARE_LF.search(head):
        return body
    return _BARE_LF.sub(b"\r\n", head)


def _has_flag(flag: str) -> Any:
    """``messages.flags`` (flags separated by one space) holds ``flag`` itself, not a
    longer one that contains it (``$Alertes``)."""
    flags = messages.c.flags
    return or_(flags == flag, flags.startswith(flag + " ", autoescape=True),
               flags.endswith(" " + flag, autoescape=True),
               flags.contains(" " + flag + " ", autoescape=True))


def _folder(row: Any) -> Folder:
    return Folder(id=int(row.id), mailbox=row.address, name=row.name,
                  special_use=row.special_use, uidvalidity=int(row.uidvalidity),
                  uidnext=int(row.uidnext), highestmodseq=int(row.highestmodseq),
                  subscribed=bool(row.subscribed), recent_uid=int(row.recent_uid))


def _uid_chunks(uids: Sequence[int]) -> Iterable[list[int]]:
    ordered = sorted(set(uids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start:start + _CHUNK]


def _uid_filter(chunk: list[int]) -> Any:
    """A range covers a dense chunk with one comparison; a sparse one needs IN."""
    if chunk[-1] - chunk[0] + 1 <= 2 * len(chunk):
        return and_(messages.c.uid >= chunk[0], messages.c.uid <= chunk[-1])
    return messages.c.uid.in_(chunk)

