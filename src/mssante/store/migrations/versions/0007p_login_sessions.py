"""What logins leave behind, shared by the operator's processes (store/sessions.py).

- ``web_sessions``: one row per web session, under the SHA-256 of its cookie's value
  (never the value); the identity, the CSRF token, when it was opened and last used,
  the mailbox shown last, a notice to show once, and whether it was opened with more
  than a password (a second factor or PSC).
- ``web_logins``: a PSC login or a second factor under way, under the SHA-256 of its
  cookie's value.
- ``psc_ended``: the PSC sessions (``sid``) or persons (``subject``) a back-channel
  logout ended, with when; ``id`` is never reused (processes follow it).
- ``psc_logout_ids``: the ``jti`` of the logout tokens taken, until they expire.

Revision ID: 0007p
Revises: 0007u
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007p"
down_revision: str | None = "0007u"
branch_labels: str | None = None
depends_on: str | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.Text, primary_key=True),
        sa.Column("login", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("app", sa.Text),
        sa.Column("psc_subject", sa.Text),
        sa.Column("psc_sid", sa.Text),
        sa.Column("psc_issued_at", sa.Double),
        sa.Column("csrf", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("seen_at", sa.Double, nullable=False),
        sa.Column("mailbox", sa.Text),
        sa.Column("notice", sa.Text, nullable=False),
        sa.Column("strong", sa.Boolean, nullable=False),
    )
    op.create_index("ix_web_sessions_login", "web_sessions", ["login"])
    op.create_index("ix_web_sessions_seen", "web_sessions", ["seen_at"])
    op.create_index("ix_web_sessions_created", "web_sessions", ["created_at"])
    op.create_table(
        "web_logins",
        sa.Column("key_hash", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
    )
    op.create_index("ix_web_logins_created", "web_logins", ["kind", "created_at"])
    op.create_table(
        "psc_ended",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("sid", sa.Text),
        sa.Column("subject", sa.Text),
        sa.Column("ended_at", sa.Double, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_psc_ended_at", "psc_ended", ["ended_at"])
    op.create_table(
        "psc_logout_ids",
        sa.Column("jti", sa.Text, primary_key=True),
        sa.Column("until", sa.Double, nullable=False),
    )
    op.create_index("ix_psc_logout_ids_until", "psc_logout_ids", ["until"])


def downgrade() -> None:
    for table in ("psc_logout_ids", "psc_ended", "web_logins", "web_sessions"):
        op.drop_table(table)
