"""Patient conversations (Mon espace santé).

Rules (MSSanté reference, "Patient messaging"):
- only a professional starts a conversation with a patient;
- the patient can only reply: to a professional who wrote to them in a
  conversation still open, or to that message's ``Reply-To``;
- the professional closes it with ``X-MSS-MES: FIN`` or the subject ``[FIN]``;
  after that the patient can no longer reply in it;
- patients never write to other patients or outside the trust space;
- a patient cannot refuse a read receipt: when a message the patient opens asks for
  one, it is sent, without asking (``read_receipt_action``).

A conversation is a thread: the first Message-ID of ``References`` (else
``In-Reply-To``, else the message's own id) names it. A professional can hold
several conversations with one patient, and closing one leaves the others open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from mssante.domain.addresses import PATIENT_DOMAIN
from mssante.errors import PolicyViolation

FIN_SUBJECT = "[FIN]"
FIN_HEADER = "X-MSS-MES"
FIN_VALUE = "FIN"

_MSGID_RE = re.compile(r"<[^<>\s]+>")


def message_ids(header_value: str | None) -> list[str]:
    """The ``<id>`` tokens of a Message-ID, In-Reply-To or References header, in order."""
    if not header_value:
        return []
    return _MSGID_RE.findall(header_value)


def thread_root(own_id: str | None, in_reply_to: str | None, references: str | None) -> str:
    """The id naming the conversation a message belongs to (RFC 5322 §3.6.4 threading)."""
    refs = message_ids(references)
    if refs:
        return refs[0]
    parents = message_ids(in_reply_to)
    if parents:
        return parents[0]
    own = message_ids(own_id)
    return own[0] if own else ""


def closes_conversation(subject: str | None, mss_mes: str | None) -> bool:
    """True for a professional's closing message: ``X-MSS-MES: FIN`` or subject ``[FIN]``."""
    if mss_mes is not None and mss_mes.strip().upper() == FIN_VALUE:
        return True
    return subject is not None and subject.strip() == FIN_SUBJECT


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the patient's operator knows of one professional's thread with a patient."""

    thread: str
    professionals: frozenset[str]  # senders and Reply-To addresses, lower case
    closed: bool


@dataclass(frozen=True, slots=True)
class ProfessionalMessage:
    """A professional's message to patients, as their operator records it."""

    message_id: str  # the message's own <id>
    named_thread: str  # the thread its References / In-Reply-To name (else its own id)
    senders: frozenset[str]  # who counts as the professional, lower case
    reply_to: tuple[str, ...]  # Reply-To addresses: allowed contacts, lower case
    closes: bool


def professional_message(*, envelope_from: str, from_addresses: Iterable[str],
                         message_id: str | None, in_reply_to: str | None,
                         references: str | None, subject: str | None,
                         mss_mes: str | None, reply_to: Iterable[str]
                         ) -> ProfessionalMessage | None:
    """What a message sent to a patient opens or closes, or None when it opens nothing.

    Who counts as the professional: the envelope sender, and the From addresses of
    the same domain (at submission they were checked against the identity; from
    another operator, its certificate vouches for that domain only); Reply-To
    addresses become allowed contacts (MSSanté reference). The null sender (a DSN), a
    patient and a message without a Message-ID open nothing.
    """
    sender = envelope_from.lower()
    own_ids = message_ids(message_id)
    if not sender or sender.endswith("@" + PATIENT_DOMAIN) or not own_ids:
        return None
    domain = sender.rpartition("@")[2]
    senders = {sender} | {a.lower() for a in from_addresses
                          if a.lower().rpartition("@")[2] == domain}
    return ProfessionalMessage(
        message_id=own_ids[0], named_thread=thread_root(message_id, in_reply_to, references),
        senders=frozenset(senders), reply_to=tuple(dict.fromkeys(a.lower() for a in reply_to)),
        closes=closes_conversation(subject, mss_mes))


def thread_joined(message: ProfessionalMessage, conversations: Iterable[Conversation]) -> str:
    """The thread ``message`` belongs to: the one it names when one of its senders takes
    part in it (or nobody does yet), else a thread of its own. Nobody joins or closes
    another professional's conversation by naming it, nor by reusing the Message-ID
    that opened it: a message whose own id is already another professional's thread
    gets a key of its own, which no Message-ID can equal (it holds a space)."""
    threads = {c.thread: c for c in conversations}
    for candidate in (message.named_thread, message.message_id):
        held = threads.get(candidate)
        if held is None or message.senders & held.professionals:
            return candidate
    return f"{message.message_id} {min(message.senders)}"


def closed_after(message: ProfessionalMessage, conversation: Conversation | None) -> bool:
    """Whether the thread ``message`` joins is closed once it is recorded: its
    professional closes it with this message, or closed it before. A closed thread
    stays closed: no later message reopens it (the patient's reply stays refused)."""
    return message.closes or (conversation is not None and conversation.closed)


def check_not_patient_to_patient(sender_is_patient: bool, recipient_is_patient: bool) -> None:
    """Patients never write to other patients (at submission and between operators)."""
    if sender_is_patient and recipient_is_patient:
        raise PolicyViolation("a patient cannot write to another patient")


