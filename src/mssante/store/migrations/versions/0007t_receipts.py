"""A message's timeline: the reports that came back about it, and the next hop.

- ``receipts``: each DSN recipient group and each MDN received by a mailbox of this
  operator, by the Message-ID of the message it reports on (store/receipts.py).
- ``queue.relayed_to``: the next hop that answered 250 for the entry.

Revision ID: 0007t
Revises: 0007c
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007t"
down_revision: str | None = "0007c"
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("mailbox", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
    )
    op.create_index("ix_receipts_message_id", "receipts", ["message_id"])
    op.add_column("queue", sa.Column("relayed_to", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("queue") as batch:
        batch.drop_column("relayed_to")
    op.drop_table("receipts")
