"""Patient conversations kept by the patient operator, recorded as messages are accepted."""

from __future__ import annotations

import pytest
from tests.store.conftest import RULES, RowCounter

from mssante.domain.mailboxes import MailboxType
from mssante.domain.patient import Conversation, check_patient_reply, professional_message
from mssante.errors import NotFound, PolicyViolation
from mssante.store import Store
from mssante.store.models import MessageSummary

PATIENT = "279035121518989@patient.mssante.fr"
OTHER_PATIENT = "185017512345629@patient.mssante.fr"
DR = "alice.martin@ch-xyz.mssante.fr"
SEC = "cardiologie@ch-xyz.mssante.fr"
DR2 = "bruno.petit@medecin.mssante.fr"


@pytest.fixture
async def patients(people: Store) -> Store:
    await people.create_mailbox(PATIENT, MailboxType.PAT, rules=RULES, owner="pat")
    return people


async def send(store: Store, sender: str, message_id: str, *, references: str | None = None,
               reply_to: tuple[str, ...] = (), subject: str = "CR", fin: bool = False,
               to: tuple[str, ...] = (PATIENT,), now: float) -> None:
    """A professional's message accepted for the patient, as SMTP accepts it."""
    patient = professional_message(
        envelope_from=sender, from_addresses=[sender], message_id=message_id,
        in_reply_to=None, references=references, subject=subject,
        mss_mes="FIN" if fin else None, reply_to=reply_to)
    await store.accept_message(
        f"Message-ID: {message_id}\r\n\r\nBonjour\r\n".encode(), envelope_from=sender,
        local=list(to), remote=[], summary=MessageSummary(message_id, "CR", sender, None), now=now,
        patient=patient)


async def test_conversations_collect_senders_and_reply_to(patients: Store) -> None:
    store = patients
    assert await store.conversations(PATIENT) == []
    await send(store, "Alice.Martin@ch-xyz.mssante.fr", "<a1@ch-xyz>",
               reply_to=("Cardiologie@ch-xyz.mssante.fr",), to=(PATIENT.upper(),), now=10.0)
    await send(store, DR2, "<b1@medecin>", now=20.0)
    await send(store, DR, "<a2@ch-xyz>", references="<a1@ch-xyz>", now=30.0)
    assert await store.conversations(PATIENT) == [
        Conversation("<a1@ch-xyz>", frozenset({DR, SEC}), closed=False),
        Conversation("<b1@medecin>", frozenset({DR2}), closed=False),
    ]
    assert await store.conversations(OTHER_PATIENT) == []


async def test_closing_one_thread_leaves_the_others_open(patients: Store) -> None:
    store = patients
    for thread, sender, now in (("<a1@x>", DR, 1.0), ("<a9@x>", DR, 2.0), ("<b1@y>", DR2, 3.0)):
        await send(store, sender, thread, now=now)
    await send(store, DR, "<fin@x>", references="<a1@x>", fin=True, now=4.0)
    # A later message in a closed thread does not reopen it.
    await send(store, DR, "<after@x>", references="<a1@x>", now=5.0)
    closed = {c.thread: c.closed for c in await store.conversations(PATIENT)}
    assert closed == {"<a1@x>": True, "<a9@x>": False, "<b1@y>": False}


async def test_naming_another_professionals_thread_starts_a_thread_of_ones_own(
        patients: Store) -> None:
    store = patients
    await send(store, DR, "<a1@x>", now=1.0)
    # DR2 names DR's thread and asks to close it: DR's conversation stays open.
    await send(store, DR2, "<b1@y>", references="<a1@x>", fin=True, now=2.0)
    assert await store.conversations(PATIENT) == [
        Conversation("<a1@x>", frozenset({DR}), closed=False),
        Conversation("<b1@y>", frozenset({DR2}), closed=True),
    ]


async def test_threads_of_referenced_messages(patients: Store) -> None:
    store = patients
    await send(store, DR, "<a1@x>", now=1.0)
    await send(store, DR, "<a2@x>", references="<a1@x>", fin=True, now=2.0)
    await send(store, DR2, "<b1@y>", now=3.0)
    assert await store.threads_of(PATIENT, ["<b1@y>", "<a2@x>", "<a1@x>"]) == [
        "<b1@y>", "<a1@x>"]
    assert await store.threads_of(PATIENT, ["<unknown@z>"]) == []
    assert await store.threads_of(PATIENT, []) == []
    assert await store.threads_of(OTHER_PATIENT, ["<a1@x>"]) == []

    # What the SMTP layer will do with it: a reply in the closed thread is refused,
    # a reply in the open one passes.
    conversations = await store.conversations(PATIENT)
    check_patient_reply([DR2], await store.threads_of(PATIENT, ["<b1@y>"]), conversations)
    with pytest.raises(PolicyViolation, match="closed this conversation"):
        check_patient_reply([DR], await store.threads_of(PATIENT, ["<a2@x>"]), conversations)


async def test_a_refused_message_records_no_conversation(patients: Store,
                                                         count_rows: RowCounter) -> None:
    """The conversation is written in the accepting transaction: a message refused
    (here for an unknown second recipient) leaves neither mail nor conversation."""
    store = patients
    with pytest.raises(NotFound):
        await send(store, DR, "<a1@x>", to=(PATIENT, OTHER_PATIENT), now=1.0)
    assert await store.conversations(PATIENT) == []
    assert await count_rows("patient_messages") == 0
    assert await count_rows("messages") == 0
    await send(store, DR, "<a1@x>", now=2.0)
    assert await store.conversations(PATIENT) == [
        Conversation("<a1@x>", frozenset({DR}), closed=False)]


async def test_a_message_to_a_professional_records_no_conversation(
        mailboxes: Store, count_rows: RowCounter) -> None:
    await send(mailboxes, DR2, "<a1@x>", to=(SEC,), now=1.0)
    assert await count_rows("patient_messages") == 0
    assert len(await mailboxes.list_messages(SEC)) == 1
