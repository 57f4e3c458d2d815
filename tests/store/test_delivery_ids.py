"""XMSS-DELIVERY on the receiving side: the identifiers of another operator's queue
entries are stored with the message, a retry is recognised, and they are purged."""

from __future__ import annotations

import asyncio
import time

import pytest

from mssante.errors import Replayed
from mssante.store import DeliveryId, MessageSummary, Store

DN = "CN=mta.medecin.mssante.fr,OU=123,O=CABINET,C=FR"
ALICE = "alice.martin@ch-xyz.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"
T0 = 1_000_000.0


async def receive(store: Store, recipients: list[str], ids: list[DeliveryId], *,
                  subject: str = "compte rendu") -> None:
    await store.accept_message(
        f"Subject: {subject}\r\n\r\nbody\r\n".encode(), envelope_from="dr@medecin.mssante.fr",
        local=recipients, remote=[], summary=MessageSummary(None, subject, None, None),
        delivery_ids=ids)


async def test_the_ids_are_stored_with_the_message_and_a_replay_stores_nothing(
        mailboxes: Store) -> None:
    store = mailboxes
    ids = [DeliveryId(DN, "7.abc", ALICE), DeliveryId(DN, "8.abc", CARDIO)]
    await receive(store, [ALICE, CARDIO], ids)
    assert await store.stored_deliveries(ids) == set(ids)
    # the same identifiers from another certificate, or another entry, are not these
    other = [DeliveryId("CN=other", "7.abc", ALICE), DeliveryId(DN, "9.abc", ALICE)]
    assert await store.stored_deliveries(other) == set()
    # a second transaction of one of them (a concurrent retry) writes nothing at all
    with pytest.raises(Replayed):
        await receive(store, [ALICE], [ids[0]], subject="again")
    assert [m.subject for m in await store.list_messages(ALICE)] == ["compte rendu"]
    assert len(await store.list_messages(CARDIO)) == 1


async def test_a_replay_in_a_batch_does_not_fail_the_others(mailboxes: Store) -> None:
    """Group commit: the replayed delivery is refused, those sharing its transaction
    are written."""
    store = mailboxes
    first = DeliveryId(DN, "1.x", ALICE)
    await receive(store, [ALICE], [first])
    results = await asyncio.gather(
        receive(store, [ALICE], [first], subject="replayed"),
        receive(store, [ALICE], [DeliveryId(DN, "2.x", ALICE)], subject="new"),
        receive(store, [CARDIO], [], subject="plain"),
        return_exceptions=True)
    assert isinstance(results[0], Replayed)
    assert results[1:] == [None, None]
    assert sorted(m.subject or "" for m in await store.list_messages(ALICE)) == [
        "compte rendu", "new"]


async def test_purge_forgets_old_ids(mailboxes: Store) -> None:
    store = mailboxes
    ids = [DeliveryId(DN, "3.y", ALICE)]
    await receive(store, [ALICE], ids)
    assert await store.purge_delivery_ids(before=T0) == 0  # received now, after T0
    assert await store.stored_deliveries(ids) == set(ids)
    assert await store.purge_delivery_ids(before=time.time() + 1) == 1
    assert await store.stored_deliveries(ids) == set()
