"""Engines and schema migrations for the ``covertype`` database.

One function makes engines so that MySQL (deployments, tests) and SQLite (the
embedded local stack) get the connection options they each need.  The schema
is owned by Alembic revisions shipped inside the package
(``forestops/storage/migrations``), so a deployed database can evolve with
the code; ``ensure_schema`` brings any database to the newest revision and
is cheap when it already is there, so every service may call it on start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError

from forestops.errors import ServiceUnavailable

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The revision that matches what ``metadata.create_all`` used to build, for
# databases created before the schema moved to migrations.
_BASELINE_REVISION = "0001"
_SCHEMA_LOCK = "forestops_covertype_schema"


class DatabaseUnavailable(ServiceUnavailable):
    """The covertype database did not answer (or, for SQLite, its file cannot be opened)."""


def unavailable_message(engine: Engine, error: OperationalError) -> str:
    """Which database, why (the driver's own words, no password), and which settings point there."""
    where = engine.url.render_as_string(hide_password=True)
    reason = str(error.orig).strip() if error.orig is not None else str(error).splitlines()[0]
    if engine.url.get_backend_name() == "sqlite":
        fix = "check that FORESTOPS_HOME (or FORESTOPS_DATABASE_URL) names a folder you can write"
    else:
        fix = "start the database server, or check FORESTOPS_DATABASE_URL / FORESTOPS_MYSQL_URL"
    return f"the covertype database at {where} is not reachable ({reason}); {fix}"


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


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _schema_lock(connection: Connection) -> Iterator[None]:
    """Serialise migrations between processes (ingest and training start together)."""
    if connection.dialect.name != "mysql":
        yield
        return
    got = connection.execute(text("SELECT GET_LOCK(:name, 120)"), {"name": _SCHEMA_LOCK}).scalar()
    if got != 1:
        raise TimeoutError("another process has held the schema migration lock for 120 s")
    try:
        yield
    finally:
        connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _SCHEMA_LOCK})


def ensure_schema(engine: Engine) -> str:
    """Migrate the database to the newest revision (idempotent); returns it."""
    head = head_revision()
    try:
        with engine.connect() as connection:
            if current_revision(connection) == head:
                return head
    except OperationalError as error:
        raise DatabaseUnavailable(unavailable_message(engine, error)) from None
    with engine.begin() as connection, _schema_lock(connection):
        revision = current_revision(connection)
        if revision is None and inspect(connection).has_table("raw_rows"):
            log.info("tables without a migration record: stamping revision %s", _BASELINE_REVISION)
            command.stamp(alembic_config(connection), _BASELINE_REVISION)
        if revision != head:
            log.info("migrating the raw data store from %s to %s", revision or "an empty database", head)
            command.upgrade(alembic_config(connection), "head")
    return head
