"""The directory outbox: publications of mailboxes, written with the change they publish.

Every function runs on the caller's connection, inside the caller's transaction
(the Store's methods open them). Invariants:

- An entry is written in the transaction of the mailbox change it publishes, from
  the mailbox's state in that transaction: the change and its publication commit
  together or not at all.
- An ``add`` carries the whole ContactPoint; a closed (inactive) mailbox is never
  added; a mailbox without ``directory_id`` is never published.
- Per address, entries go in ``id`` order: an entry is claimable only when it is
  the address's pending entry with the smallest id (its *head*) and it is due. An
  entry in state ``failed`` no longer holds back the entries after it.
- Ids of one address grow in commit order: every writer locks the mailbox row
  (UPDATE, ``FOR UPDATE``, or the unique address of an INSERT) before it inserts
  its entry, so two changes of one address cannot take ids in the other order.
- A claim is a lease written into ``next_attempt_at`` (now + lease): no other
  claimer sees the entry due until the lease ends, and a publisher that dies
  leaves it due again then. On PostgreSQL the claim selects ``FOR UPDATE SKIP
  LOCKED``; on SQLite the write lock serialises claimers.
- An accepted entry is deleted, with the failed entries before it of the same
  address on the same resource: each publication states the address's whole
  current state there, so a later success supersedes an earlier refusal. (A
  refusal on another resource, e.g. before the address was re-created for another
  professional, is kept: nothing sent since has undone it.)
- Retries back off exponentially: ``RETRY_FIRST`` seconds after the first failed
  attempt, doubling, capped at ``RETRY_MAX``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.directory import contact
from mssante.domain.mailboxes import MailboxType, Role
from mssante.store.models import FAILED, OUTBOX_STATES, PENDING, DirectoryEntry
from mssante.store.schema import directory_outbox, mailbox_roles, mailboxes, persons

RETRY_FIRST: Final = 2.0  # seconds before the first retry
RETRY_MAX: Final = 300.0  # the longest wait between two attempts
_RPPS_PREFIX: Final = "8"  # idNatPs of an RPPS-identified professional: "8" + RPPS


def backoff(attempts: int, *, first: float = RETRY_FIRST, cap: float = RETRY_MAX) -> float:
    """Seconds to wait after ``attempts`` failed attempts (at least one)."""
    if attempts < 1:
        return 0.0
    return min(first * 2.0 ** min(attempts - 1, 62), cap)


def id_nat_ps(rpps: str | None) -> str | None:
    """The idNatPs of a professional known by their RPPS number."""
    return _RPPS_PREFIX + rpps if rpps else None


def _earlier_pending() -> ColumnElement[bool]:
    """True when an earlier pending entry of the same address exists."""
    earlier = directory_outbox.alias("earlier")
    return exists().where(earlier.c.address == directory_outbox.c.address,
                          earlier.c.state == PENDING,
                          earlier.c.id < directory_outbox.c.id)


async def enqueue(conn: AsyncConnection, mailbox_id: int, operation: str, *,
                  now: float) -> bool:
    """Queue the publication of the mailbox as it is now in this transaction.

    Returns False (nothing written) when the mailbox is not published, or when an
    ``add`` is asked for a closed mailbox.
    """
    if operation not in contact.OPERATIONS:
        raise ValueError(f"unknown directory operation {operation!r}")
    row = (await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id))).first()
    if row is None or row.directory_id is None:
        return False
    mailbox_type = MailboxType(row.type)
    resource = contact.resource_for(mailbox_type)
    if resource is None:
        return False
    body: str | None = None
    if operation == contact.ADD:
        if not row.active:
            return False
        point = contact.contact_point(
            row.address, mailbox_type, description=row.description, service=row.service,
            responsible=await _responsible(conn, mailbox_id), digitization=bool(row.digitization),
            liste_rouge=bool(row.liste_rouge))
        body = json.dumps(point, ensure_ascii=False, separators=(",", ":"))
    await conn.execute(insert(directory_outbox).values(
        address=row.address, resource=resource, identifier=row.directory_id,
        operation=operation, body=body, created_at=now, attempts=0, next_attempt_at=now,
        last_error="", state=PENDING))
    return True


async def _responsible(conn: AsyncConnection, mailbox_id: int) -> str:
    """Display names of the mailbox's responsible people, by login, comma-separated."""
    names = (await conn.execute(
        select(persons.c.display_name)
        .join(mailbox_roles, mailbox_roles.c.person_id == persons.c.id)
        .where(mailbox_roles.c.mailbox_id == mailbox_id,
               mailbox_roles.c.role == Role.RESPONSIBLE.value)
        .order_by(persons.c.login))).scalars().all()
    return ", ".join(names)


