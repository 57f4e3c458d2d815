"""Patient conversations kept by the patient operator."""

from __future__ import annotations

import pytest

from mssante.domain.patient import Conversation, check_patient_reply
from mssante.errors import PolicyViolation
from mssante.store import Store

PATIENT = "279035121518989@patient.mssante.fr"
DR = "alice.martin@ch-xyz.mssante.fr"
SEC = "cardiologie@ch-xyz.mssante.fr"
DR2 = "bruno.petit@medecin.mssante.fr"


async def test_conversations_collect_senders_and_reply_to(store: Store) -> None:
    assert await store.conversations(PATIENT) == []
    await store.record_professional_message(
        patient=PATIENT.upper(), message_id="<a1@ch-xyz>", thread="<a1@ch-xyz>",
        sender="Alice.Martin@ch-xyz.mssante.fr", reply_to=["Cardiologie@ch-xyz.mssante.fr"],
        closes=False, now=10.0)
    await store.record_professional_message(
        patient=PATIENT, message_id="<b1@medecin>", thread="<b1@medecin>", sender=DR2,
        reply_to=[], closes=False, now=20.0)
    await store.record_professional_message(
        patient=PATIENT, message_id="<a2@ch-xyz>", thread="<a1@ch-xyz>", sender=DR,
        reply_to=[], closes=False, now=30.0)
    assert await store.conversations(PATIENT) == [
        Conversation("<a1@ch-xyz>", frozenset({DR, SEC}), closed=False),
        Conversation("<b1@medecin>", frozenset({DR2}), closed=False),
    ]
    assert await store.conversations("other@patient.mssante.fr") == []


async def test_closing_one_thread_leaves_the_others_open(store: Store) -> None:
    for thread, sender, now in (("<a1@x>", DR, 1.0), ("<a9@x>", DR, 2.0), ("<b1@y>", DR2, 3.0)):
        await store.record_professional_message(
            patient=PATIENT, message_id=thread, thread=thread, sender=sender, reply_to=[],
            closes=False, now=now)
    await store.record_professional_message(
        patient=PATIENT, message_id="<fin@x>", thread="<a1@x>", sender=DR, reply_to=[],
        closes=True, now=4.0)
    # A later message in a closed thread does not reopen it.
    await store.record_professional_message(
        patient=PATIENT, message_id="<after@x>", thread="<a1@x>", sender=DR, reply_to=[],
        closes=False, now=5.0)
    closed = {c.thread: c.closed for c in await store.conversations(PATIENT)}
    assert closed == {"<a1@x>": True, "<a9@x>": False, "<b1@y>": False}


async def test_threads_of_referenced_messages(store: Store) -> None:
    await store.record_professional_message(
        patient=PATIENT, message_id="<a1@x>", thread="<a1@x>", sender=DR, reply_to=[],
        closes=False, now=1.0)
    await store.record_professional_message(
        patient=PATIENT, message_id="<a2@x>", thread="<a1@x>", sender=DR, reply_to=[],
        closes=True, now=2.0)
    await store.record_professional_message(
        patient=PATIENT, message_id="<b1@y>", thread="<b1@y>", sender=DR2, reply_to=[],
        closes=False, now=3.0)
    assert await store.threads_of(PATIENT, ["<b1@y>", "<a2@x>", "<a1@x>"]) == [
        "<b1@y>", "<a1@x>"]
    assert await store.threads_of(PATIENT, ["<unknown@z>"]) == []
    assert await store.threads_of(PATIENT, []) == []
    assert await store.threads_of("other@patient.mssante.fr", ["<a1@x>"]) == []

    # What the SMTP layer will do with it: a reply in the closed thread is refused,
    # a reply in the open one passes.
    conversations = await store.conversations(PATIENT)
    check_patient_reply([DR2], await store.threads_of(PATIENT, ["<b1@y>"]), conversations)
    with pytest.raises(PolicyViolation, match="closed this conversation"):
        check_patient_reply([DR], await store.threads_of(PATIENT, ["<a2@x>"]), conversations)