def check_patient_recipient(recipient: str, recipient_is_patient: bool,
                            conversations: Iterable[Conversation]) -> None:
    """Early check at RCPT: may this patient write to ``recipient`` at all?"""
    check_not_patient_to_patient(True, recipient_is_patient)
    key = recipient.lower()
    mine = [c for c in conversations if key in c.professionals]
    if not mine:
        raise PolicyViolation(
            f"{recipient} has not written to you: a patient can only reply to a "
            "professional who started a conversation")
    if all(c.closed for c in mine):
        raise PolicyViolation(f"{recipient} has closed the conversation: you can no "
                              "longer reply to it")


def check_patient_reply(recipients: Sequence[str], referenced_threads: Sequence[str],
                        conversations: Iterable[Conversation]) -> None:
    """Check at end of DATA: the message must reply in an open conversation with each
    recipient. ``referenced_threads`` are the threads of the professional messages
    named by the patient's ``In-Reply-To``/``References``."""
    if not referenced_threads:
        raise PolicyViolation("a patient can only reply to a professional's message; "
                              "this message is not a reply")
    threads = {c.thread: c for c in conversations}
    for recipient in recipients:
        key = recipient.lower()
        relevant = [threads[t] for t in referenced_threads
                    if t in threads and key in threads[t].professionals]
        if not relevant:
            raise PolicyViolation(f"{recipient} did not write to you in this conversation")
        if all(c.closed for c in relevant):
            raise PolicyViolation(f"{recipient} has closed this conversation: you can no "
                                  "longer reply to it")


@dataclass(frozen=True, slots=True)
class CareNote:
    """What one message tells a professional mailbox of its conversation with a patient:
    the professional's operator keeps these (the patient's operator keeps
    ``Conversation``), so that the professional sees which conversations are open."""

    mailbox: str  # the professional's mailbox, lower case
    patient: str  # the patient's address, lower case
    thread: str  # the conversation's root Message-ID
    message_id: str
    subject: str
    from_patient: bool  # the patient's reply (it never opens a conversation)
    closes: bool  # the professional's closing message


def care_notes(*, envelope_from: str, sent_from: str | None, recipients: Iterable[str],
               local: Iterable[str], message_id: str | None, in_reply_to: str | None,
               references: str | None, subject: str | None,
               mss_mes: str | None, report: bool = False) -> tuple[CareNote, ...]:
    """The notes a message leaves on its professional side.

    - Sent from a professional mailbox of this operator (``sent_from``: submission or
      the web) to patients: that mailbox's conversation with each patient, opened by
      the message or continued by it, and closed if the message closes it.
    - A patient's message to mailboxes of this operator: the conversation of each
      professional recipient it replies in (it never opens one: the store keeps only
      notes of conversations it knows).
    A message without a Message-ID leaves none (nothing could name its thread), nor does
    a report (``report``: a DSN or MDN of a message, such as the read receipt a patient
    cannot refuse): it is no reply of the patient's in the conversation.
    """
    own = message_ids(message_id)
    if not own or report:
        return ()
    thread = thread_root(message_id, in_reply_to, references)
    shown = (subject or "").strip()
    sender = envelope_from.lower()
    patient_domain = "@" + PATIENT_DOMAIN
    if sender.endswith(patient_domain):
        return tuple(CareNote(mailbox=m, patient=sender, thread=thread, message_id=own[0],
                              subject=shown, from_patient=True, closes=False)
                     for m in dict.fromkeys(a.lower() for a in local)
                     if not m.endswith(patient_domain))
    if sent_from is None or sent_from.lower().endswith(patient_domain):
        return ()
    closes = closes_conversation(subject, mss_mes)
    return tuple(CareNote(mailbox=sent_from.lower(), patient=p, thread=thread,
                          message_id=own[0], subject=shown, from_patient=False,
                          closes=closes)
                 for p in dict.fromkeys(r.lower() for r in recipients)
                 if p.endswith(patient_domain))


class ReadReceipt(Enum):
    """What the person reading a message does about the read receipt it asks for."""

    NONE = "none"  # none asked, one already sent or declined, or none may be sent
    OFFER = "offer"  # ask the person: send it, or not (RFC 8098 §2.1)
    AUTOMATIC = "automatic"  # send it now, without asking: a patient cannot refuse


def read_receipt_action(*, patient: bool, notify_to: Sequence[str], authors: Iterable[str],
                        already_sent: bool, is_report: bool, own: bool,
                        may_write: bool) -> ReadReceipt:
    """What to do, when a message is opened, about the read receipt (MDN) it asks for.

    - Nothing when it asks for none (``notify_to``: the addresses of its
      ``Disposition-Notification-To``, RFC 8098 §2.1),
      when one was sent or declined already (``$MDNSent``, RFC 3503 §3.1), when it is
      itself a report (a report is not answered, RFC 3834 §2), when the mailbox sent it
      (``own``), or when the reader may not write in the mailbox (a read-only delegate
      could not record ``$MDNSent``, RFC 3503 §3.2).
    - A professional is asked, always: a receipt is never sent for them without it.
    - A patient cannot refuse one (Mon espace santé): it is sent as they open the
      message. Only to the message's author, though: a request naming another address
      than the author's is asked (RFC 8098 §2.1), never answered automatically, which
      would let anyone make the patient's space write to a third party.
    """
    if not notify_to or already_sent or is_report or own or not may_write:
        return ReadReceipt.NONE
    if patient and {a.lower() for a in notify_to} <= {a.lower() for a in authors}:
        return ReadReceipt.AUTOMATIC
    return ReadReceipt.OFFER