async def any_due(conn: AsyncConnection, *, now: float) -> bool:
    """Whether some pending entry is due (a read, to skip idle claims)."""
    return (await conn.execute(
        select(directory_outbox.c.id)
        .where(directory_outbox.c.state == PENDING, directory_outbox.c.next_attempt_at <= now)
        .limit(1))).first() is not None


async def claim(conn: AsyncConnection, *, now: float, limit: int,
                lease: float) -> list[DirectoryEntry]:
    """Lease up to ``limit`` due heads (at most one entry per address), by id."""
    due = (select(directory_outbox.c.id)
           .where(directory_outbox.c.state == PENDING,
                  directory_outbox.c.next_attempt_at <= now,
                  ~_earlier_pending())
           .order_by(directory_outbox.c.id)
           .limit(limit)
           .with_for_update(skip_locked=True))  # SQLite: rendered as nothing
    rows = await conn.execute(update(directory_outbox)
                              .where(directory_outbox.c.id.in_(due))
                              .values(next_attempt_at=now + lease)
                              .returning(*directory_outbox.c))
    return sorted((_entry(row) for row in rows), key=lambda entry: entry.id)


async def done(conn: AsyncConnection, entry_id: int) -> None:
    """The trust space accepted the entry: delete it and the refusals it supersedes."""
    row = (await conn.execute(delete(directory_outbox)
                              .where(directory_outbox.c.id == entry_id)
                              .returning(directory_outbox.c.address, directory_outbox.c.resource,
                                         directory_outbox.c.identifier))).first()
    if row is not None:
        await conn.execute(delete(directory_outbox).where(
            directory_outbox.c.address == row.address,
            directory_outbox.c.resource == row.resource,
            directory_outbox.c.identifier == row.identifier,
            directory_outbox.c.state == FAILED, directory_outbox.c.id < entry_id))


async def retry(conn: AsyncConnection, entry_id: int, *, error: str, now: float,
                first: float, cap: float) -> float | None:
    """Count a failed attempt and schedule the next; returns when (None: no such entry)."""
    attempts = (await conn.execute(
        update(directory_outbox)
        .where(directory_outbox.c.id == entry_id, directory_outbox.c.state == PENDING)
        .values(attempts=directory_outbox.c.attempts + 1, last_error=error)
        .returning(directory_outbox.c.attempts))).scalar_one_or_none()
    if attempts is None:
        return None
    when = now + backoff(int(attempts), first=first, cap=cap)
    await conn.execute(update(directory_outbox).where(directory_outbox.c.id == entry_id)
                       .values(next_attempt_at=when))
    return when


async def failed(conn: AsyncConnection, entry_id: int, *, error: str, now: float) -> None:
    """The trust space refused the entry for good: keep it, with the reason, as failed."""
    await conn.execute(update(directory_outbox)
                       .where(directory_outbox.c.id == entry_id,
                              directory_outbox.c.state == PENDING)
                       .values(state=FAILED, attempts=directory_outbox.c.attempts + 1,
                               last_error=error, next_attempt_at=now))


async def release(conn: AsyncConnection, entry_ids: Sequence[int], *, now: float) -> None:
    """End leases without counting an attempt (a publisher stopping cleanly)."""
    await conn.execute(update(directory_outbox)
                       .where(directory_outbox.c.id.in_(list(entry_ids)),
                              directory_outbox.c.state == PENDING)
                       .values(next_attempt_at=now))


async def entries(conn: AsyncConnection, state: str | None = None) -> list[DirectoryEntry]:
    """Entries by id, all or those in ``state``."""
    query = select(directory_outbox).order_by(directory_outbox.c.id)
    if state is not None:
        if state not in OUTBOX_STATES:
            raise ValueError(f"unknown directory outbox state {state!r}")
        query = query.where(directory_outbox.c.state == state)
    return [_entry(row) for row in await conn.execute(query)]


async def next_due(conn: AsyncConnection) -> float | None:
    """When the next head is due (a leased one: when its lease ends)."""
    value = (await conn.execute(select(func.min(directory_outbox.c.next_attempt_at))
                                .where(directory_outbox.c.state == PENDING,
                                       ~_earlier_pending()))).scalar_one()
    return None if value is None else float(value)


def _entry(row: Row[Any]) -> DirectoryEntry:
    return DirectoryEntry(id=int(row.id), address=row.address, resource=row.resource,
                          identifier=row.identifier, operation=row.operation, body=row.body,
                          created_at=row.created_at, attempts=int(row.attempts),
                          next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                          state=row.state)
