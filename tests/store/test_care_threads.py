"""A professional mailbox's conversations with patients, kept by the professional's
operator as messages are accepted (store/carethreads.py, domain.patient.care_notes):
what the webmail's "Conversations avec des patients" shows."""

from __future__ import annotations

from mssante.domain.patient import care_notes
from mssante.store import Store
from mssante.store.carethreads import CLOSED, OPEN
from mssante.store.models import MessageSummary, OutboundRecipient

DR = "alice.martin@ch-xyz.mssante.fr"
ORG = "cardiologie@ch-xyz.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"
OTHER = "185017512345629@patient.mssante.fr"


async def professional_sends(store: Store, mailbox: str, message_id: str, *,
                             to: tuple[str, ...] = (PATIENT,), references: str | None = None,
                             subject: str = "Vos résultats", fin: bool = False,
                             now: float) -> None:
    """Sent from ``mailbox`` to patients of another operator, as submission accepts it."""
    care = care_notes(envelope_from=mailbox, sent_from=mailbox, recipients=to, local=[],
                      message_id=message_id, in_reply_to=None, references=references,
                      subject=subject, mss_mes="FIN" if fin else None)
    await store.accept_message(
        f"Message-ID: {message_id}\r\nSubject: {subject}\r\n\r\nBonjour\r\n".encode(),
        envelope_from=mailbox, local=[], remote=[OutboundRecipient(p) for p in to],
        summary=MessageSummary(message_id, subject, mailbox, None), now=now, sent=mailbox,
        care=care)


async def patient_replies(store: Store, patient: str, message_id: str, references: str, *,
                          to: tuple[str, ...] = (DR,), now: float) -> None:
    """A patient's reply arriving from the patient operator, as the MTA accepts it."""
    care = care_notes(envelope_from=patient, sent_from=None, recipients=to, local=to,
                      message_id=message_id, in_reply_to=None, references=references,
                      subject="Re: Vos résultats", mss_mes=None)
    await store.accept_message(
        f"Message-ID: {message_id}\r\nSubject: Re\r\n\r\nMerci\r\n".encode(),
        envelope_from=patient, local=list(to), remote=[],
        summary=MessageSummary(message_id, "Re: Vos résultats", patient, None), now=now,
        care=care)


async def test_a_conversation_opens_gets_replies_and_closes(mailboxes: Store) -> None:
    store = mailboxes
    await professional_sends(store, DR, "<a1@ch>", now=10.0)
    await patient_replies(store, PATIENT, "<p1@pat>", "<a1@ch>", now=20.0)
    opened, closed, threads = await store.care_threads(DR, None, 0, 50)
    assert (opened, closed) == (1, 0)
    [thread] = threads
    assert (thread.patient, thread.thread, thread.subject, thread.opened_at, thread.last_at,
            thread.replies, thread.closed) == (PATIENT, "<a1@ch>", "Vos résultats", 10.0,
                                               20.0, 1, False)
    await professional_sends(store, DR, "<fin@ch>", references="<a1@ch> <p1@pat>",
                             subject="Re: Vos résultats", fin=True, now=30.0)
    # closed once the closing message is accepted; a later message does not reopen it
    await professional_sends(store, DR, "<late@ch>", references="<a1@ch>", now=40.0)
    held = await store.care_thread(DR, thread.id)
    assert held is not None
    thread, listed = held
    assert thread.closed_at == 30.0 and thread.last_at == 40.0
    assert [(m.message_id, m.from_patient) for m in listed] == [
        ("<a1@ch>", False), ("<p1@pat>", True), ("<fin@ch>", False), ("<late@ch>", False)]
    assert (await store.care_thread_of(DR, PATIENT, "<a1@ch>")) == thread


async def test_a_patient_message_opens_nothing(mailboxes: Store) -> None:
    """A patient never starts a conversation: a message naming an unknown thread, or
    addressed to a mailbox that never wrote to them, leaves no conversation."""
    store = mailboxes
    await professional_sends(store, DR, "<a1@ch>", now=10.0)
    await patient_replies(store, PATIENT, "<p1@pat>", "<forged@elsewhere>", now=20.0)
    await patient_replies(store, PATIENT, "<p2@pat>", "<a1@ch>", to=(ORG,), now=21.0)
    await patient_replies(store, OTHER, "<o1@pat>", "<a1@ch>", now=22.0)
    assert (await store.care_threads(ORG, None, 0, 50))[2] == []
    [thread] = (await store.care_threads(DR, None, 0, 50))[2]
    assert (thread.replies, thread.last_at) == (0, 10.0)


async def test_open_ones_first_then_newest_and_filtered_by_state(mailboxes: Store) -> None:
    store = mailboxes
    await professional_sends(store, DR, "<old@ch>", now=1.0)
    await professional_sends(store, DR, "<closed@ch>", now=2.0)
    await professional_sends(store, DR, "<new@ch>", to=(PATIENT, OTHER), now=3.0)
    await professional_sends(store, DR, "<fin@ch>", references="<closed@ch>", fin=True,
                             now=4.0)
    await professional_sends(store, ORG, "<org@ch>", now=5.0)  # another mailbox's
    opened, closed, threads = await store.care_threads(DR, None, 0, 50)
    assert (opened, closed) == (3, 1)
    assert [(t.thread, t.patient) for t in threads] == [
        ("<new@ch>", OTHER), ("<new@ch>", PATIENT), ("<old@ch>", PATIENT),
        ("<closed@ch>", PATIENT)]
    assert [t.thread for t in (await store.care_threads(DR, CLOSED, 0, 50))[2]] == [
        "<closed@ch>"]
    assert [t.thread for t in (await store.care_threads(DR, OPEN, 1, 1))[2]] == ["<new@ch>"]
    assert await store.care_thread(ORG, threads[0].id) is None  # not ORG's


async def test_messages_are_located_in_the_mailbox_by_message_id(mailboxes: Store) -> None:
    store = mailboxes
    await professional_sends(store, DR, "<a1@ch>", now=10.0)
    await patient_replies(store, PATIENT, "<p1@pat>", "<a1@ch>", now=20.0)
    found = await store.locate_messages(DR, ["<a1@ch>", "<p1@pat>", "<gone@x>"])
    assert set(found) == {"<a1@ch>", "<p1@pat>"}
    sent = await store.folders.get(DR, "Sent")
    inbox = await store.folders.get(DR, "INBOX")
    assert sent is not None and inbox is not None
    assert (found["<a1@ch>"].folder_id, found["<a1@ch>"].flags) == (sent.id, "\\Seen")
    assert (found["<p1@pat>"].folder_id, found["<p1@pat>"].flags) == (inbox.id, "")
    assert await store.locate_messages(ORG, ["<a1@ch>"]) == {}
