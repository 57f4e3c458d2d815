"""The operator's database: SQLAlchemy Core (async) on SQLite or PostgreSQL."""

from __future__ import annotations

from mssante.store.models import (
    DELIVERED,
    FAILED,
    QUEUED,
    Accepted,
    DeliveryId,
    LeaseHolder,
    Mailbox,
    MailboxRole,
    MessageSummary,
    OutboundRecipient,
    Person,
    QueueEntry,
    StoredMessage,
)
from mssante.store.store import Store, open_store

__all__ = [
    "DELIVERED",
    "FAILED",
    "QUEUED",
    "Accepted",
    "DeliveryId",
    "LeaseHolder",
    "Mailbox",
    "MailboxRole",
    "MessageSummary",
    "OutboundRecipient",
    "Person",
    "QueueEntry",
    "Store",
    "StoredMessage",
    "open_store",
]
