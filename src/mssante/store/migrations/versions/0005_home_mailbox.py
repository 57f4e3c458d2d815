"""Each person's home mailbox is recorded: ``mailbox_roles.home``.

A login's home (the mailbox its IMAP INBOX and personal namespace show) used to be
derived at each login from the mailboxes the person owns, in address order, so that
giving a professional a second PER mailbox could move their INBOX to it. The home is
now recorded on the person's role (at most one per person, a partial unique index)
and kept whatever is added later (``domain.mailboxes.home_mailbox``).

Existing people get, as home, the PER or PAT mailbox they own whose address is their
login, else the first one they were given (lowest mailbox id). The rule is written
out here rather than imported, so that this revision stays what it was when the
domain's rule evolves.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_HOME_TYPES = ("PER", "PAT")


def upgrade() -> None:
    op.add_column("mailbox_roles", sa.Column("home", sa.Boolean, nullable=False,
                                             server_default=sa.false()))
    op.create_index("uq_mailbox_roles_home", "mailbox_roles", ["person_id"], unique=True,
                    sqlite_where=sa.text("home"), postgresql_where=sa.text("home"))
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT p.id AS person_id, p.login, m.id AS mailbox_id, m.address "
        "FROM mailbox_roles r JOIN persons p ON p.id = r.person_id "
        "JOIN mailboxes m ON m.id = r.mailbox_id "
        "WHERE r.role = 'owner' AND m.type IN ('PER', 'PAT') "
        "ORDER BY p.id, m.id")).all()
    chosen: dict[int, int] = {}
    for person_id, login, mailbox_id, address in rows:
        if address == login.lower():
            chosen[person_id] = mailbox_id  # the mailbox named like the login wins
        else:
            chosen.setdefault(person_id, mailbox_id)  # else the first given
    update = sa.text("UPDATE mailbox_roles SET home = :home "
                     "WHERE person_id = :person_id AND mailbox_id = :mailbox_id")
    if chosen:
        conn.execute(update, [{"home": True, "person_id": person_id, "mailbox_id": mailbox_id}
                              for person_id, mailbox_id in sorted(chosen.items())])


def downgrade() -> None:
    op.drop_index("uq_mailbox_roles_home", "mailbox_roles")
    with op.batch_alter_table("mailbox_roles") as batch:
        batch.drop_column("home")
