"""Create the ``covertype`` database and its least-privileged application user.

An administrator URL is used once, here; every service afterwards connects
as the application user, whose grants are limited to its own database: the
DML the services need plus the DDL that lets it own and migrate its schema.
The schema itself is then created *as that user*, so a missing grant shows
up at provisioning time rather than in the middle of a collection run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from forestops.errors import ConfigurationError
from forestops.storage.db import ensure_schema, make_engine

log = logging.getLogger(__name__)

# Database-wide: read and append for ingestion and training, DDL so the
# user owns its migrations (REFERENCES for the foreign keys).  No DROP: the
# upgrades create and alter, only downgrades drop, and a leaked application
# password must not be able to drop the collected data (run a downgrade with
# the administrator account).  UPDATE and
# DELETE are granted table by table (``MUTABLE_GRANTS``), because MySQL
# cannot take a database-wide grant back for one table, and the promotion
# history must stay append-only even for the application itself.
APP_GRANTS: tuple[str, ...] = (
    "SELECT",
    "INSERT",
    "CREATE",
    "ALTER",
    "INDEX",
    "REFERENCES",
)
# Per table (CREATE lets MySQL accept the grant before the table exists).
MUTABLE_GRANTS: tuple[str, ...] = ("UPDATE", "DELETE", "CREATE")
APPEND_ONLY_TABLES: frozenset[str] = frozenset({"alias_history"})
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class ProvisioningError(ConfigurationError):
    """The database or user cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class Provisioned:
    database: str
    user: str
    host: str
    grants: tuple[str, ...]
    revision: str


def _identifier(kind: str, value: str | None) -> str:
    if not value or not _IDENTIFIER.match(value):
        raise ProvisioningError(f"{kind} {value!r} must be 1-64 letters, digits or underscores")
    return value


def grant_statement(database: str, user: str, host: str = "%") -> str:
    return f"GRANT {', '.join(APP_GRANTS)} ON `{database}`.* TO '{user}'@'{host}'"


def mutable_tables() -> list[str]:
    """Every table of the schema the application may update or delete from (all but the append-only ones)."""
    from forestops.storage.tables import metadata

    return [*sorted(set(metadata.tables) - APPEND_ONLY_TABLES), "alembic_version"]


def table_grant_statements(database: str, user: str, host: str = "%") -> list[str]:
    return [
        f"GRANT {', '.join(MUTABLE_GRANTS)} ON `{database}`.`{table}` TO '{user}'@'{host}'"
        for table in mutable_tables()
    ]


def provision_mysql(admin_url: str, app_url: str, user_host: str = "%") -> Provisioned:
    """Create database + user named by ``app_url`` using ``admin_url``; migrate as the user.

    ``app_url`` is the application's own URL (``mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE``);
    running this again is harmless and re-applies the password and grants.
    """
    app = make_url(app_url)
    if not app.drivername.startswith("mysql"):
        raise ProvisioningError(f"the application URL must be a MySQL URL, got {app.drivername}")
    database = _identifier("database name", app.database)
    user = _identifier("application user", app.username)
    if app.password is None or app.password == "":
        raise ProvisioningError(f"the application URL gives user {user!r} no password")
    if not re.match(r"^[A-Za-z0-9_.%:-]{1,255}$", user_host):
        raise ProvisioningError(f"user host {user_host!r} is not a valid MySQL host pattern")
    admin = make_url(admin_url).set(database=None)
    if admin.username == user:
        raise ProvisioningError("the administrator and the application user must differ")
    engine = create_engine(admin)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            )
            connection.execute(
                text(f"CREATE USER IF NOT EXISTS '{user}'@'{user_host}' IDENTIFIED BY :password"),
                {"password": app.password},
            )
            connection.execute(
                text(f"ALTER USER '{user}'@'{user_host}' IDENTIFIED BY :password"), {"password": app.password}
            )
            connection.execute(text(grant_statement(database, user, user_host)))
            # An account provisioned before the table-level grants loses its
            # database-wide UPDATE/DELETE, and one from before DROP was dropped loses DROP
            # (a no-op for a new account).
            connection.execute(text(f"REVOKE UPDATE, DELETE, DROP ON `{database}`.* FROM '{user}'@'{user_host}'"))
            for statement in table_grant_statements(database, user, user_host):
                connection.execute(text(statement))
    finally:
        engine.dispose()
    log.info("database %s and user %s@%s ready; migrating as %s", database, user, user_host, user)
    app_engine = make_engine(app.render_as_string(hide_password=False))
    try:
        revision = ensure_schema(app_engine)
    finally:
        app_engine.dispose()
    return Provisioned(database, user, user_host, APP_GRANTS, revision)


def drop_mysql_user(admin_url: str, user: str, user_host: str = "%") -> None:
    """Remove an application user (tests clean up after themselves)."""
    user = _identifier("application user", user)
    engine = create_engine(make_url(admin_url).set(database=None))
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP USER IF EXISTS '{user}'@'{user_host}'"))
    finally:
        engine.dispose()


def initialise(database_url: str, admin_url: str | None, user_host: str = "%") -> Provisioned | str:
    """What ``forestops db-init`` does: provision on MySQL, just migrate on SQLite."""
    if database_url.startswith("sqlite"):
        engine = make_engine(database_url)
        try:
            return ensure_schema(engine)
        finally:
            engine.dispose()
    if admin_url is None:
        raise ProvisioningError(
            "creating the database and its user needs an administrator URL: pass --admin-url or set "
            "FORESTOPS_DB_ADMIN_URL (for example mysql+pymysql://root:PASSWORD@127.0.0.1:3306)"
        )
    return provision_mysql(admin_url, database_url, user_host)
