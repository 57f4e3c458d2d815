"""New-message notices (notify/notices.py) behind a real store's acceptance and a real
relay on 127.0.0.1: who is told, when a patient's choice is read, one notice a burst."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssante.config import NotificationSettings
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.errors import Conflict
from mssante.notify.notices import MessageNotices
from mssante.notify.sender import OutsideMail
from mssante.notify.sink import NotificationSink
from mssante.store import MessageSummary, Store, open_store

PATIENT = "279035121518989@patient.mssante.fr"
DOCTOR = "dupont@ch-xyz.mssante.fr"
HOME = "eve@example.org"


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[NotificationSink]:
    sink = NotificationSink(tmp_path / "notifications")
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'operator.sqlite3'}")
    for login, kind in ((PATIENT, PersonKind.PATIENT), (DOCTOR, PersonKind.HEALTH)):
        await store.create_person(login, kind, "someone")
    await store.create_mailbox(PATIENT, MailboxType.PAT, rules=Rules(), owner=PATIENT)
    await store.create_mailbox(DOCTOR, MailboxType.PER, rules=Rules(), owner=DOCTOR)
    await store.logins.set_contact(PATIENT, personal_address=HOME)
    try:
        yield store
    finally:
        await store.close()


def notices_for(store: Store, sink: NotificationSink, delay: float) -> MessageNotices:
    settings = NotificationSettings(
        enabled=True, relay=f"127.0.0.1:{sink.port}", starttls=False,
        from_address="ne-pas-repondre@patient.example", web_url="https://127.0.0.1:1",
        notice_delay=delay, notice_interval=3600.0)
    notices = MessageNotices(store.logins, OutsideMail(settings))
    store.on_delivered = notices.delivered
    return notices


@pytest.fixture
async def notices(store: Store, sink: NotificationSink) -> AsyncIterator[MessageNotices]:
    """Notices sent as soon as a message lands, the next one an hour later."""
    notices = notices_for(store, sink, delay=0.0)
    try:
        yield notices
    finally:
        await notices.stop()


async def deliver(store: Store, *to: str) -> None:
    await store.accept_message(
        b"Subject: Compte rendu\r\n\r\nconfidentiel\r\n", envelope_from=DOCTOR,
        local=list(to), remote=[], summary=MessageSummary("<1@x>", "Compte rendu", DOCTOR,
                                                          None))


async def settled(notices: MessageNotices, mailbox: str) -> None:
    while notices.pending(mailbox):
        await asyncio.sleep(0.01)


async def test_a_burst_schedules_one_notice_for_the_patient_only(
        store: Store, sink: NotificationSink) -> None:
    notices = notices_for(store, sink, delay=3600.0)  # the burst is still arriving
    try:
        await deliver(store, PATIENT, DOCTOR)
        assert notices.pending(PATIENT)  # taken note of when the acceptance returned
        assert not notices.pending(DOCTOR)  # a professional's mailbox: never
        await deliver(store, PATIENT)
        await deliver(store, PATIENT)
        assert notices.scheduled == 1  # one notice for the three messages
    finally:
        await notices.stop()  # dropped at shutdown
    assert not notices.pending(PATIENT) and sink.messages() == []


async def test_the_owner_is_told_then_the_next_notice_waits_the_interval(
        store: Store, notices: MessageNotices, sink: NotificationSink) -> None:
    await deliver(store, PATIENT)
    await settled(notices, PATIENT)
    assert notices.sent == 1 and len(sink.messages()) == 1
    assert b"X-Sink-Rcpt: eve@example.org" in sink.messages()[0].read_bytes()
    await deliver(store, PATIENT)  # within the interval: scheduled for its end
    await deliver(store, PATIENT)
    assert notices.pending(PATIENT) and notices.scheduled == 1
    assert notices.sent == 1 and len(sink.messages()) == 1


async def test_a_patient_who_turned_notices_off_is_not_told(
        store: Store, notices: MessageNotices, sink: NotificationSink) -> None:
    await store.logins.set_contact(PATIENT, notify_messages=False)
    await deliver(store, PATIENT)
    await settled(notices, PATIENT)
    assert notices.sent == 0 and sink.messages() == []


async def test_a_patient_without_an_address_is_not_told(
        store: Store, notices: MessageNotices, sink: NotificationSink) -> None:
    await store.logins.set_contact(PATIENT, personal_address=None)
    await deliver(store, PATIENT)
    await settled(notices, PATIENT)
    assert notices.sent == 0 and sink.messages() == []


async def test_a_refused_delivery_announces_nothing(
        store: Store, notices: MessageNotices) -> None:
    await store.set_mailbox_active(PATIENT, False)
    with pytest.raises(Conflict):
        await deliver(store, PATIENT)
    assert not notices.pending(PATIENT)
