"""The audit trail (store/audit.py).

- ``audit_entries``: one row per action, written in the action's transaction; ``seq``
  and ``leaf`` are given by the sequencer (its place in the Merkle tree); ``purged``
  entries keep their place and leaf, their fields emptied after export.
- ``audit_checkpoints``: the signed checkpoints, with the compact range at each.
- ``queue.message_id``: the Message-ID of a queued message, for the relay's entry.

Revision ID: 0007u
Revises: 0007t
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007u"
down_revision: str | None = "0007t"
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("seq", sa.BigInteger),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("mailbox", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("leaf", sa.LargeBinary),
        sa.Column("purged", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("uq_audit_entries_seq", "audit_entries", ["seq"], unique=True)
    op.create_index("ix_audit_entries_mailbox_at", "audit_entries", ["mailbox", "at"])
    op.create_index("ix_audit_entries_at", "audit_entries", ["at"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
    )
    op.add_column("queue", sa.Column("message_id", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("queue") as batch:
        batch.drop_column("message_id")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_entries")
