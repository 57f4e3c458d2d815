"""The outbound queue: leases, deferral, failure, retry, purge."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable

import pytest

from mssante import leases
from mssante.config import QueueSettings
from mssante.errors import NotFound
from mssante.queue.retention import QueueRetention
from mssante.store import LeaseHolder, MessageSummary, OutboundRecipient, QueueEntry, Store

SUMMARY = MessageSummary(None, None, None, None)
T0 = 1_000_000.0
LEASE = 300.0


async def enqueue(store: Store, count: int, *, now: float = T0,
                  body: bytes = b"body") -> list[int]:
    accepted = await store.accept_message(
        body, envelope_from="dr@ch-xyz.mssante.fr", local=[],
        remote=[OutboundRecipient(f"r{n}@medecin.mssante.fr") for n in range(count)],
        summary=SUMMARY, now=now)
    return accepted.queue_ids


async def test_claim_due_leases_in_due_order(store: Store) -> None:
    late = await enqueue(store, 2, now=T0 + 50)
    early = await enqueue(store, 2, now=T0)
    future = await enqueue(store, 1, now=T0 + 1000)
    claimed = await store.claim_due(now=T0 + 100, limit=10, lease=LEASE)
    assert [e.id for e in claimed] == early + late
    assert all(e.claimed_until == T0 + 100 + LEASE for e in claimed)
    # Leased entries are not handed out again before the lease ends...
    assert await store.claim_due(now=T0 + 200, limit=10, lease=LEASE) == []
    # ... and a dead worker's entries come back when it ends.
    again = await store.claim_due(now=T0 + 100 + LEASE, limit=3, lease=LEASE)
    assert [e.id for e in again] == early + late[:1]
    assert await store.claim_due(now=T0 + 100, limit=0, lease=LEASE) == []
    assert (await store.get_queue_entry(future[0])).claimed_until == 0.0


async def test_a_claim_takes_the_same_messages_other_recipients_at_that_domain(
        store: Store) -> None:
    """``claim_companions``: the rest of one message's due entries for one domain,
    not another message's, another domain's, a future one or one already leased."""
    ids = await enqueue(store, 5)
    other = await enqueue(store, 2, body=b"another body")
    elsewhere = (await store.accept_message(
        b"body", envelope_from="dr@ch-xyz.mssante.fr", local=[],
        remote=[OutboundRecipient("x@infirmier.mssante.fr")], summary=SUMMARY,
        now=T0)).queue_ids
    first = (await store.claim_due(now=T0 + 1, limit=1, lease=LEASE))[0]
    assert first.id == ids[0]
    more = await store.claim_companions(first, "MEDECIN.mssante.fr", now=T0 + 1, limit=3,
                                        lease=LEASE)
    assert [e.id for e in more] == ids[1:4]
    assert all(e.claimed_until == T0 + 1 + LEASE for e in more)
    rest = await store.claim_companions(first, "medecin.mssante.fr", now=T0 + 1, limit=10,
                                        lease=LEASE)
    assert [e.id for e in rest] == ids[4:]  # other, elsewhere: not this message or domain
    assert await store.claim_companions(first, "medecin.mssante.fr", now=T0 + 1, limit=0,
                                        lease=LEASE) == []
    left = await store.claim_due(now=T0 + 2, limit=10, lease=LEASE)
    assert sorted(e.id for e in left) == sorted(other + elsewhere)


async def test_two_stores_never_claim_the_same_entry(database, store: Store) -> None:
    other = await database.open()
    ids = await enqueue(store, 60)
    claims: list[list[QueueEntry]] = []

    async def worker(s: Store) -> None:
        while batch := await s.claim_due(now=T0, limit=4, lease=LEASE):
            claims.append(batch)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(s) for s in (store, other, store, other)))
    claimed = [e.id for batch in claims for e in batch]
    assert len(claimed) == len(set(claimed)), "an entry was claimed twice"
    assert sorted(claimed) == sorted(ids)
    assert len(claims) >= 15


async def test_deferral_then_delivery(store: Store) -> None:
    [entry_id] = await enqueue(store, 1)
    [entry] = await store.claim_due(now=T0, limit=1, lease=LEASE)
    await store.mark_deferred(entry.id, next_attempt_at=T0 + 60, error="451 4.4.1 no answer")
    deferred = await store.get_queue_entry(entry_id)
    assert (deferred.status, deferred.attempts, deferred.last_error) == (
        "queued", 1, "451 4.4.1 no answer")
    assert deferred.next_attempt_at == T0 + 60 and deferred.claimed_until == 0.0
    assert await store.next_due() == T0 + 60
    assert await store.claim_due(now=T0 + 59, limit=1, lease=LEASE) == []
    [entry] = await store.claim_due(now=T0 + 60, limit=1, lease=LEASE)
    assert await store.next_due() == T0 + 60 + LEASE  # claimed: due when the lease ends
    await store.mark_delay_notified(entry_id)
    await store.mark_delivered(entry_id, now=T0 + 61)
    done = await store.get_queue_entry(entry_id)
    assert (done.status, done.delivered_at, done.finished_at) == ("delivered", T0 + 61,
                                                                  T0 + 61)
    assert done.delay_notified and done.attempts == 1
    assert await store.next_due() is None
    assert [e.id for e in await store.queue_entries(status="delivered")] == [entry_id]
    assert await store.queue_entries(status="queued") == []


async def test_failure_and_retry_now(store: Store) -> None:
    first, second, third = await enqueue(store, 3)
    await store.mark_deferred(first, next_attempt_at=T0 + 3600, error="busy")
    await store.mark_deferred(second, next_attempt_at=T0 + 7200, error="busy")
    await store.mark_failed(third, error="550 5.1.1 unknown user", now=T0 + 5)
    failed = await store.get_queue_entry(third)
    assert (failed.status, failed.attempts, failed.finished_at) == ("failed", 1, T0 + 5)
    assert failed.last_error == "550 5.1.1 unknown user"

    assert await store.retry_now(now=T0 + 10) == 2  # every queued entry, not the failed one
    assert {e.id for e in await store.claim_due(now=T0 + 10, limit=10, lease=LEASE)} == {
        first, second}
    assert (await store.get_queue_entry(third)).status == "failed"

    assert await store.retry_now(third, now=T0 + 20) == 1  # by id: failed comes back
    again = await store.get_queue_entry(third)
    assert (again.status, again.next_attempt_at, again.finished_at) == ("queued", T0 + 20,
                                                                        None)
    await store.mark_delivered(first, now=T0 + 30)
    assert await store.retry_now(first, now=T0 + 40) == 0  # delivered stays delivered
    with pytest.raises(NotFound):
        await store.retry_now(999_999, now=T0)


async def test_unknown_entries(store: Store) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.mark_delivered(42, now=T0),
        lambda: store.mark_deferred(42, next_attempt_at=T0, error="x"),
        lambda: store.mark_failed(42, error="x", now=T0),
        lambda: store.mark_delay_notified(42),
        lambda: store.get_queue_entry(42),
        lambda: store.delete_queue_entry(42),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="no queue entry 42"):
            await call()
    with pytest.raises(ValueError):
        await store.queue_entries(status="lost")


async def test_delete_and_purge_drop_unreferenced_bodies(store: Store, count_rows) -> None:
    first, second = await enqueue(store, 2, body=b"one")
    [third] = await enqueue(store, 1, body=b"two")
    await store.delete_queue_entry(first)
    assert await count_rows("bodies") == 2  # second still holds b"one"
    await store.mark_delivered(second, now=T0 + 10)
    await store.mark_failed(third, error="gone", now=T0 + 100)
    assert await store.purge_queue(finished_before=T0 + 50) == 1
    assert [e.id for e in await store.queue_entries()] == [third]
    assert await count_rows("bodies") == 1
    assert await store.purge_queue(finished_before=T0 + 101) == 1
    assert await count_rows("bodies") == 0


async def test_released_claims_are_due_again_without_an_attempt(store: Store) -> None:
    ids = await enqueue(store, 3)
    claimed = await store.claim_due(now=T0, limit=10, lease=LEASE)
    assert sorted(e.id for e in claimed) == sorted(ids)
    await store.mark_delivered(ids[0], now=T0)
    await store.release_claims(ids)
    again = await store.claim_due(now=T0 + 1, limit=10, lease=LEASE)
    assert sorted(e.id for e in again) == sorted(ids[1:])  # the delivered one stays delivered
    assert all(e.attempts == 0 for e in again)
    await store.release_claims([])  # nothing to do


async def test_a_claim_that_commits_after_its_task_was_cancelled_is_remembered(
        store: Store) -> None:
    """A stop cancels the claiming task; the claim's transaction may still commit
    (leases.claim). Its entries must be given back, not left for 15 minutes."""
    ids = await enqueue(store, 2)
    committed = asyncio.Event()

    async def claim_committing_late() -> list[QueueEntry]:
        await asyncio.sleep(0)  # the cancellation arrives here, before the commit...
        entries = await store.claim_due(now=T0, limit=10, lease=LEASE)
        committed.set()  # ... and the commit happens anyway
        return entries

    claimed: set[int] = set()
    task = asyncio.ensure_future(leases.claim(claim_committing_late(), claimed))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert committed.is_set()
    assert claimed == set(ids)
    await store.release_claims(sorted(claimed))
    assert sorted(e.id for e in await store.claim_due(now=T0, limit=10, lease=LEASE)) == ids


async def test_retention_purges_finished_entries_on_its_schedule(store: Store,
                                                                 count_rows) -> None:
    """Health data does not stay in the queue forever: the operator's retention task
    purges delivered and failed entries older than ``queue.retention``, and their
    bodies, and leaves queued and recent entries alone."""
    now = time.time()
    old_delivered, old_failed, recent, waiting = [
        (await enqueue(store, 1, now=now, body=b"body %d" % n))[0] for n in range(4)]
    await store.mark_delivered(old_delivered, now=now - 8 * 86400)
    await store.mark_failed(old_failed, error="550 5.1.1 no such user", now=now - 8 * 86400)
    await store.mark_delivered(recent, now=now - 3600)
    retention = QueueRetention(store, QueueSettings(retention=7 * 86400, purge_interval=0.05))
    retention.start()
    try:
        for _ in range(200):
            if await count_rows("queue") == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await retention.stop()
    assert {e.id for e in await store.queue_entries()} == {recent, waiting}
    assert await count_rows("bodies") == 2
    assert await retention.purge_once() == 0  # nothing more is due


# ----------------------------------------------------------------- lease holders

def holder(name: str, *, beat: float, pid: int | None = None,
           host: str | None = None) -> LeaseHolder:
    return LeaseHolder(id=name, host=host or socket.gethostname(), pid=pid or os.getpid(),
                       started_at=beat, heartbeat_at=beat)


async def test_leases_of_a_holder_known_dead_go_back_at_once(store: Store) -> None:
    """A holder whose heartbeat stopped, or whose process on this machine is gone: its
    leases are due again now, not at their end; a live holder's stay."""
    now = time.time()
    ids = await enqueue(store, 3, now=now - 10)
    dead_pid = _a_finished_pid()
    await store.lease_heartbeat(holder("alive", beat=now))
    await store.lease_heartbeat(holder("silent", beat=now - leases.STALE_AFTER - 1))
    await store.lease_heartbeat(holder("gone", beat=now, pid=dead_pid))
    for name, entry in zip(["alive", "silent", "gone"], ids, strict=True):
        claimed = await store.claim_due(now=now, limit=1, lease=LEASE, holder=name)
        assert [e.id for e in claimed] == [entry]
    assert await leases.reclaim_dead(store, now=now) == 2
    assert [h.id for h in await store.lease_holders()] == ["alive"]
    again = await store.claim_due(now=now, limit=10, lease=LEASE, holder="alive")
    assert [e.id for e in again] == ids[1:]


