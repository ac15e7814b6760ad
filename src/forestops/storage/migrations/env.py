"""Alembic environment for the ``covertype`` database.

Migrations run on a connection handed over by ``forestops.storage.db``
(``config.attributes["connection"]``), so they use the same engine options,
the same credentials (the application user) and the same transaction as the
caller; there is no alembic.ini to keep in sync with the settings.
"""

from __future__ import annotations

from alembic import context

from forestops.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
