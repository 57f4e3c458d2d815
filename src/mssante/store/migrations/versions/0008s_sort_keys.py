"""IMAP SORT and THREAD keys kept beside each message (imap/sortkeys.py).

- ``messages.sort_keys``: the base subject, the first From, To and Cc, the display
  names, the sent date and the message ids THREAD links by, computed from the header
  section at the first SORT or THREAD that needs them (null until then), so that a
  SORT of a large folder reads one column instead of every message.

Revision ID: 0008s
Revises: 0008r
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008s"
down_revision: str | None = "0008r"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("sort_keys", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("sort_keys")
