"""Group commit: concurrent requests share transactions, and a bad one fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.errors import Conflict, NotFound
from mssante.store import MessageSummary, OutboundRecipient, Store
from mssante.store.batch import GroupCommit

DOMAIN = "ch-xyz.mssante.fr"
ORG = f"cardiologie@{DOMAIN}"
PER = f"alice.martin@{DOMAIN}"
SUMMARY = MessageSummary(None, None, None, None)


class Doubler:
    """A batch function that records its batches and breaks on a poisoned item."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def run(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await asyncio.sleep(0.001)
        if 13 in items:
            raise RuntimeError("the whole batch broke")
        return [ValueError(f"odd {i}") if i % 2 else i * 2 for i in items]


async def test_concurrent_items_share_batches_and_get_their_own_result() -> None:
    doubler = Doubler()
    combiner: GroupCommit[int, int] = GroupCommit(doubler.run, max_items=8)
    items = range(20, 40)
    results = await asyncio.gather(*(combiner.submit(i) for i in items),
                                   return_exceptions=True)
    for item, result in zip(items, results, strict=True):
        if item % 2:
            assert isinstance(result, ValueError) and str(result) == f"odd {item}"
        else:
            assert result == item * 2
    assert max(len(b) for b in doubler.batches) == 8  # batched, and capped
    assert sorted(i for b in doubler.batches for i in b) == list(items)


async def test_a_batch_that_breaks_is_rerun_item_by_item() -> None:
    doubler = Doubler()
    combiner: GroupCommit[int, int] = GroupCommit(doubler.run)
    results = await asyncio.gather(combiner.submit(0), combiner.submit(2),
                                   combiner.submit(13), combiner.submit(4),
                                   return_exceptions=True)
    assert results[:2] == [0, 4] and results[3] == 8
    assert isinstance(results[2], RuntimeError)
    assert [13] in doubler.batches


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    doubler = Doubler()
    combiner: GroupCommit[int, int] = GroupCommit(doubler.run)
    first = asyncio.ensure_future(combiner.submit(2))
    second = asyncio.ensure_future(combiner.submit(4))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 8
    await combiner.wait_idle()
    assert first.cancelled()
    assert doubler.batches == [[2, 4]]  # it ran anyway: cancelling does not undo a commit


async def test_refused_deliveries_fail_alone_and_leave_no_uid_gap(mailboxes: Store) -> None:
    await mailboxes.create_mailbox(f"old@{DOMAIN}", MailboxType.ORG, rules=Rules(),
                                   responsible=["dr"])
    await mailboxes.set_mailbox_active(f"old@{DOMAIN}", False)

    def local(n: int) -> list[str]:
        if n % 7 == 3:
            return [PER, f"ghost{n}@{DOMAIN}"]
        if n % 7 == 5:
            return [ORG, f"old@{DOMAIN}"]
        return [PER, ORG]

    results = await asyncio.gather(*(
        mailboxes.accept_message(b"message %d" % n, envelope_from="", local=local(n),
                                 remote=[OutboundRecipient(f"r{n}@medecin.mssante.fr")],
                                 summary=SUMMARY)
        for n in range(28)), return_exceptions=True)
    for n, result in enumerate(results):
        if n % 7 == 3:
            assert isinstance(result, NotFound) and f"ghost{n}@" in str(result)
        elif n % 7 == 5:
            assert isinstance(result, Conflict) and "deactivated" in str(result)
        else:
            assert not isinstance(result, BaseException), result
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 20
    for address in (PER, ORG):
        assert sorted(a.message_uids[address] for a in accepted) == list(range(1, 21))
    assert len(await mailboxes.queue_entries()) == 20
    assert sorted(q for a in accepted for q in a.queue_ids) == sorted(
        e.id for e in await mailboxes.queue_entries())


async def test_concurrent_outcomes(store: Store) -> None:
    accepted = await store.accept_message(
        b"body", envelope_from="", local=[],
        remote=[OutboundRecipient(f"r{n}@medecin.mssante.fr") for n in range(12)],
        summary=SUMMARY, now=100.0)
    ids = accepted.queue_ids
    calls = [store.mark_delivered(i, now=200.0) for i in ids[:6]]
    calls += [store.mark_deferred(i, next_attempt_at=400.0, error="451 later") for i in ids[6:9]]
    calls += [store.mark_failed(i, error="550 no", now=300.0) for i in ids[9:]]
    calls += [store.mark_delay_notified(ids[6]), store.mark_delivered(999_999, now=1.0)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[:-1] == [None] * (len(calls) - 1)
    assert isinstance(results[-1], NotFound)
    by_id = {e.id: e for e in await store.queue_entries()}
    assert all(by_id[i].status == "delivered" and by_id[i].delivered_at == 200.0
               for i in ids[:6])
    assert all((by_id[i].status, by_id[i].attempts, by_id[i].next_attempt_at,
                by_id[i].last_error) == ("queued", 1, 400.0, "451 later") for i in ids[6:9])
    assert by_id[ids[6]].delay_notified and not by_id[ids[7]].delay_notified
    assert all((by_id[i].status, by_id[i].finished_at) == ("failed", 300.0) for i in ids[9:])


async def test_same_entry_twice_in_a_batch_keeps_the_order(store: Store) -> None:
    [entry_id] = (await store.accept_message(
        b"body", envelope_from="", local=[], remote=[OutboundRecipient("r@m.mssante.fr")],
        summary=SUMMARY, now=100.0)).queue_ids
    await asyncio.gather(store.mark_deferred(entry_id, next_attempt_at=150.0, error="busy"),
                         store.mark_deferred(entry_id, next_attempt_at=160.0, error="busy"),
                         store.mark_failed(entry_id, error="gave up", now=170.0))
    entry = await store.get_queue_entry(entry_id)
    assert (entry.status, entry.attempts, entry.last_error) == ("failed", 3, "gave up")


@pytest.mark.parametrize("size", [1, 3])
async def test_close_waits_for_deliveries_in_flight(database, size: int) -> None:
    store = await database.open()
    await store.create_person("dr", PersonKind.HEALTH, "Dr")
    await store.create_mailbox(PER, MailboxType.PER, rules=Rules(), owner="dr")
    pending = [asyncio.ensure_future(store.accept_message(
        b"late %d" % n, envelope_from="", local=[PER], remote=[], summary=SUMMARY))
        for n in range(size)]
    await asyncio.sleep(0)
    await store.close()
    assert all(p.done() and not p.exception() for p in pending)
    reopened = await database.open()
    assert await reopened.count_messages(PER) == size
