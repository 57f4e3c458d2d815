"""What became of an alert, counted from its sender's operator (store/receipts.py).

Per recipient, the most advanced state of the message's timeline:
- delivered: stored in a mailbox of the authority's operator, or accepted (``250``)
  by the recipient's operator, which accepts only once the message is stored there
  (DESIGN "Storage"); a later delivery or read report counts the same;
- deferred: queued and not yet accepted (waiting for its first attempt or a retry);
- failed: given up (a permanent refusal, or the queue's lifetime passed).
``operators`` holds the same counts per recipient domain (one operator each).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mssante.store import Store

DELIVERED_STATES = frozenset({"delivered", "relayed", "read", "processed", "dispatched",
                              "deleted"})
FAILED_STATES = frozenset({"failed"})
COUNTS = ("delivered", "deferred", "failed")


@dataclass
class AlertStatus:
    message_id: str
    sender: str
    subject: str | None
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    operators: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def recipients(self) -> int:
        return self.delivered + self.deferred + self.failed

    def as_json(self) -> dict[str, object]:
        return {"message_id": self.message_id, "sender": self.sender, "subject": self.subject,
                "recipients": self.recipients, "delivered": self.delivered,
                "deferred": self.deferred, "failed": self.failed,
                "operators": self.operators}


def outcome(state: str) -> str:
    if state in DELIVERED_STATES:
        return "delivered"
    if state in FAILED_STATES:
        return "failed"
    return "deferred"


async def alert_status(store: Store, message_id: str, sender: str) -> AlertStatus | None:
    """The counts of the alert ``message_id`` sent by ``sender``; None if it sent none."""
    copies = await store.timeline(message_id, mailbox=sender)
    if not copies:
        return None
    states: dict[str, str] = {}
    for copy in copies:  # one per SMTP transaction of the alert
        states.update(copy.recipients)
    status = AlertStatus(message_id, copies[0].sender, copies[0].subject)
    per: dict[str, Counter[str]] = {}
    for recipient, state in states.items():
        if recipient == sender.lower():
            continue
        result = outcome(state)
        setattr(status, result, getattr(status, result) + 1)
        per.setdefault(recipient.rpartition("@")[2], Counter())[result] += 1
    status.operators = {domain: {name: counts[name] for name in COUNTS}
                        for domain, counts in sorted(per.items())}
    return status
