"""The initial schema: people, mailboxes, roles, bodies, messages, queue, patients.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("login", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("rpps", sa.Text),
        sa.Column("password_hash", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("login", name="uq_persons_login"),
    )
    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("display_address", sa.Text, nullable=False),
        sa.Column("domain", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("organisation", sa.Text, nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("cert_dn", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uidnext", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("address", name="uq_mailboxes_address"),
    )
    op.create_index("ix_mailboxes_domain", "mailboxes", ["domain"])
    op.create_table(
        "mailbox_roles",
        sa.Column("mailbox_id", sa.Integer,
                  sa.ForeignKey("mailboxes.id", ondelete="CASCADE",
                                name="fk_mailbox_roles_mailbox"), nullable=False),
        sa.Column("person_id", sa.Integer,
                  sa.ForeignKey("persons.id", ondelete="CASCADE",
                                name="fk_mailbox_roles_person"), nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("rights", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "person_id", name="pk_mailbox_roles"),
    )
    op.create_index("ix_mailbox_roles_person", "mailbox_roles", ["person_id"])
    op.create_table(
        "bodies",
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("mailbox_id", sa.Integer,
                  sa.ForeignKey("mailboxes.id", ondelete="CASCADE",
                                name="fk_messages_mailbox"), nullable=False),
        sa.Column("uid", sa.BigInteger, nullable=False),
        sa.Column("body_sha256", sa.Text,
                  sa.ForeignKey("bodies.sha256", name="fk_messages_body"), nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("flags", sa.Text, nullable=False),
        sa.Column("envelope_from", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text),
        sa.Column("subject", sa.Text),
        sa.Column("from_header", sa.Text),
        sa.Column("date_header", sa.Text),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("mailbox_id", "uid", name="uq_messages_mailbox_uid"),
    )
    op.create_index("ix_messages_body", "messages", ["body_sha256"])
    op.create_table(
        "queue",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("body_sha256", sa.Text,
                  sa.ForeignKey("bodies.sha256", name="fk_queue_body"), nullable=False),
        sa.Column("envelope_from", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("orcpt", sa.Text),
        sa.Column("notify", sa.Text, nullable=False),
        sa.Column("ret", sa.Text),
        sa.Column("envid", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("claimed_until", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("delay_notified", sa.Boolean, nullable=False),
        sa.Column("delivered_at", sa.Double),
        sa.Column("finished_at", sa.Double),
    )
    op.create_index("ix_queue_due", "queue", ["status", "next_attempt_at"])
    op.create_index("ix_queue_body", "queue", ["body_sha256"])
    op.create_table(
        "patient_messages",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("patient", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("thread", sa.Text, nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("reply_to", sa.Text, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
    )
    op.create_index("ix_patient_messages_thread", "patient_messages", ["patient", "thread"])
    op.create_index("ix_patient_messages_message_id", "patient_messages",
                    ["patient", "message_id"])
    op.create_table(
        "patient_threads",
        sa.Column("patient", sa.Text, nullable=False),
        sa.Column("thread", sa.Text, nullable=False),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("closed_at", sa.Double),
        sa.PrimaryKeyConstraint("patient", "thread", name="pk_patient_threads"),
    )


def downgrade() -> None:
    for table in ("patient_threads", "patient_messages", "queue", "messages", "bodies",
                  "mailbox_roles", "mailboxes", "persons"):
        op.drop_table(table)
