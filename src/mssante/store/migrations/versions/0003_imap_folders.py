"""IMAP: folders in each mailbox, MODSEQ, expunged UIDs.

Creates ``folders`` (INBOX, Sent, Drafts, Trash, Archive for every existing
mailbox; INBOX takes over the mailbox's UIDVALIDITY and UIDNEXT, so that clients
that cached UIDs keep them), moves every message into its mailbox's INBOX with
MODSEQ 1, creates ``expunged`` (RFC 7162 QRESYNC), and drops ``mailboxes.uidnext``:
UIDs are now taken per folder. ``mailboxes.uidvalidity`` stays, as the last
UIDVALIDITY given to one of its folders.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

SPECIAL = (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"),
           ("Archive", "\\Archive"))


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mailbox_id", sa.Integer,
                  sa.ForeignKey("mailboxes.id", ondelete="CASCADE", name="fk_folders_mailbox"),
                  nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("special_use", sa.Text),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uidnext", sa.BigInteger, nullable=False),
        sa.Column("highestmodseq", sa.BigInteger, nullable=False),
        sa.Column("subscribed", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("mailbox_id", "name", name="uq_folders_mailbox_name"),
        sqlite_autoincrement=True,  # a deleted folder's id is never given again
    )
    mailboxes = sa.table("mailboxes", sa.column("id", sa.Integer),
                         sa.column("uidvalidity", sa.BigInteger),
                         sa.column("uidnext", sa.BigInteger),
                         sa.column("created_at", sa.Double))
    folders = sa.table("folders", sa.column("id", sa.Integer),
                       sa.column("mailbox_id", sa.Integer), sa.column("name", sa.Text),
                       sa.column("special_use", sa.Text),
                       sa.column("uidvalidity", sa.BigInteger),
                       sa.column("uidnext", sa.BigInteger),
                       sa.column("highestmodseq", sa.BigInteger),
                       sa.column("subscribed", sa.Boolean),
                       sa.column("created_at", sa.Double))
    columns = ["mailbox_id", "name", "special_use", "uidvalidity", "uidnext",
               "highestmodseq", "subscribed", "created_at"]
    op.execute(folders.insert().from_select(columns, sa.select(
        mailboxes.c.id, sa.literal("INBOX"), sa.null(), mailboxes.c.uidvalidity,
        mailboxes.c.uidnext, sa.literal(1, sa.BigInteger), sa.true(), mailboxes.c.created_at)))
    for name, use in SPECIAL:
        op.execute(folders.insert().from_select(columns, sa.select(
            mailboxes.c.id, sa.literal(name), sa.literal(use), mailboxes.c.uidvalidity,
            sa.literal(1, sa.BigInteger), sa.literal(1, sa.BigInteger), sa.true(),
            mailboxes.c.created_at)))

    op.add_column("messages", sa.Column("folder_id", sa.Integer))
    op.add_column("messages", sa.Column("modseq", sa.BigInteger, nullable=False,
                                        server_default="1"))
    messages = sa.table("messages", sa.column("mailbox_id", sa.Integer),
                        sa.column("folder_id", sa.Integer))
    inbox = (sa.select(folders.c.id)
             .where(folders.c.mailbox_id == messages.c.mailbox_id, folders.c.name == "INBOX")
             .scalar_subquery())
    op.execute(sa.update(messages).values(folder_id=inbox))
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("folder_id", existing_type=sa.Integer, nullable=False)
        batch.alter_column("modseq", existing_type=sa.BigInteger, server_default=None)
        batch.create_foreign_key("fk_messages_folder", "folders", ["folder_id"], ["id"],
                                 ondelete="CASCADE")
        batch.drop_constraint("uq_messages_mailbox_uid", type_="unique")
        batch.create_unique_constraint("uq_messages_folder_uid", ["folder_id", "uid"])
    op.create_index("ix_messages_mailbox", "messages", ["mailbox_id"])
    op.create_index("ix_messages_folder_modseq", "messages", ["folder_id", "modseq"])

    op.create_table(
        "expunged",
        sa.Column("folder_id", sa.Integer,
                  sa.ForeignKey("folders.id", ondelete="CASCADE", name="fk_expunged_folder"),
                  nullable=False),
        sa.Column("uid", sa.BigInteger, nullable=False),
        sa.Column("modseq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("folder_id", "uid", name="pk_expunged"),
    )
    op.create_index("ix_expunged_folder_modseq", "expunged", ["folder_id", "modseq"])
    # Not a batch (table copy) on SQLite: dropping the old mailboxes table would cascade
    # to folders, messages and roles. SQLite >= 3.35 drops a column in place.
    op.drop_column("mailboxes", "uidnext")


def downgrade() -> None:
    op.add_column("mailboxes", sa.Column("uidnext", sa.BigInteger, nullable=False,
                                         server_default="1"))
    op.execute("UPDATE mailboxes SET uidnext = (SELECT uidnext FROM folders WHERE "
               "folders.mailbox_id = mailboxes.id AND folders.name = 'INBOX')")
    op.drop_table("expunged")
    op.drop_index("ix_messages_folder_modseq", "messages")
    op.drop_index("ix_messages_mailbox", "messages")
    op.execute("DELETE FROM messages WHERE folder_id NOT IN "
               "(SELECT id FROM folders WHERE name = 'INBOX')")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_messages_folder_uid", type_="unique")
        batch.drop_constraint("fk_messages_folder", type_="foreignkey")
        batch.create_unique_constraint("uq_messages_mailbox_uid", ["mailbox_id", "uid"])
        batch.drop_column("modseq")
        batch.drop_column("folder_id")
    op.drop_table("folders")
