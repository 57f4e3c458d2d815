"""One certificate DN identifies one APP mailbox; application password ids are never
given again.

- ``mailboxes.cert_dn_key``: ``pki.names.dn_key`` of an APP mailbox's ``cert_dn`` (equal
  for two DNs exactly when ``same_dn`` holds), under a unique index: a program's
  certificate logs in to one mailbox, never to whichever of several came first by
  address (``domain.mailboxes.check_certificate_binding``). The key is computed with
  the running release's ``dn_key``, which the store compares it with.

  Existing duplicates are not refused (that would stop the operator from starting,
  and with it the command that could fix them): of the APP mailboxes bound to one DN,
  the one certificate login picked until now (the first active one by address, else
  the first by address) keeps the binding; the others keep their ``cert_dn`` as
  written but get no key, so that no certificate logs in to them, as none did before.
  The migration names them in a warning (logger ``mssante.store.migrations``); delete
  them, or create them again with a certificate of their own. A ``cert_dn`` that is
  not a DN gets no key either (no certificate matched it before).

- ``app_passwords`` on SQLite: ``AUTOINCREMENT``, so that the id of the newest
  application password, once revoked, is not given to the next one (SQLite reuses the
  highest rowid otherwise): a session remembers the id it logged in with and ends when
  that id is gone, which a reused id would hide. PostgreSQL's sequence never reuses.

Revision ID: 0008d
Revises: 0007a
"""

from __future__ import annotations

import logging
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from mssante.pki.names import dn_key

revision = "0008d"
down_revision: str | None = "0007a"
branch_labels: str | None = None
depends_on: str | None = None

log = logging.getLogger("mssante.store.migrations")


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("cert_dn_key", sa.Text))
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, address, cert_dn, active FROM mailboxes "
        "WHERE type = 'APP' AND cert_dn IS NOT NULL")).all()
    bound: dict[str, list[tuple[int, str, str, bool]]] = defaultdict(list)
    for mailbox_id, address, cert_dn, active in rows:
        key = dn_key(cert_dn)
        if key is not None:
            bound[key].append((int(mailbox_id), address, cert_dn, bool(active)))
    keys = []
    for key, mailboxes in bound.items():
        mailboxes.sort(key=lambda m: (not m[3], m[1]))  # as certificate login chose
        keeper, *others = mailboxes
        keys.append({"k": key, "i": keeper[0]})
        if others:
            log.warning("the certificate %s was bound to several APP mailboxes: %s keeps "
                        "it; %s no longer log in with it (delete them, or create them "
                        "again with a certificate of their own)", keeper[2], keeper[1],
                        ", ".join(sorted(m[1] for m in others)))
    if keys:
        conn.execute(sa.text("UPDATE mailboxes SET cert_dn_key = :k WHERE id = :i"), keys)
    op.create_index("uq_mailboxes_cert_dn_key", "mailboxes", ["cert_dn_key"], unique=True)
    if conn.dialect.name == "sqlite":
        with op.batch_alter_table("app_passwords", recreate="always",
                                  table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    op.drop_index("uq_mailboxes_cert_dn_key", "mailboxes")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("cert_dn_key")
