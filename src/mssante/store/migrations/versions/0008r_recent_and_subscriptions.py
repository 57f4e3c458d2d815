"""IMAP: \\Recent across sessions and processes, and subscriptions that outlive their
folders.

- ``folders.recent_uid``: the first UID no session has been told of yet. The first
  IMAP4rev1 session to select the folder (or to hear of a new message while it has it
  selected) claims the UIDs below UIDNEXT by moving it, in one write: those messages
  are ``\\Recent`` in that session only (RFC 3501 §2.3.2). Existing folders start with
  UIDNEXT: what was there before the upgrade is not recent.
- ``subscriptions``: subscriptions to names that are no folder (RFC 3501 §6.3.6: a
  subscription is not removed because its mailbox is; SUBSCRIBE may name a mailbox
  that does not exist). Keyed like the folders' own: ``person_id`` NULL for the
  mailbox's own login (``folders.subscribed``), else a person's own choice in a shared
  mailbox (``folder_subscriptions``). A folder created again under the name takes
  them back.

Revision ID: 0008r
Revises: 0008q
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008r"
down_revision: str | None = "0008q"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # a plain ADD COLUMN (SQLite has it, with a constant default): a batch copy of the
    # table would lose its AUTOINCREMENT (folder ids are never reused)
    op.add_column("folders", sa.Column("recent_uid", sa.BigInteger, nullable=False,
                                       server_default=sa.text("1")))
    op.execute("UPDATE folders SET recent_uid = uidnext")
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mailbox_id", sa.Integer,
                  sa.ForeignKey("mailboxes.id", ondelete="CASCADE",
                                name="fk_subscriptions_mailbox"),
                  nullable=False),
        sa.Column("person_id", sa.Integer,
                  sa.ForeignKey("persons.id", ondelete="CASCADE",
                                name="fk_subscriptions_person")),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("subscribed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_subscriptions_mailbox", "subscriptions", ["mailbox_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_mailbox", table_name="subscriptions")
    op.drop_table("subscriptions")
    with op.batch_alter_table("folders", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("recent_uid")
