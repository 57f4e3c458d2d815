"""The tables, as SQLAlchemy Core objects the queries use.

Migrations (``migrations/versions``) create the same tables; a test compares the
two on both engines. Times are epoch seconds (double precision); addresses are
lower case, except the ``display_address`` of a mailbox.

Directory publishing (``mssante.publishing``):
- ``mailboxes.directory_id`` is the national identifier of the directory resource
  that holds the mailbox (idNatPs for PER and CAB, idNatSt for ORG and APP); null
  means the mailbox is not published (PAT, or no identifier known).
- ``directory_outbox`` holds the publications still to send, one row per change,
  written in the transaction of the change. Rows of one address are sent in ``id``
  order; a row goes once the trust space accepted it, or stays with state
  ``failed`` when it refused it for good.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

# A 64-bit key on PostgreSQL; on SQLite an INTEGER PRIMARY KEY (the rowid alias).
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

persons = Table(
    "persons", metadata,
    Column("id", Integer, primary_key=True),
    Column("login", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("rpps", Text),
    Column("password_hash", Text),
    Column("created_at", Double, nullable=False),
    # migration 0006: second factors and the personal address (store/logins.py)
    Column("totp_secret", Text),  # sealed (AES-GCM, auth/totp.py); null: not enrolled
    Column("totp_last_step", BigInteger),  # the last time step accepted (no replay)
    Column("personal_address", Text),  # outside the trust space: codes and notices
    Column("notify_messages", Boolean, nullable=False, server_default=true()),
    Column("login_code", Boolean, nullable=False, server_default=true()),
    UniqueConstraint("login", name="uq_persons_login"),
)

# A patient's one-time login code, hashed, while it may be used (migration 0006).
login_codes = Table(
    "login_codes", metadata,
    Column("person_id", Integer,
           ForeignKey("persons.id", ondelete="CASCADE", name="fk_login_codes_person"),
           primary_key=True),
    Column("code_hash", Text, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
)

# A person's application passwords, for mail clients at IMAP and submission
# (migration 0007a, store/logins.py, auth/apppasswords.py); revoked: deleted.
app_passwords = Table(
    "app_passwords", metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", Integer,
           ForeignKey("persons.id", ondelete="CASCADE", name="fk_app_passwords_person"),
           nullable=False),
    Column("label", Text, nullable=False),  # the device or program, as the person named it
    Column("password_hash", Text, nullable=False),  # argon2id (auth/apppasswords.py)
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double),  # the last session it opened; null: never used
    Column("last_used_from", Text),  # the client's address then
    Index("ix_app_passwords_person", "person_id"),
    # an id is never given again, even after the newest one is revoked: a session
    # remembers the id it logged in with and ends once that id is gone
    sqlite_autoincrement=True,
)

mailboxes = Table(
    "mailboxes", metadata,
    Column("id", Integer, primary_key=True),
    Column("address", Text, nullable=False),
    Column("display_address", Text, nullable=False),
    Column("domain", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("organisation", Text, nullable=False),
    Column("service", Text, nullable=False),
    Column("cert_dn", Text),
    # APP: pki.names.dn_key of cert_dn, unique: one certificate DN identifies one APP
    # mailbox (domain.mailboxes.check_certificate_binding); null: bound to no certificate
    Column("cert_dn_key", Text),
    Column("active", Boolean, nullable=False),
    # the last UIDVALIDITY given to one of its folders: a folder created again gets a
    # greater one (RFC 9051 §2.3.1.1)
    Column("uidvalidity", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("liste_rouge", Boolean, nullable=False, server_default=false()),
    Column("directory_id", Text),  # idNatPs (PER, CAB) or idNatSt (ORG, APP); null: unpublished
    Column("digitization", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("address", name="uq_mailboxes_address"),
    Index("ix_mailboxes_domain", "domain"),
    Index("uq_mailboxes_cert_dn_key", "cert_dn_key", unique=True),
)

mailbox_roles = Table(
    "mailbox_roles", metadata,
    Column("mailbox_id", Integer,
           ForeignKey("mailboxes.id", ondelete="CASCADE", name="fk_mailbox_roles_mailbox"),
           nullable=False),
    Column("person_id", Integer,
           ForeignKey("persons.id", ondelete="CASCADE", name="fk_mailbox_roles_person"),
           nullable=False),
    Column("role", Text, nullable=False),
    Column("rights", Text, nullable=False),
    # the person's home: the PER or PAT mailbox their login opens on (domain.mailboxes.
    # home_mailbox); recorded on the first one they are given, at most one per person
    Column("home", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("mailbox_id", "person_id", name="pk_mailbox_roles"),
    Index("ix_mailbox_roles_person", "person_id"),
    Index("uq_mailbox_roles_home", "person_id", unique=True,
          sqlite_where=text("home"), postgresql_where=text("home")),
)

bodies = Table(
    "bodies", metadata,
    Column("sha256", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

folders = Table(
    "folders", metadata,
    Column("id", Integer, primary_key=True),
    Column("mailbox_id", Integer,
           ForeignKey("mailboxes.id", ondelete="CASCADE", name="fk_folders_mailbox"),
           nullable=False),
    Column("name", Text, nullable=False),  # "INBOX", "Sent", "Projets/2026": "/" delimits
    Column("special_use", Text),  # RFC 6154: "\\Sent", "\\Drafts", "\\Trash", "\\Archive"
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False),
    Column("highestmodseq", BigInteger, nullable=False),  # RFC 7162 §3.1.2.1
    Column("subscribed", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    # RFC 3501 §2.3.2: the first UID no session was told of; the UIDs below it that a
    # session claims (moving it up) are \Recent in that session only
    Column("recent_uid", BigInteger, nullable=False, server_default=text("1")),
    UniqueConstraint("mailbox_id", "name", name="uq_folders_mailbox_name"),
    # never reuse the id of a deleted folder: sessions and notifications name folders by id
    sqlite_autoincrement=True,
)

messages = Table(
    "messages", metadata,
    Column("id", BigId, primary_key=True),
    Column("mailbox_id", Integer,
           ForeignKey("mailboxes.id", ondelete="CASCADE", name="fk_messages_mailbox"),
           nullable=False),
    Column("folder_id", Integer,
           ForeignKey("folders.id", ondelete="CASCADE", name="fk_messages_folder"),
           nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),  # RFC 7162: the last change of the message
    Column("body_sha256", Text, ForeignKey("bodies.sha256", name="fk_messages_body"),
           nullable=False),
    Column("received_at", Double, nullable=False),
    Column("flags", Text, nullable=False),
    Column("envelope_from", Text, nullable=False),
    Column("message_id", Text),
    Column("subject", Text),
    Column("from_header", Text),
    Column("date_header", Text),
    Column("size", BigInteger, nullable=False),
    # what IMAP SORT and THREAD read (imap/sortkeys.py), computed from the header at
    # the first SORT or THREAD that needs it; null: not yet (migration 0008s)
    Column("sort_keys", Text),
    UniqueConstraint("folder_id", "uid", name="uq_messages_folder_uid"),
    Index("ix_messages_body", "body_sha256"),
    Index("ix_messages_mailbox", "mailbox_id"),
    Index("ix_messages_folder_modseq", "folder_id", "modseq"),
    Index("ix_messages_mailbox_message_id", "mailbox_id", "message_id"),
)

# A person's own subscription to a folder of a shared mailbox (the folder's
# ``subscribed`` is the default): migration 0004.
folder_subscriptions = Table(
    "folder_subscriptions", metadata,
    Column("folder_id", Integer,
           ForeignKey("folders.id", ondelete="CASCADE", name="fk_folder_subscriptions_folder"),
           nullable=False),
    Column("person_id", Integer,
           ForeignKey("persons.id", ondelete="CASCADE", name="fk_folder_subscriptions_person"),
           nullable=False),
    Column("subscribed", Boolean, nullable=False),
    PrimaryKeyConstraint("person_id", "folder_id", name="pk_folder_subscriptions"),
    Index("ix_folder_subscriptions_folder", "folder_id"),
)

# Subscriptions to names that are no folder (RFC 3501 §6.3.6: DELETE leaves them,
# SUBSCRIBE may name a mailbox that does not exist): person_id NULL for the mailbox's
# own login, as folders.subscribed, else a person's own, as folder_subscriptions
subscriptions = Table(
    "subscriptions", metadata,
    Column("id", Integer, primary_key=True),
    Column("mailbox_id", Integer,
           ForeignKey("mailboxes.id", ondelete="CASCADE", name="fk_subscriptions_mailbox"),
           nullable=False),
    Column("person_id", Integer,
           ForeignKey("persons.id", ondelete="CASCADE", name="fk_subscriptions_person")),
    Column("name", Text, nullable=False),
    Column("subscribed", Boolean, nullable=False),
    Index("ix_subscriptions_mailbox", "mailbox_id", "name"),
)

# UIDs expunged from a folder, with the MODSEQ of the expunge: what QRESYNC's
# VANISHED (EARLIER) reports (RFC 7162 §3.2.10).
expunged = Table(
    "expunged", metadata,
    Column("folder_id", Integer,
           ForeignKey("folders.id", ondelete="CASCADE", name="fk_expunged_folder"),
           nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    PrimaryKeyConstraint("folder_id", "uid", name="pk_expunged"),
    Index("ix_expunged_folder_modseq", "folder_id", "modseq"),
)

queue = Table(
    "queue", metadata,
    Column("id", BigId, primary_key=True),
    Column("body_sha256", Text, ForeignKey("bodies.sha256", name="fk_queue_body"),
           nullable=False),
    Column("envelope_from", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("orcpt", Text),
    Column("notify", Text, nullable=False),
    Column("ret", Text),
    Column("envid", Text),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("claimed_until", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("delay_notified", Boolean, nullable=False),
    Column("delivered_at", Double),
    Column("finished_at", Double),
    Column("relayed_to", Text),  # the next hop that took it (migration 0007t)
    Column("message_id", Text),  # the message's, for the audit trail (migration 0007u)
    Column("claimed_by", Text),  # the lease_holders row holding the lease (migration 0008q)
    Index("ix_queue_due", "status", "next_attempt_at"),
    Index("ix_queue_body", "body_sha256"),
)

# migration 0008q: the processes that hold queue leases, with their heartbeat (leases.py)
lease_holders = Table(
    "lease_holders", metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("heartbeat_at", Double, nullable=False),
)

# migration 0008q: XMSS-DELIVERY, what another operator's queue entries delivered here:
# a retry of a committed transaction is answered 250 and not stored again
delivery_ids = Table(
    "delivery_ids", metadata,
    Column("peer", Text, nullable=False),  # the sending operator's certificate DN
    Column("delivery_id", Text, nullable=False),  # its queue entry's, as it sent it
    Column("recipient", Text, nullable=False),  # lower case
    Column("received_at", Double, nullable=False),
    PrimaryKeyConstraint("peer", "delivery_id", "recipient", name="pk_delivery_ids"),
    Index("ix_delivery_ids_received", "received_at"),
)

patient_messages = Table(
    "patient_messages", metadata,
    Column("id", BigId, primary_key=True),
    Column("patient", Text, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("thread", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("reply_to", Text, nullable=False),  # space-separated, lower case
    Column("received_at", Double, nullable=False),
    Index("ix_patient_messages_thread", "patient", "thread"),
    Index("ix_patient_messages_message_id", "patient", "message_id"),
)

patient_threads = Table(
    "patient_threads", metadata,
    Column("patient", Text, nullable=False),
    Column("thread", Text, nullable=False),
    Column("opened_at", Double, nullable=False),
    Column("closed_at", Double),
    PrimaryKeyConstraint("patient", "thread", name="pk_patient_threads"),
)

# A professional mailbox's conversations with patients, kept by the professional's
# operator (the patient's operator keeps its own: patient_threads): one row per
# (mailbox, patient, thread) with its first subject, activity and closing time, and
# the messages of the thread this mailbox sent or received (migration 0007c).
care_threads = Table(
    "care_threads", metadata,
    Column("id", BigId, primary_key=True),
    Column("mailbox", Text, nullable=False),
    Column("patient", Text, nullable=False),
    Column("thread", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("opened_at", Double, nullable=False),
    Column("last_at", Double, nullable=False),
    Column("closed_at", Double),
    Column("replies", Integer, nullable=False),  # messages from the patient
    UniqueConstraint("mailbox", "patient", "thread", name="uq_care_threads_key"),
    Index("ix_care_threads_mailbox_last", "mailbox", "last_at"),
)

care_thread_messages = Table(
    "care_thread_messages", metadata,
    Column("id", BigId, primary_key=True),
    Column("thread_id", BigInteger,
           ForeignKey("care_threads.id", ondelete="CASCADE",
                      name="fk_care_thread_messages_thread"),
           nullable=False),
    Column("message_id", Text, nullable=False),
    Column("at", Double, nullable=False),
    Column("from_patient", Boolean, nullable=False),
    Index("ix_care_thread_messages_thread", "thread_id", "at"),
)

# Reports that came back about a message (content/reports.py): a DSN's recipient
# groups and an MDN, kept for the mailbox they were addressed to, by the Message-ID of
# the message they report on: the message's timeline (store/receipts.py, 0007t).
receipts = Table(
    "receipts", metadata,
    Column("id", BigId, primary_key=True),
    Column("mailbox", Text, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("kind", Text, nullable=False),  # DSN action or MDN disposition type
    Column("status", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", Double, nullable=False),
    Index("ix_receipts_message_id", "message_id"),
)

# The audit trail (store/audit.py, migration 0007u): entries written in the transaction
# of the action they record; the sequencer gives each its place (``seq``) and leaf hash
# in the Merkle tree, and signs a checkpoint of the tree (``audit_checkpoints``). A
# purged entry keeps its place and leaf, its fields emptied after export.
audit_entries = Table(
    "audit_entries", metadata,
    Column("id", BigId, primary_key=True),
    Column("seq", BigInteger),
    Column("at", Double, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("mailbox", Text, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("leaf", LargeBinary),
    Column("purged", Boolean, nullable=False, server_default=false()),
    Index("uq_audit_entries_seq", "seq", unique=True),
    Index("ix_audit_entries_mailbox_at", "mailbox", "at"),
    Index("ix_audit_entries_at", "at"),
)

audit_checkpoints = Table(
    "audit_checkpoints", metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("frontier", Text, nullable=False),  # the compact range: base64 hashes
    Column("note", Text, nullable=False),  # the signed checkpoint (audit/checkpoint.py)
    Column("at", Double, nullable=False),
)

directory_outbox = Table(
    "directory_outbox", metadata,
    Column("id", BigId, primary_key=True),
    Column("address", Text, nullable=False),
    Column("resource", Text, nullable=False),  # "Practitioner" | "Organization"
    Column("identifier", Text, nullable=False),  # the idNatPs or idNatSt
    Column("operation", Text, nullable=False),  # "add" | "delete"
    Column("body", Text),  # JSON of the ContactPoint (add); null for delete
    Column("created_at", Double, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("state", Text, nullable=False),  # "pending" | "failed"
    Index("ix_directory_outbox_address", "address", "id"),
    Index("ix_directory_outbox_due", "state", "next_attempt_at"),
)

# migration 0007p: what logins leave behind, shared by the operator's processes
# (store/sessions.py). No cookie value and no PSC token is ever stored.
web_sessions = Table(
    "web_sessions", metadata,
    Column("id_hash", Text, primary_key=True),  # SHA-256 (hex) of the cookie's value
    Column("login", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("app", Text),
    Column("psc_subject", Text),  # opened with PSC: the idNatPs, the sid, the token's iat
    Column("psc_sid", Text),
    Column("psc_issued_at", Double),
    Column("csrf", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("seen_at", Double, nullable=False),
    Column("mailbox", Text),  # the mailbox shown last
    Column("notice", Text, nullable=False),  # a status to show once
    Column("strong", Boolean, nullable=False),  # a second factor or PSC, not a password alone
    Index("ix_web_sessions_login", "login"),
    Index("ix_web_sessions_seen", "seen_at"),
    Index("ix_web_sessions_created", "created_at"),
)

web_logins = Table(  # logins under way: PSC (state, nonce, PKCE), second factor
    "web_logins", metadata,
    Column("key_hash", Text, primary_key=True),  # SHA-256 (hex) of the cookie's value
    Column("kind", Text, nullable=False),  # "psc" | "code"
    Column("created_at", Double, nullable=False),
    Column("data", Text, nullable=False),  # JSON
    Column("tries", Integer, nullable=False),
    Index("ix_web_logins_created", "kind", "created_at"),
)

psc_ended = Table(  # PSC sessions ended by back-channel logout: a sid, or a subject
    "psc_ended", metadata,
    Column("id", BigId, primary_key=True),  # never reused: what another process has read
    Column("sid", Text),
    Column("subject", Text),
    Column("ended_at", Double, nullable=False),
    Index("ix_psc_ended_at", "ended_at"),
    sqlite_autoincrement=True,
)

psc_logout_ids = Table(  # the jti of logout tokens taken, until they could be replayed
    "psc_logout_ids", metadata,
    Column("jti", Text, primary_key=True),
    Column("until", Double, nullable=False),
    Index("ix_psc_logout_ids_until", "until"),
)
