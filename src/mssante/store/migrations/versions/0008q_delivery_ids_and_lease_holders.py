"""Deliveries without duplicates, and leases given back as soon as their holder died.

- ``delivery_ids``: the receiving side of ``XMSS-DELIVERY`` (README, "The queue"):
  one row per recipient a sending operator's queue entry was stored for, keyed by the
  sender's certificate DN, its entry's identifier and the recipient; written in the
  message's transaction, purged after ``queue.delivery_ids_kept``.
- ``lease_holders``: one row per process that claims queue entries, its heartbeat
  renewed every few seconds (leases.py).
- ``queue.claimed_by``: the holder of an entry's lease.

Revision ID: 0008q
Revises: 0008d
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008q"
down_revision: str | None = "0008d"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_ids",
        sa.Column("peer", sa.Text, nullable=False),
        sa.Column("delivery_id", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("peer", "delivery_id", "recipient", name="pk_delivery_ids"),
    )
    op.create_index("ix_delivery_ids_received", "delivery_ids", ["received_at"])
    op.create_table(
        "lease_holders",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("heartbeat_at", sa.Double, nullable=False),
    )
    op.add_column("queue", sa.Column("claimed_by", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("queue") as batch:
        batch.drop_column("claimed_by")
    op.drop_table("lease_holders")
    op.drop_index("ix_delivery_ids_received", table_name="delivery_ids")
    op.drop_table("delivery_ids")
