"""Grouped writes (store/transactions.py): the IMAP writes of concurrent sessions share
a transaction, each caller returns once the commit holding its change is done, and a
failing write fails alone; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from mssante.audit.events import READ, AuditEvent
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.errors import NotFound
from mssante.store import Store, open_store
from mssante.store.models import Folder
from mssante.store.schema import audit_entries

if TYPE_CHECKING:
    from tests.store.conftest import Database

DOMAIN = "ch-xyz.mssante.fr"
PER = f"alice.martin@{DOMAIN}"


def message(n: int) -> bytes:
    return (b"From: Dr Bruno Petit <bruno.petit@medecin.mssante.fr>\r\n"
            b"Subject: note %d\r\nMessage-ID: <g%d@medecin.mssante.fr>\r\n\r\n"
            b"Note %d.\r\n" % (n, n, n))


async def inbox_of_alice(store: Store) -> Folder:
    await store.create_person(PER, PersonKind.HEALTH, "Dr Alice Martin")
    await store.create_mailbox(PER, MailboxType.PER, rules=Rules(), owner=PER)
    inbox = await store.folders.get(PER, "INBOX")
    assert inbox is not None
    return inbox


def audit_row(conn: Connection, detail: str) -> None:
    conn.execute(insert(audit_entries), [{
        "at": 0.0, "action": READ, "actor": PER, "mailbox": PER, "message_id": "",
        "source": "test", "detail": detail}])


async def audit_details(store: Store) -> set[str]:
    async with store.tx.read() as conn:
        return set((await conn.execute(select(audit_entries.c.detail))).scalars())


async def test_concurrent_writes_share_transactions_and_are_committed_on_return(
        database: Database) -> None:
    store = await database.open()
    inbox = await inbox_of_alice(store)
    _, uids = await store.folders.append_many(inbox.id, [(message(n), [], None)
                                                         for n in range(12)])

    def transaction_of(conn: Connection) -> object:
        return conn.get_transaction()

    # twelve STOREs, an EXPUNGE and twelve group probes submitted at once
    flagged = [store.folders.store_flags(inbox.id, [uid], "+", [f"$K{uid}", "\\Seen"])
               for uid in uids]
    probes = [store.tx.grouped(transaction_of, inbox.id) for _ in range(12)]
    results = await asyncio.gather(*flagged, *probes)
    assert len({id(t) for t in results[len(uids):]}) < 12  # they shared transactions
    changes = [changed for changed, _ in results[:len(uids)]]
    assert [[(uid, flags) for uid, flags, _ in changed] for changed in changes] == [
        [(uid, f"$K{uid} \\Seen")] for uid in uids]
    assert len({modseq for changed in changes for _, _, modseq in changed}) == 12

    # committed once each call returned: another store on the database sees them all
    other = await database.open()
    assert await other.folders.flags(inbox.id, uids) == {
        uid: f"$K{uid} \\Seen" for uid in uids}


async def test_a_failing_write_fails_alone_and_leaves_the_others_committed(
        database: Database) -> None:
    store = await database.open()
    inbox = await inbox_of_alice(store)
    [uid] = (await store.folders.append_many(inbox.id, [(message(0), [], None)]))[1]

    def broken(conn: Connection) -> None:
        audit_row(conn, "written by the failing write")
        raise RuntimeError("this write breaks after writing")

    def kept(n: int) -> object:
        return lambda conn: audit_row(conn, f"kept {n}")

    results = await asyncio.gather(
        store.tx.grouped(kept(1)),
        store.folders.append_many(inbox.id, [(message(1), [], None)]),
        store.tx.grouped(broken),
        store.folders.store_flags(inbox.id, [uid], "+", ["\\Flagged"]),
        store.folders.store_flags(inbox.id + 1000, [1], "+", ["\\Flagged"]),  # no folder
        store.tx.grouped(kept(2)),
        return_exceptions=True)
    assert isinstance(results[2], RuntimeError)
    assert isinstance(results[4], NotFound)
    assert results[1] == (inbox.uidvalidity, [uid + 1])
    assert results[3] == ([(uid, "\\Flagged", results[3][0][0][2])], [])  # type: ignore[index]
    assert await audit_details(store) >= {"kept 1", "kept 2"}
    assert "written by the failing write" not in await audit_details(store)
    assert await store.folders.flags(inbox.id, [uid, uid + 1]) == {uid: "\\Flagged",
                                                                   uid + 1: ""}


async def test_two_stores_on_one_database_take_turns(database: Database) -> None:
    """Two stores stand for two processes of an operator (each its own engine, lock file
    descriptor and group): their groups interleave and every UID is given once."""
    first = await database.open()
    inbox = await inbox_of_alice(first)
    second = await database.open()

    async def appends(store: Store, start: int) -> list[int]:
        done = await asyncio.gather(*(store.folders.append(inbox.id, message(n))
                                      for n in range(start, start + 15)))
        return [uid for _, uid in done]

    one, two = await asyncio.gather(appends(first, 0), appends(second, 100))
    assert sorted(one + two) == list(range(1, 31))
    state = await first.folders.state(inbox.id)
    assert state is not None and state.uids == list(range(1, 31))


async def test_a_cancelled_caller_does_not_lose_the_others_writes(database: Database) -> None:
    store = await database.open()
    inbox = await inbox_of_alice(store)
    calls = [asyncio.ensure_future(store.folders.append(inbox.id, message(n)))
             for n in range(6)]
    calls[2].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    kept = [uid for result in done if isinstance(result, tuple) for uid in result[1:]]
    state = await store.folders.state(inbox.id)
    assert state is not None and set(kept) <= set(state.uids)
    assert len(kept) == 5


async def test_audit_entries_of_reads_join_the_group(database: Database) -> None:
    store = await database.open()
    inbox = await inbox_of_alice(store)
    await asyncio.gather(
        *(store.audit_record([AuditEvent(READ, PER, PER, f"<m{n}@x>", "imap", f"read {n}")])
          for n in range(5)),
        store.folders.append(inbox.id, message(0)))
    assert {f"read {n}" for n in range(5)} <= await audit_details(store)


@pytest.mark.parametrize("uids", [[1], []])
async def test_an_expunge_in_a_group_removes_only_deleted_messages(
        database: Database, uids: list[int]) -> None:
    store = await database.open()
    inbox = await inbox_of_alice(store)
    await store.folders.append_many(inbox.id, [(message(n), [], None) for n in range(3)])
    flagged, removed = await asyncio.gather(
        store.folders.store_flags(inbox.id, [1, 3], "+", ["\\Deleted"]),
        store.folders.expunge(inbox.id, uids or None))
    assert [uid for uid, _, _ in flagged[0]] == [1, 3]
    assert removed == ([1] if uids else [1, 3])  # the STORE ran first in the group
    state = await store.folders.state(inbox.id)
    assert state is not None and state.uids == ([2, 3] if uids else [2])


async def test_an_in_memory_store_groups_through_its_one_connection() -> None:
    """A database in memory has no file for a second connection: its groups run on the
    async connection (``run_sync``), as on PostgreSQL."""
    store = await open_store("sqlite://")
    try:
        inbox = await inbox_of_alice(store)
        done = await asyncio.gather(*(store.folders.append(inbox.id, message(n))
                                      for n in range(5)))
        assert sorted(uid for _, uid in done) == [1, 2, 3, 4, 5]
        assert await store.folders.flags(inbox.id, [1, 5]) == {1: "", 5: ""}
    finally:
        await store.close()


async def test_large_appends_are_spread_over_groups(database: Database) -> None:
    """A group holds GROUP_WEIGHT octets at most (one APPEND above it goes alone)."""
    store = await database.open()
    inbox = await inbox_of_alice(store)
    big = 7 * 1024 * 1024

    def large(n: int) -> bytes:
        return message(n) + b"x" * big + b"\r\n"

    def transaction_of(conn: Connection) -> object:
        return conn.get_transaction()

    probes = [store.tx.grouped(transaction_of, weight=big) for _ in range(5)]
    appends = [store.folders.append(inbox.id, large(n)) for n in range(3)]
    done = await asyncio.gather(*probes, *appends)
    assert len({id(t) for t in done[:5]}) >= 3  # 5 × 7 MiB: at least three groups
    assert sorted(uid for _, uid in done[5:]) == [1, 2, 3]
