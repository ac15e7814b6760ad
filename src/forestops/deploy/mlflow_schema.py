"""MLflow's schema migration as a one-shot job, with failures a person can act on.

``mlflow server`` refuses to start on an out-of-date schema, and MLflow's
migrations are not transactional on MySQL: a migration that fails half way
(for example error 1419 when the server logs binary and the ``mlflow`` user
may not create triggers) leaves its first tables behind, and every later
attempt stops at 1050 "table already exists".  This job runs the same code
as ``mlflow db upgrade`` (safe to repeat: at head it changes nothing) and
turns those two failures into messages with the exact recovery step.

It reads the database URL from ``MLFLOW_BACKEND_STORE_URI`` (what the MLflow
server reads too), never from its command line, because the URL holds a
password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from forestops.errors import ConfigurationError, ForestopsError, ServiceUnavailable

URI_VARIABLE = "MLFLOW_BACKEND_STORE_URI"
BINLOG_TRIGGER_ERROR = 1419  # "You do not have the SUPER privilege and binary logging is enabled"
TABLE_EXISTS_ERROR = 1050  # "Table '...' already exists"


class HalfMigratedSchema(ForestopsError):
    """An earlier migration attempt stopped half way; MLflow cannot continue from here by itself."""


@dataclass(frozen=True)
class SchemaState:
    revision: str | None  # alembic revision recorded in the database (None: never migrated)
    head: str  # the revision this MLflow version needs
    tables: frozenset[str]
    holds_data: bool  # any experiment runs or registered models: dropping the database would lose work

    @property
    def at_head(self) -> bool:
        return self.revision == self.head


def backend_uri() -> str:
    uri = os.environ.get(URI_VARIABLE, "").strip()
    if not uri:
        raise ConfigurationError(f"{URI_VARIABLE} is not set: the MLflow database URL (docker-compose.yml sets it)")
    return uri


def inspect_schema(uri: str) -> SchemaState:
    import sqlalchemy as sa
    from mlflow.store.db.utils import _get_latest_schema_revision, _get_schema_version

    engine = sa.create_engine(uri)
    try:
        try:
            tables = frozenset(sa.inspect(engine).get_table_names())
        except sa.exc.OperationalError as error:
            where = make_url(uri).render_as_string(hide_password=True)
            raise ServiceUnavailable(f"cannot reach MLflow's database at {where}: {error.orig}") from None
        revision = _get_schema_version(engine) if "alembic_version" in tables else None
        holds_data = False
        with engine.connect() as connection:
            for table in ("runs", "registered_models"):
                if table in tables and connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one():
                    holds_data = True
        return SchemaState(revision=revision, head=_get_latest_schema_revision(), tables=tables, holds_data=holds_data)
    finally:
        engine.dispose()


def _mysql_error_code(error: BaseException | None) -> int | None:
    """The MySQL error number behind a (wrapped) SQLAlchemy/PyMySQL error, if any."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        original = getattr(error, "orig", None)
        args = getattr(original, "args", None) or getattr(error, "args", None) or ()
        if args and isinstance(args[0], int):
            return args[0]
        error = error.__cause__ or error.__context__
    return None


def recovery_step(uri: str, state: SchemaState) -> str:
    """What to do about a half-migrated database, in commands (no password in them)."""
    database = make_url(uri).database or "mlflow"
    if state.holds_data:
        return (
            f"The database {database!r} holds runs or registered models, so do not drop it: restore the backup "
            "taken before the upgrade (for example `mysql ... < mlflow-backup.sql`), fix the cause above, and run "
            "this job again (`docker compose up mlflow-migrate`)."
        )
    return (
        f"The database {database!r} holds no runs or models yet (a failed first start), so recreate it empty and "
        "run the job again; the mlflow user keeps its grants:\n"
        '  docker compose exec mysql sh -c \'mysql -uroot -p"$MYSQL_ROOT_PASSWORD" -e '
        f'"DROP DATABASE `{database}`; CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"\'\n'
        "  docker compose up mlflow-migrate"
    )


def upgrade(uri: str) -> str:
    """Bring the MLflow schema at ``uri`` to this MLflow's head; returns what happened, in words."""
    from mlflow.db import upgrade as mlflow_db_upgrade

    before = inspect_schema(uri)
    if before.at_head:
        return f"MLflow schema already at head {before.head}"
    assert mlflow_db_upgrade.callback is not None  # a click command's function
    try:
        mlflow_db_upgrade.callback(uri)  # exactly what `mlflow db upgrade` runs
    except Exception as error:
        code = _mysql_error_code(error)
        if code not in (BINLOG_TRIGGER_ERROR, TABLE_EXISTS_ERROR):
            raise
        after = inspect_schema(uri)
        if code == BINLOG_TRIGGER_ERROR:
            raise ConfigurationError(
                "MySQL refused to let the mlflow user create MLflow's trigger (error 1419): binary logging is on and "
                "log_bin_trust_function_creators is OFF. Start MySQL with --log-bin-trust-function-creators=ON "
                "(docker-compose.yml does; an older mysql service definition may lack it), then recover the "
                f"half-migrated schema (now at revision {after.revision}). " + recovery_step(uri, after)
            ) from None
        raise HalfMigratedSchema(
            f"The MLflow schema is half-migrated: it records revision {after.revision} but already has tables of a "
            f"later migration ({error.__class__.__name__}: error 1050, table exists), so `mlflow db upgrade` cannot "
            "continue. An earlier attempt failed part way. " + recovery_step(uri, after)
        ) from None
    after = inspect_schema(uri)
    if not after.at_head:
        raise ForestopsError(f"MLflow's upgrade ended at revision {after.revision}, not at head {after.head}")
    return f"MLflow schema migrated from {before.revision or 'an empty database'} to head {after.head}"
