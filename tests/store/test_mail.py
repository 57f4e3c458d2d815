"""Accepting a message: bodies stored once, UIDs, queue rows, all or nothing."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from mssante.domain.mailboxes import MailboxType, Rules
from mssante.errors import Conflict, NotFound
from mssante.store import MessageSummary, OutboundRecipient, Store

DOMAIN = "ch-xyz.mssante.fr"
ORG = f"cardiologie@{DOMAIN}"
PER = f"alice.martin@{DOMAIN}"
BODY = (b"From: Dr Bruno Petit <bruno.petit@medecin.mssante.fr>\r\n"
        b"Subject: CR consultation\r\nMessage-ID: <cr-1@medecin.mssante.fr>\r\n\r\n"
        b"Compte rendu.\r\n")
SUMMARY = MessageSummary(message_id="<cr-1@medecin.mssante.fr>", subject="CR consultation",
                         from_header="Dr Bruno Petit <bruno.petit@medecin.mssante.fr>",
                         date_header="Tue, 4 Mar 2025 10:00:00 +0100")


async def test_one_body_for_several_mailboxes_and_queue_rows(mailboxes: Store,
                                                            count_rows) -> None:
    remote = [OutboundRecipient("bruno.petit@medecin.mssante.fr",
                                orcpt="rfc822;Bruno.Petit@medecin.mssante.fr",
                                notify=frozenset({"SUCCESS", "FAILURE"})),
              OutboundRecipient("carol@medecin.mssante.fr")]
    accepted = await mailboxes.accept_message(
        BODY, envelope_from=f"dr@{DOMAIN}", local=[PER, ORG.upper()], remote=remote,
        summary=SUMMARY, envid="env-1", ret="hdrs", now=1000.0)
    assert accepted.sha256 == hashlib.sha256(BODY).hexdigest()
    assert accepted.message_uids == {PER: 1, ORG: 1}
    assert len(accepted.queue_ids) == 2
    assert await count_rows("bodies") == 1
    assert await mailboxes.get_body(accepted.sha256) == BODY

    for address in (PER, ORG):
        [message] = await mailboxes.list_messages(address)
        assert message.body_sha256 == accepted.sha256
        assert message.uid == 1 and message.size == len(BODY)
        assert (message.message_id, message.subject, message.from_header,
                message.date_header) == (SUMMARY.message_id, SUMMARY.subject,
                                         SUMMARY.from_header, SUMMARY.date_header)
        assert message.envelope_from == f"dr@{DOMAIN}" and message.received_at == 1000.0
        assert message.flags == frozenset()

    first, second = [await mailboxes.get_queue_entry(i) for i in accepted.queue_ids]
    assert first.recipient == "bruno.petit@medecin.mssante.fr"
    assert first.orcpt == "rfc822;Bruno.Petit@medecin.mssante.fr"
    assert first.notify == frozenset({"SUCCESS", "FAILURE"})
    assert (first.ret, first.envid, first.status, first.attempts) == ("HDRS", "env-1",
                                                                      "queued", 0)
    assert first.next_attempt_at == first.created_at == 1000.0
    assert not first.delay_notified and first.delivered_at is None and first.last_error == ""
    assert second.recipient == "carol@medecin.mssante.fr" and second.notify == frozenset()
    assert first.body_sha256 == second.body_sha256 == accepted.sha256

    again = await mailboxes.accept_message(BODY, envelope_from="", local=[PER], remote=[],
                                           summary=SUMMARY)
    assert again.sha256 == accepted.sha256 and again.message_uids == {PER: 2}
    assert await count_rows("bodies") == 1  # content-addressed: still one copy


async def test_uids_increase_per_mailbox(mailboxes: Store) -> None:
    uids = []
    for n in range(5):
        accepted = await mailboxes.accept_message(
            b"message %d" % n, envelope_from="", local=[PER], remote=[], summary=SUMMARY)
        uids.append(accepted.message_uids[PER])
    assert uids == [1, 2, 3, 4, 5]
    assert [m.uid for m in await mailboxes.list_messages(PER)] == uids
    inbox = await mailboxes.folders.get(PER, "INBOX")
    assert inbox is not None and inbox.uidnext == 6 and inbox.highestmodseq == 6
    assert await mailboxes.count_messages(PER) == 5
    assert await mailboxes.count_messages(ORG) == 0
    assert await mailboxes.count_messages() == 5


async def test_concurrent_deliveries_get_distinct_uids(database, mailboxes: Store) -> None:
    other = await database.open()

    async def deliver(store: Store, n: int) -> dict[str, int]:
        # Alternate the order of the mailboxes: deliveries must not deadlock.
        local = [PER, ORG] if n % 2 else [ORG, PER]
        accepted = await store.accept_message(b"concurrent %d" % n, envelope_from="",
                                              local=local, remote=[], summary=SUMMARY)
        return accepted.message_uids

    results = await asyncio.gather(*(deliver(mailboxes if n % 3 else other, n)
                                      for n in range(24)))
    for address in (PER, ORG):
        assert sorted(r[address] for r in results) == list(range(1, 25))
        assert [m.uid for m in await mailboxes.list_messages(address)] == list(range(1, 25))


async def test_a_failure_in_the_middle_writes_nothing(mailboxes: Store, count_rows) -> None:
    with pytest.raises(NotFound, match=f"ghost@{DOMAIN}"):
        await mailboxes.accept_message(
            BODY, envelope_from="", local=[PER, f"ghost@{DOMAIN}", ORG],
            remote=[OutboundRecipient("bruno.petit@medecin.mssante.fr")], summary=SUMMARY)
    for table in ("bodies", "messages", "queue"):
        assert await count_rows(table) == 0, table
    inbox = await mailboxes.folders.get(PER, "INBOX")
    assert inbox is not None and inbox.uidnext == 1 and inbox.highestmodseq == 1


async def test_deactivated_mailbox_receives_nothing(mailboxes: Store, count_rows) -> None:
    await mailboxes.set_mailbox_active(ORG, False)
    with pytest.raises(Conflict, match="deactivated"):
        await mailboxes.accept_message(BODY, envelope_from="", local=[PER, ORG], remote=[],
                                       summary=SUMMARY)
    assert await count_rows("messages") == 0


async def test_reading_unknown_things(mailboxes: Store) -> None:
    with pytest.raises(NotFound):
        await mailboxes.list_messages(f"ghost@{DOMAIN}")
    with pytest.raises(NotFound):
        await mailboxes.count_messages(f"ghost@{DOMAIN}")
    with pytest.raises(NotFound):
        await mailboxes.get_body("0" * 64)
    assert await mailboxes.list_messages(PER) == []


async def test_nothing_to_deliver_writes_nothing(mailboxes: Store, count_rows) -> None:
    accepted = await mailboxes.accept_message(BODY, envelope_from="", local=[], remote=[],
                                              summary=SUMMARY)
    assert accepted.message_uids == {} and accepted.queue_ids == []
    assert await count_rows("bodies") == 0


async def test_large_body_round_trips(people: Store) -> None:
    await people.create_mailbox(PER, MailboxType.PER, rules=Rules(), owner="dr")
    body = bytes(range(256)) * 40_000  # 10 MB, every byte value
    accepted = await people.accept_message(body, envelope_from="", local=[PER], remote=[],
                                           summary=SUMMARY)
    assert await people.get_body(accepted.sha256) == body