async def test_a_starting_worker_takes_back_dead_and_unnamed_leases_not_a_live_ones(
        store: Store) -> None:
    """Several workers claim from one database, SQLite too (environment/workers.py): a
    worker starting (again, after a crash) takes back the leases of a holder whose
    process is gone and those claimed before holders were named, never the leases of
    a worker that runs."""
    now = time.time()
    ids = await enqueue(store, 3, now=now - 10)
    await store.lease_heartbeat(holder("crashed", beat=now, pid=_a_finished_pid()))
    await store.lease_heartbeat(holder("running", beat=now))  # this test's own pid
    await store.claim_due(now=now, limit=1, lease=LEASE, holder="crashed")
    await store.claim_due(now=now, limit=1, lease=LEASE, holder="running")
    await store.claim_due(now=now, limit=1, lease=LEASE)  # a claim of before migration 0008q
    beat = leases.Heartbeat(store, on_reclaimed=lambda: None)
    assert await beat.start() == 2
    try:
        assert sorted(h.id for h in await store.lease_holders()) == sorted(
            [beat.holder.id, "running"])
        assert [e.id for e in await store.claim_due(now=now, limit=10, lease=LEASE)] == [
            ids[0], ids[2]]
    finally:
        await beat.stop()


async def test_retry_domain_makes_that_domains_entries_due(store: Store) -> None:
    ids = await enqueue(store, 2)
    for entry_id in ids:
        await store.mark_deferred(entry_id, next_attempt_at=T0 + 3600, error="down")
    elsewhere = (await store.accept_message(
        b"body", envelope_from="dr@ch-xyz.mssante.fr", local=[],
        remote=[OutboundRecipient("x@infirmier.mssante.fr")], summary=SUMMARY,
        now=T0)).queue_ids
    await store.mark_deferred(elsewhere[0], next_attempt_at=T0 + 3600, error="down")
    assert await store.retry_domain("Medecin.mssante.fr", now=T0 + 5) == 2
    due = await store.claim_due(now=T0 + 5, limit=10, lease=LEASE)
    assert [e.id for e in due] == ids


