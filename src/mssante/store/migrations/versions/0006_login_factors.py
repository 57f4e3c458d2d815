"""Second factors and the personal address of a person.

- ``persons.totp_secret``: the person's TOTP secret (RFC 6238), sealed with the
  operator's key (auth/totp.py); null when not enrolled. ``totp_last_step``: the last
  time step a code was accepted for, so that a code is never accepted twice.
- ``persons.personal_address``: an address outside the trust space where a patient's
  one-time login codes and new-message notices go; ``notify_messages`` and
  ``login_code`` turn each off (both on by default).
- ``login_codes``: a one-time code sent and not yet used, hashed, with its expiry and
  the attempts made.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("persons", sa.Column("totp_secret", sa.Text))
    op.add_column("persons", sa.Column("totp_last_step", sa.BigInteger))
    op.add_column("persons", sa.Column("personal_address", sa.Text))
    op.add_column("persons", sa.Column("notify_messages", sa.Boolean, nullable=False,
                                       server_default=sa.true()))
    op.add_column("persons", sa.Column("login_code", sa.Boolean, nullable=False,
                                       server_default=sa.true()))
    op.create_table(
        "login_codes",
        sa.Column("person_id", sa.Integer,
                  sa.ForeignKey("persons.id", ondelete="CASCADE",
                                name="fk_login_codes_person"),
                  primary_key=True),
        sa.Column("code_hash", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_codes")
    with op.batch_alter_table("persons") as batch:
        for column in ("login_code", "notify_messages", "personal_address",
                       "totp_last_step", "totp_secret"):
            batch.drop_column(column)
