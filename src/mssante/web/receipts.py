"""A message's read receipt and its sending's timeline, on the webmail's message page.

The timeline (**Suivi de l'envoi**): on a message the mailbox sent (in its ``Sent``
folder, or its own message elsewhere), what became of it per recipient: the events
``mssante operator track`` gives, read by the same store function
(store/receipts.py ``timeline``, for this mailbox's copy), each with its time in local
time, what happened, the recipient, the operator (or next hop) and the detail; an
integration receipt with an ANS error code shows that code and its label.

The read receipt (RFC 8098), on a received message that asks for one
(``Disposition-Notification-To``) and has none sent yet (no ``$MDNSent``, RFC 3503):
what to do is domain/patient.py's ``read_receipt_action``:

- a professional is asked: **Envoyer l'accusé de lecture** or **Ne pas envoyer**
  (actions.py posts them); either sets ``$MDNSent``, so it is asked once;
- a patient cannot refuse one: it is sent as the message is opened
  (``automatic-action/MDN-sent-automatically; displayed``), then ``$MDNSent``.

The MDN (content/mdn.py ``read_receipt``) goes to the request's addresses from the
mailbox, through the operator's sending path (operator/sending.py ``submit``), with
the rules of any message of that identity: a patient's receipt, as a patient's reply,
only to a professional of an open conversation. ``$MDNSent`` is set only once the MDN
was accepted: a refused one is offered (or tried) again.
"""

from __future__ import annotations

from dataclasses import dataclass

from mssante.auth.identity import Identity
from mssante.content.headers import header_section
from mssante.content.mdn import MDN_SENT, Original, read_receipt
from mssante.content.mime import Entity
from mssante.domain.patient import ReadReceipt, read_receipt_action
from mssante.operator import sending
from mssante.operator.accept import RcptParams
from mssante.operator.refusals import Refused
from mssante.operator.runtime import OperatorRuntime
from mssante.store.receipts import INTEGRATION_FAILED, SENT_FOLDER, Event
from mssante.web.context import WEB_PROTOCOL
from mssante.web.render import MessageView, local_time

# the timeline's events as the page names them (store/receipts.py)
EVENT_LABELS = {
    "submitted": "envoyé", "queued": "en attente de transmission", "deferred": "différé",
    "delayed": "retardé", "relayed": "transmis", "delivered": "remis", "failed": "échec",
    "deleted": "supprimé sans être lu", "dispatched": "réexpédié", "processed": "traité",
    INTEGRATION_FAILED: "échec d'intégration", "read": "lu",
}
THIS_OPERATOR = "cet opérateur"
MAX_NOTIFY = 10  # addresses of a Disposition-Notification-To a receipt goes to


@dataclass(frozen=True, slots=True)
class ShownEvent:
    when: str  # local time
    event: str  # as EVENT_LABELS names it, with an integration error's code and label
    recipient: str
    operator: str  # "cet opérateur", the recipient's domain's operator, the next hop
    detail: str


@dataclass(frozen=True, slots=True)
class ShownTimeline:
    states: tuple[tuple[str, str], ...]  # (recipient, its state), by recipient
    events: tuple[ShownEvent, ...]  # in time order


def event_label(event: Event) -> str:
    label = EVENT_LABELS.get(event.event, event.event)
    if event.error_code is not None:
        return f"{label} {event.error_code} — {event.error_label}"
    return label


def _operator(event: Event) -> str:
    if not event.operator:
        return THIS_OPERATOR
    where = f"opérateur de {event.operator}"
    return f"{where} (relais {event.hop})" if event.hop else where


def sent_by(view: MessageView, address: str, folder_name: str) -> bool:
    """Whether the mailbox at ``address`` sent the message: its Sent copy, or one of its
    own messages filed elsewhere."""
    if folder_name == SENT_FOLDER:
        return True
    authors = view.from_.mailboxes if view.from_ is not None else ()
    return any(m.address.lower() == address for m in authors)