def _a_finished_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


async def test_a_running_process_takes_back_a_dead_holders_leases_on_its_heartbeat(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's case: several processes; one that dies is found by the others'
    heartbeats, and its leases are due again without waiting for their end."""
    monkeypatch.setattr(leases, "HEARTBEAT_SECONDS", 0.05)
    now = time.time()
    (entry,) = await enqueue(store, 1, now=now - 10)
    reclaimed = asyncio.Event()
    beat = leases.Heartbeat(store, on_reclaimed=reclaimed.set)
    assert await beat.start() == 0
    try:
        await store.lease_heartbeat(holder("peer", beat=time.time()))  # another, alive
        await store.claim_due(now=time.time(), limit=1, lease=LEASE, holder="peer")
        await asyncio.sleep(0.3)
        assert not reclaimed.is_set()  # a live holder keeps its leases
        assert await store.claim_due(now=time.time(), limit=1, lease=LEASE) == []
        # the peer stops beating: 31 s later it is taken for dead
        await store.lease_heartbeat(holder("peer", beat=time.time() - leases.STALE_AFTER - 1))
        await asyncio.wait_for(reclaimed.wait(), 5)
        again = await store.claim_due(now=time.time(), limit=1, lease=LEASE)
        assert [e.id for e in again] == [entry]
        assert [h.id for h in await store.lease_holders()] == [beat.holder.id]
    finally:
        await beat.stop()
