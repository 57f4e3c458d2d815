"""Patient conversations in the database: the patient operator's memory of who wrote.

A professional's message to a patient is recorded in the transaction that accepts it
(``delivery.write_deliveries`` calls ``record``): when the ``250`` goes out, the patient
can reply. Which thread the message joins is decided by ``domain.patient``; this module
only reads and writes rows, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, func, insert, select
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.domain.patient import (
    Conversation,
    ProfessionalMessage,
    closed_after,
    thread_joined,
)
from mssante.store.schema import patient_messages, patient_threads


async def record(conn: AsyncConnection, patient: str, message: ProfessionalMessage, *,
                 now: float, postgresql: bool) -> str:
    """Remember ``message`` to ``patient``; a closing message closes its thread, which
    stays closed. Returns the thread it joined."""
    patient = patient.lower()
    existing = await read(conn, patient)
    thread = thread_joined(message, existing)
    closed = closed_after(message, next((c for c in existing if c.thread == thread), None))
    upsert: pg.Insert | sqlite.Insert = (pg.insert(patient_threads) if postgresql
                                         else sqlite.insert(patient_threads))
    upsert = upsert.values(patient=patient, thread=thread, opened_at=now,
                           closed_at=now if closed else None)
    keys = [patient_threads.c.patient, patient_threads.c.thread]
    if closed:  # the first closing time stays (domain.patient.closed_after)
        upsert = upsert.on_conflict_do_update(index_elements=keys, set_={
            "closed_at": func.coalesce(patient_threads.c.closed_at,
                                       upsert.excluded.closed_at)})
    else:
        upsert = upsert.on_conflict_do_nothing(index_elements=keys)
    await conn.execute(insert(patient_messages), [
        {"patient": patient, "message_id": message.message_id, "thread": thread,
         "sender": sender, "reply_to": " ".join(message.reply_to), "received_at": now}
        for sender in sorted(message.senders)])
    await conn.execute(upsert)
    return thread


async def read(conn: AsyncConnection, patient: str) -> list[Conversation]:
    """The patient's threads, oldest first, each with the professionals in it."""
    rows = await conn.execute(
        select(patient_threads.c.thread, patient_threads.c.closed_at,
               patient_messages.c.sender, patient_messages.c.reply_to)
        .select_from(patient_threads)
        .outerjoin(patient_messages, and_(
            patient_messages.c.patient == patient_threads.c.patient,
            patient_messages.c.thread == patient_threads.c.thread))
        .where(patient_threads.c.patient == patient.lower())
        .order_by(patient_threads.c.opened_at, patient_threads.c.thread))
    threads: dict[str, tuple[set[str], bool]] = {}
    for row in rows:
        people, _ = threads.setdefault(row.thread, (set(), row.closed_at is not None))
        if row.sender is not None:
            people.add(row.sender)
            people.update(row.reply_to.split())
    return [Conversation(thread=thread, professionals=frozenset(people), closed=closed)
            for thread, (people, closed) in threads.items()]


async def threads_of(conn: AsyncConnection, patient: str,
                     message_ids: Sequence[str]) -> list[str]:
    """Threads of the patient's recorded professional messages named in
    ``message_ids``, in the order the ids are given."""
    wanted = list(dict.fromkeys(message_ids))
    found: dict[str, set[str]] = {}
    for start in range(0, len(wanted), 500):
        rows = await conn.execute(
            select(patient_messages.c.message_id, patient_messages.c.thread)
            .where(patient_messages.c.patient == patient.lower(),
                   patient_messages.c.message_id.in_(wanted[start:start + 500])))
        for row in rows:
            found.setdefault(row.message_id, set()).add(row.thread)
    threads: dict[str, None] = {}
    for message_id in wanted:
        for thread in sorted(found.get(message_id, ())):
            threads[thread] = None
    return list(threads)
