"""Application passwords: what a mail client logs in with at IMAP and submission when
the person's own password needs a second factor (auth/apppasswords.py).

- ``app_passwords``: one row per password a person created (several each), its
  argon2id hash, the label they gave it (the device or program), when it was created
  and when and from where it last opened a session. Revoking one deletes its row.

Revision ID: 0007a
Revises: 0007p
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007a"
down_revision: str | None = "0007p"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "app_passwords",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer,
                  sa.ForeignKey("persons.id", ondelete="CASCADE",
                                name="fk_app_passwords_person"),
                  nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_used_at", sa.Double),
        sa.Column("last_used_from", sa.Text),
    )
    op.create_index("ix_app_passwords_person", "app_passwords", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_app_passwords_person", table_name="app_passwords")
    op.drop_table("app_passwords")
