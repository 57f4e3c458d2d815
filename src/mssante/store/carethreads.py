"""A professional mailbox's conversations with patients, as its operator keeps them.

The patient's operator decides who may reply (``conversations.py``); the
professional's operator keeps, for the professional, which conversations their
mailbox holds and which are closed, so that the webmail lists them without reading
the Sent folder. The notes (``domain.patient.care_notes``) are written by
``delivery.write_deliveries`` in the transaction that accepts the message: a
conversation is shown closed exactly when the closing message was accepted.

- A professional's message opens the conversation, or continues it; a closing one
  closes it, and it stays closed (the patient's operator refuses replies from then).
- A patient's reply only updates a conversation already known (a patient never
  opens one): its last activity and its count of replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, case, func, insert, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.domain.patient import CareNote
from mssante.store.schema import care_thread_messages, care_threads, folders, mailboxes, messages

OPEN = "open"
CLOSED = "closed"
STATES = (OPEN, CLOSED)


@dataclass(frozen=True, slots=True)
class CareThread:
    id: int
    mailbox: str
    patient: str
    thread: str  # the root Message-ID
    subject: str
    opened_at: float
    last_at: float
    closed_at: float | None
    replies: int  # messages from the patient

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    message_id: str
    at: float
    from_patient: bool


@dataclass(frozen=True, slots=True)
class Located:
    """Where a mailbox keeps a message it holds, with what a list shows of it."""

    folder_id: int
    uid: int
    flags: str
    subject: str | None
    from_header: str | None
    date_header: str | None


async def record(conn: AsyncConnection, notes: Sequence[CareNote], *, now: float,
                 postgresql: bool) -> None:
    """Write ``notes`` in the caller's transaction."""
    for note in notes:
        key = and_(care_threads.c.mailbox == note.mailbox,
                   care_threads.c.patient == note.patient,
                   care_threads.c.thread == note.thread)
        if note.from_patient:
            found = (await conn.execute(select(care_threads.c.id).where(key))
                     ).scalar_one_or_none()
            if found is None:
                continue
            await conn.execute(update(care_threads).where(care_threads.c.id == found).values(
                last_at=now,
                replies=care_threads.c.replies + 1))
        else:
            upsert: pg.Insert | sqlite.Insert = (pg.insert(care_threads) if postgresql
                                                 else sqlite.insert(care_threads))
            upsert = upsert.values(mailbox=note.mailbox, patient=note.patient,
                                   thread=note.thread, subject=note.subject, opened_at=now,
                                   last_at=now, closed_at=now if note.closes else None,
                                   replies=0)
            upsert = upsert.on_conflict_do_update(
                index_elements=[care_threads.c.mailbox, care_threads.c.patient,
                                care_threads.c.thread],
                set_={"last_at": upsert.excluded.last_at,
                      # the first closing time stays: a closed conversation stays closed
                      "closed_at": func.coalesce(care_threads.c.closed_at,
                                                 upsert.excluded.closed_at)})
            await conn.execute(upsert)
            found = (await conn.execute(select(care_threads.c.id).where(key))).scalar_one()
        await conn.execute(insert(care_thread_messages).values(
            thread_id=found, message_id=note.message_id, at=now,
            from_patient=note.from_patient))


def _thread(row: Row[Any]) -> CareThread:
    return CareThread(id=int(row.id), mailbox=row.mailbox, patient=row.patient,
                      thread=row.thread, subject=row.subject,
                      opened_at=float(row.opened_at), last_at=float(row.last_at),
                      closed_at=None if row.closed_at is None else float(row.closed_at),
                      replies=int(row.replies))


async def page(conn: AsyncConnection, mailbox: str, state: str | None, offset: int,
               limit: int) -> tuple[int, int, list[CareThread]]:
    """The mailbox's conversations in ``state`` (None: all), open ones first, then by
    last activity, newest first: (open count, closed count, the page)."""
    counts = (await conn.execute(
        select(func.count().filter(care_threads.c.closed_at.is_(None)),
               func.count().filter(care_threads.c.closed_at.is_not(None)))
        .where(care_threads.c.mailbox == mailbox.lower()))).one()
    query = select(care_threads).where(care_threads.c.mailbox == mailbox.lower())
    if state == OPEN:
        query = query.where(care_threads.c.closed_at.is_(None))
    elif state == CLOSED:
        query = query.where(care_threads.c.closed_at.is_not(None))
    rows = await conn.execute(query.order_by(
        case((care_threads.c.closed_at.is_(None), 0), else_=1),
        care_threads.c.last_at.desc(), care_threads.c.id.desc()).offset(offset).limit(limit))
    return int(counts[0]), int(counts[1]), [_thread(r) for r in rows]


async def by_id(conn: AsyncConnection, mailbox: str, thread_id: int
                ) -> tuple[CareThread, list[ThreadMessage]] | None:
    """One conversation of the mailbox with its messages, oldest first."""
    row = (await conn.execute(select(care_threads).where(
        care_threads.c.id == thread_id, care_threads.c.mailbox == mailbox.lower()))).first()
    if row is None:
        return None
    rows = await conn.execute(
        select(care_thread_messages.c.message_id, care_thread_messages.c.at,
               care_thread_messages.c.from_patient)
        .where(care_thread_messages.c.thread_id == thread_id)
        .order_by(care_thread_messages.c.at, care_thread_messages.c.id))
    return _thread(row), [ThreadMessage(r.message_id, float(r.at), bool(r.from_patient))
                          for r in rows]


async def of_thread(conn: AsyncConnection, mailbox: str, patient: str, thread: str
                    ) -> CareThread | None:
    """The mailbox's conversation with ``patient`` rooted at ``thread``, if known."""
    row = (await conn.execute(select(care_threads).where(
        care_threads.c.mailbox == mailbox.lower(), care_threads.c.patient == patient.lower(),
        care_threads.c.thread == thread))).first()
    return None if row is None else _thread(row)


async def locate(conn: AsyncConnection, mailbox: str, message_ids: Sequence[str]
                 ) -> dict[str, Located]:
    """Where the mailbox keeps each of ``message_ids`` (one place each: the newest copy,
    an INBOX before another folder)."""
    found: dict[str, Located] = {}
    wanted = list(dict.fromkeys(message_ids))
    for start in range(0, len(wanted), 500):
        rows = await conn.execute(
            select(messages.c.message_id, messages.c.folder_id, messages.c.uid,
                   messages.c.flags, messages.c.subject, messages.c.from_header,
                   messages.c.date_header, folders.c.name)
            .select_from(messages.join(mailboxes, mailboxes.c.id == messages.c.mailbox_id)
                         .join(folders, folders.c.id == messages.c.folder_id))
            .where(mailboxes.c.address == mailbox.lower(),
                   messages.c.message_id.in_(wanted[start:start + 500]))
            .order_by(messages.c.id))
        for r in rows:
            if r.message_id in found and r.name.upper() != "INBOX":
                continue
            found[r.message_id] = Located(int(r.folder_id), int(r.uid), r.flags, r.subject,
                                          r.from_header, r.date_header)
    return found
