"""What the store hands out: frozen value objects, no database handles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from mssante.domain.mailboxes import MailboxType, PersonKind, Role

# Queue entry states.
QUEUED: Final = "queued"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
QUEUE_STATUSES: Final = frozenset({QUEUED, DELIVERED, FAILED})

# Rights of a person on a mailbox.
READ_WRITE: Final = "rw"
READ_ONLY: Final = "r"
RIGHTS: Final = frozenset({READ_WRITE, READ_ONLY})

# Directory outbox entry states: waiting to be sent (again), or refused for good.
PENDING: Final = "pending"
OUTBOX_STATES: Final = frozenset({PENDING, FAILED})


@dataclass(frozen=True, slots=True)
class Person:
    login: str
    kind: PersonKind
    display_name: str
    rpps: str | None
    password_hash: str | None
    created_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str  # lower case: the key
    display_address: str  # as first written
    type: MailboxType
    description: str
    organisation: str
    service: str
    cert_dn: str | None  # APP: DN of the organisation certificate its program presents
    active: bool
    liste_rouge: bool = False  # published, but hidden from the public by the trust space
    directory_id: str | None = None  # idNatPs (PER, CAB), idNatSt (ORG, APP); None: unpublished
    digitization: bool = False  # Dématérialisation: accepts digitised documents

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Folder:
    """An IMAP mailbox inside an MSSanté mailbox: INBOX, Sent, a folder of the user."""

    id: int
    mailbox: str  # the lower-case address of the MSSanté mailbox holding it
    name: str  # "INBOX" or a name with "/" between levels, e.g. "Projets/2026"
    special_use: str | None  # RFC 6154 attribute: "\\Sent", "\\Drafts", "\\Trash", "\\Archive"
    uidvalidity: int  # RFC 9051 §2.3.1.1
    uidnext: int  # the UID the next message gets
    highestmodseq: int  # RFC 7162 §3.1.2.1
    subscribed: bool
    recent_uid: int = 1  # the first UID no session claimed as \Recent (RFC 3501 §2.3.2)


@dataclass(frozen=True, slots=True)
class FolderState:
    """What a session keeps of a folder: its messages' UIDs, flags and MODSEQs in UID
    order (parallel lists), as of ``folder.highestmodseq``."""

    folder: Folder
    uids: list[int]
    flags: list[str]  # space-separated flags of each message, e.g. "\\Seen $Label1"
    modseqs: list[int]


@dataclass(frozen=True, slots=True)
class FolderChanges:
    """What changed in a folder after a MODSEQ: messages added or changed (their
    current UID, flags and MODSEQ, in UID order) and UIDs expunged."""

    folder: Folder
    changed: list[tuple[int, str, int]]
    expunged: list[int]


@dataclass(frozen=True, slots=True)
class MessageData:
    """A message of a folder with what FETCH and SEARCH read besides flags."""

    uid: int
    body_sha256: str
    size: int
    internaldate: float  # epoch seconds (RFC 9051 INTERNALDATE)
    message_id: str = ""  # as stored at delivery (the audit trail names messages by it)


@dataclass(frozen=True, slots=True)
class MailboxRole:
    login: str
    kind: PersonKind
    role: Role
    rights: str  # "rw" or "r"


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """Header fields kept beside the body for listings (and, later, IMAP ENVELOPE)."""

    message_id: str | None
    subject: str | None
    from_header: str | None
    date_header: str | None


@dataclass(frozen=True, slots=True)
class OutboundRecipient:
    """A remote recipient with its RFC 3461 DSN parameters."""

    recipient: str
    orcpt: str | None = None  # RFC 3461 §4.2 ORCPT, as received
    # RFC 3461 §4.1 NOTIFY: NEVER, SUCCESS, FAILURE, DELAY; empty means the default
    notify: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Accepted:
    """What one committed acceptance wrote."""

    sha256: str
    message_uids: dict[str, int]  # lower-case local address -> UID
    queue_ids: list[int]  # one per remote recipient, in the order given
    folder_ids: tuple[int, ...] = ()  # folders the batch wrote to (for change notifications)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    uid: int
    message_id: str | None
    from_header: str | None
    subject: str | None
    date_header: str | None
    received_at: float
    size: int
    body_sha256: str
    envelope_from: str
    flags: frozenset[str] = field(default_factory=frozenset)  # IMAP flags, e.g. \\Seen


@dataclass(frozen=True, slots=True)
class QueueEntry:
    id: int
    body_sha256: str
    envelope_from: str
    recipient: str
    orcpt: str | None
    notify: frozenset[str]
    ret: str | None  # RFC 3461 §4.3 FULL or HDRS
    envid: str | None  # RFC 3461 §4.4
    status: str  # queued, delivered, failed
    attempts: int
    next_attempt_at: float
    created_at: float
    last_error: str
    delay_notified: bool
    delivered_at: float | None
    claimed_until: float = 0.0  # a worker holds the entry until then
    finished_at: float | None = None  # when it was delivered or given up


@dataclass(frozen=True, slots=True)
class DeliveryId:
    """A recipient of a message another operator delivered here, named by that
    operator's certificate DN and the identifier of its queue entry (XMSS-DELIVERY)."""

    peer: str
    delivery_id: str
    recipient: str  # lower case


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """A process that claims queue entries, and when it last said it was alive."""

    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One publication waiting in the directory outbox (or refused for good)."""

    id: int  # the order of publications of one address
    address: str  # lower case
    resource: str  # "Practitioner" | "Organization"
    identifier: str  # the idNatPs or idNatSt of that resource
    operation: str  # "add" (create or change) | "delete"
    body: str | None  # JSON of the ContactPoint of an add; None for a delete
    created_at: float
    attempts: int
    next_attempt_at: float
    last_error: str
    state: str  # "pending" | "failed"
