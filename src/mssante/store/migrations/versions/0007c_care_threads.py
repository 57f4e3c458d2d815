"""A professional mailbox's conversations with patients (store/carethreads.py).

- ``care_threads``: one row per (mailbox, thread) a professional's mailbox holds with
  a patient: the patient, the subject that opened it, when it opened, its last
  activity, when it was closed (``X-MSS-MES: FIN`` or ``[FIN]`` sent from this
  mailbox) and how many messages the patient sent in it.
- ``care_thread_messages``: the Message-IDs of the thread this mailbox sent or
  received, in order, to show the thread and to reply or close in it.
- ``ix_messages_mailbox_message_id``: a mailbox's messages found by Message-ID.

Revision ID: 0007c
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007c"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "care_threads",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("mailbox", sa.Text, nullable=False),
        sa.Column("patient", sa.Text, nullable=False),
        sa.Column("thread", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("last_at", sa.Double, nullable=False),
        sa.Column("closed_at", sa.Double),
        sa.Column("replies", sa.Integer, nullable=False),
        sa.UniqueConstraint("mailbox", "patient", "thread", name="uq_care_threads_key"),
    )
    op.create_index("ix_care_threads_mailbox_last", "care_threads", ["mailbox", "last_at"])
    op.create_table(
        "care_thread_messages",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("thread_id", sa.BigInteger,
                  sa.ForeignKey("care_threads.id", ondelete="CASCADE",
                                name="fk_care_thread_messages_thread"),
                  nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("from_patient", sa.Boolean, nullable=False),
    )
    op.create_index("ix_care_thread_messages_thread", "care_thread_messages",
                    ["thread_id", "at"])
    op.create_index("ix_messages_mailbox_message_id", "messages", ["mailbox_id", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_mailbox_message_id", "messages")
    op.drop_table("care_thread_messages")
    op.drop_table("care_threads")
