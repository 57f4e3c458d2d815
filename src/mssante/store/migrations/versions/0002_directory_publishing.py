"""Directory publishing: what the operator publishes of its mailboxes, and its outbox.

Adds to ``mailboxes`` the liste rouge and digitization flags and ``directory_id``
(the national identifier of the directory resource holding the mailbox); creates
``directory_outbox``. Existing mailboxes get the ``directory_id`` the store would
give them now (PER: ``8`` + the owner's RPPS; CAB: ``8`` + the RPPS of the
responsible professional with the smallest login that has one); ORG and APP have
no structure identifier yet and stay unpublished. Nothing is queued:
``mssante operator directory republish`` publishes existing mailboxes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("liste_rouge", sa.Boolean, nullable=False,
                                         server_default=sa.false()))
    op.add_column("mailboxes", sa.Column("directory_id", sa.Text))
    op.add_column("mailboxes", sa.Column("digitization", sa.Boolean, nullable=False,
                                         server_default=sa.false()))
    op.create_table(
        "directory_outbox",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("identifier", sa.Text, nullable=False),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )
    op.create_index("ix_directory_outbox_address", "directory_outbox", ["address", "id"])
    op.create_index("ix_directory_outbox_due", "directory_outbox", ["state", "next_attempt_at"])
    _backfill_directory_ids()


def _backfill_directory_ids() -> None:
    mailboxes = sa.table("mailboxes", sa.column("id", sa.Integer), sa.column("type", sa.Text),
                         sa.column("directory_id", sa.Text))
    roles = sa.table("mailbox_roles", sa.column("mailbox_id", sa.Integer),
                     sa.column("person_id", sa.Integer), sa.column("role", sa.Text))
    persons = sa.table("persons", sa.column("id", sa.Integer), sa.column("login", sa.Text),
                       sa.column("rpps", sa.Text))
    for mailbox_type, role in (("PER", "owner"), ("CAB", "responsible")):
        rpps = (sa.select(persons.c.rpps)
                .select_from(roles.join(persons, persons.c.id == roles.c.person_id))
                .where(roles.c.mailbox_id == mailboxes.c.id, roles.c.role == role,
                       persons.c.rpps.is_not(None), persons.c.rpps != "")
                .order_by(persons.c.login)
                .limit(1)
                .correlate(mailboxes)
                .scalar_subquery())
        op.execute(sa.update(mailboxes).where(mailboxes.c.type == mailbox_type)
                   .values(directory_id=sa.literal("8") + rpps))


def downgrade() -> None:
    op.drop_table("directory_outbox")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("digitization")
        batch.drop_column("directory_id")
        batch.drop_column("liste_rouge")
