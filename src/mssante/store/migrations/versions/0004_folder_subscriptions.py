"""IMAP: each person's own subscriptions to the folders of shared mailboxes.

``folders.subscribed`` stays the subscription of the mailbox's own login (and the
default of everyone who sees the folder in the shared namespace);
``folder_subscriptions`` holds what a person chose for a shared folder, so that a
delegate's SUBSCRIBE changes no one else's view.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "folder_subscriptions",
        sa.Column("folder_id", sa.Integer,
                  sa.ForeignKey("folders.id", ondelete="CASCADE",
                                name="fk_folder_subscriptions_folder"),
                  nullable=False),
        sa.Column("person_id", sa.Integer,
                  sa.ForeignKey("persons.id", ondelete="CASCADE",
                                name="fk_folder_subscriptions_person"),
                  nullable=False),
        sa.Column("subscribed", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("person_id", "folder_id", name="pk_folder_subscriptions"),
    )
    op.create_index("ix_folder_subscriptions_folder", "folder_subscriptions", ["folder_id"])


def downgrade() -> None:
    op.drop_index("ix_folder_subscriptions_folder", "folder_subscriptions")
    op.drop_table("folder_subscriptions")
