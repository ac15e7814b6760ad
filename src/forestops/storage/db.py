"""Engines and schema creation for the ``covertype`` database.

One function makes engines so that MySQL (deployments, tests) and SQLite (the
embedded local stack) get the connection options they each need.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event

from forestops.storage.tables import metadata


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800)


def ensure_schema(engine: Engine) -> None:
    """Create the tables if they do not exist (idempotent)."""
    metadata.create_all(engine)