async def shown_timeline(runtime: OperatorRuntime, address: str, view: MessageView
                         ) -> ShownTimeline | None:
    """The timeline of the message the mailbox at ``address`` sent, as the page shows
    it; None when this mailbox kept no Sent copy of it."""
    if not view.message_id:
        return None
    found = await runtime.store.timeline(view.message_id, mailbox=address)
    if not found:
        return None
    timeline = found[0]
    events = tuple(ShownEvent(local_time(e.at), event_label(e), e.recipient, _operator(e),
                              e.detail) for e in timeline.events)
    states = []
    for recipient, state in timeline.recipients.items():
        last = next((e for e in reversed(timeline.events)
                     if e.recipient == recipient and e.event == state), None)
        states.append((recipient, event_label(last) if last is not None
                       else EVENT_LABELS.get(state, state)))
    return ShownTimeline(tuple(states), events)


def notify_addresses(view: MessageView) -> tuple[str, ...]:
    """The addresses the message asks a read receipt for (RFC 8098 §2.1)."""
    if view.read_receipt_to is None:
        return ()
    return tuple(dict.fromkeys(m.address.lower()
                               for m in view.read_receipt_to.mailboxes))[:MAX_NOTIFY]


def is_report(raw: bytes) -> bool:
    """A ``multipart/report`` (RFC 6522): a DSN, an MDN."""
    return Entity(raw, 0, len(raw)).content_type[:2] == ("multipart", "report")


def receipt_action(raw: bytes, view: MessageView, flags: list[str], *, address: str,
                   patient: bool, writable: bool, folder_name: str
                   ) -> tuple[ReadReceipt, ReadReceipt]:
    """What the page does about the read receipt the message asks for
    (domain/patient.py), and, when ``$MDNSent`` is set, what was due before
    (``AUTOMATIC``: it was sent; ``OFFER``: sent or declined; else ``NONE``)."""
    authors = [m.address for m in view.from_.mailboxes] if view.from_ is not None else []

    def action(already_sent: bool) -> ReadReceipt:
        return read_receipt_action(
            patient=patient, notify_to=notify_addresses(view), authors=authors,
            already_sent=already_sent, is_report=is_report(raw),
            own=sent_by(view, address, folder_name), may_write=writable)

    sent = MDN_SENT in flags
    return action(sent), action(False) if sent else ReadReceipt.NONE


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of a read receipt: sent now, sent (or declined) before, or refused."""

    sent: bool
    refused: str = ""  # the reason, when the sending path refused it


async def send_receipt(runtime: OperatorRuntime, identity: Identity, address: str,
                       folder_id: int, uid: int, raw: bytes, view: MessageView, *,
                       automatic: bool, client_host: str | None) -> Sent:
    """Send, as the mailbox at ``address``, the read receipt of the message ``uid`` of
    the folder (``raw``, ``view``) to the addresses it names, once: ``$MDNSent`` is set
    first, and only the request that set it sends (two pages opened at once send one
    receipt); it is removed again when the sending path refuses the receipt."""
    to = notify_addresses(view)
    if not to:
        return Sent(False, "ce message ne demande pas d'accusé de lecture")
    folders = runtime.store.folders
    changed, _ = await folders.store_flags(folder_id, [uid], "+", [MDN_SENT])
    if not changed:
        return Sent(False)
    mdn = read_receipt(Original(view.message_id, view.full_subject, header_section(raw)),
                       mailbox=address, to=", ".join(to), automatic=automatic)
    try:
        await sending.submit(runtime, identity, sending.Submission(
            address, [(r, RcptParams()) for r in to], mdn.as_bytes()),
            sending.Client(WEB_PROTOCOL, client_host))
    except Refused as exc:
        await folders.store_flags(folder_id, [uid], "-", [MDN_SENT])
        where = f"{exc.address} — " if exc.address else ""
        return Sent(False, f"{where}{exc.reason}")
    return Sent(True)


async def decline_receipt(runtime: OperatorRuntime, folder_id: int, uid: int) -> None:
    """The person chose not to send it: ``$MDNSent`` all the same (RFC 3503 §3.1), so
    that no client asks again."""
    await runtime.store.folders.store_flags(folder_id, [uid], "+", [MDN_SENT])
