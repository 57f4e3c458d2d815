"""Alembic environment: runs on the connection the store hands over.

The store builds the Alembic ``Config`` in code and puts an open, transactional
``sqlalchemy.engine.Connection`` in ``config.attributes["connection"]`` (see
``mssante.store.migrate``); there is no ``alembic.ini`` and no offline mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from mssante.errors import StoreError

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise StoreError("migrations run through mssante.store.migrate, with a connection")

context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
