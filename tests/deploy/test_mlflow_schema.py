"""MLflow's schema migration as the compose runs it: the ``mlflow`` user, a binlog-on MySQL.

The session's server is started with MySQL 8.4's defaults (binary logging,
strict mode) plus the flags docker-compose.yml gives MySQL (read from the
file), and the session's MLflow database is migrated by the compose's
one-shot job as the init script's ``mlflow`` user before the MLflow server
starts.  One test turns the compose flag off to show the start-breaker it
fixes (1419, then 1050 on every retry) and that the reported recovery step
works.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from forestops.deploy import mlflow_schema
from forestops.errors import ConfigurationError
from tests.deploy import compose
from tests.support import deployment, mysql, servers

TRUST_FLAG = "--log-bin-trust-function-creators=ON"


def _set_trust(server_url: str, value: str) -> None:
    engine = sa.create_engine(server_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"SET GLOBAL log_bin_trust_function_creators = {value}"))
    engine.dispose()


def _grants(server_url: str, user: str) -> str:
    engine = sa.create_engine(server_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SHOW GRANTS FOR '{user}'@'%'")).scalars().all()
    engine.dispose()
    return "\n".join(rows)


@pytest.mark.unit
def test_the_compose_starts_mysql_with_binary_logging_trusting_trigger_creators() -> None:
    flags = mysql.compose_mysql_flags()
    assert TRUST_FLAG in flags
    assert not any(flag.startswith(("--disable-log-bin", "--skip-log-bin")) for flag in flags)


@pytest.mark.unit
def test_the_migration_job_runs_before_mlflow_as_the_mlflow_user(services) -> None:
    job, server = services["mlflow-migrate"], services["mlflow"]
    assert job["command"] == ["forestops", "mlflow-db-upgrade"]
    uri = compose.environment(job)["MLFLOW_BACKEND_STORE_URI"]
    assert uri == compose.environment(server)["MLFLOW_BACKEND_STORE_URI"]
    assert uri.startswith("mysql+pymysql://mlflow:")
    assert server["depends_on"]["mlflow-migrate"]["condition"] == "service_completed_successfully"
    assert job.get("restart") == "no"


@pytest.mark.unit
def test_a_half_migrated_database_with_work_in_it_is_not_dropped() -> None:
    state = mlflow_schema.SchemaState(revision="abc", head="def", tables=frozenset({"runs"}), holds_data=True)
    step = mlflow_schema.recovery_step("mysql+pymysql://mlflow:pw@mysql:3306/mlflow", state)
    assert "restore the backup" in step and "DROP DATABASE" not in step and "pw" not in step


@pytest.mark.integration
def test_the_session_mlflow_database_was_migrated_like_the_compose_does(
    mlflow_server, mysql_server_url, deployment_users
) -> None:
    """Done-when: `mlflow db upgrade` succeeds as the compose's mlflow user on a binlog-on server
    started with the compose's MySQL flags (the session's server and MLflow fixture are exactly that)."""
    assert mysql.production_like(mysql_server_url) == []
    backend = sa.engine.make_url(mlflow_server.backend_store_uri)
    assert backend.username == deployment_users.mlflow.username
    grants = _grants(mysql_server_url, backend.username)
    assert "SUPER" not in grants and "ON *.*" not in grants.replace("USAGE ON *.*", "")
    assert mlflow_server.migrated and "to head" in mlflow_server.migrated
    assert mlflow_schema.inspect_schema(mlflow_server.backend_store_uri).at_head
    # a second run of the job (every `make up`) changes nothing
    again = servers.migrate_mlflow_database(
        mlflow_server.backend_store_uri, mlflow_server.log_path.parent / "again.log"
    )
    assert again.startswith("MLflow schema already at head")


@pytest.mark.integration
def test_without_the_compose_flag_the_first_start_breaks_and_the_reported_recovery_works(mysql_server_url) -> None:
    with deployment.provisioned_by_init_script(mysql_server_url) as users:
        uri = users.mlflow.render_as_string(hide_password=False)
        _set_trust(mysql_server_url, "OFF")  # the old configuration: MySQL 8.4's default
        try:
            with pytest.raises(ConfigurationError, match="error 1419") as first:
                mlflow_schema.upgrade(uri)
            with pytest.raises(mlflow_schema.HalfMigratedSchema, match="error 1050") as second:
                mlflow_schema.upgrade(uri)
        finally:
            _set_trust(mysql_server_url, "ON")
        for message in (str(first.value), str(second.value)):
            assert users.mlflow.password not in message
            assert "docker compose up mlflow-migrate" in message
        # the exact step the message gives, run as root (what `docker compose exec mysql ... mysql -uroot` does)
        statement = re.search(r'-e "(DROP DATABASE[^"]+)"', str(second.value)).group(1)
        assert users.mlflow.database in statement
        engine = sa.create_engine(mysql_server_url)
        with engine.begin() as connection:
            for part in statement.split(";"):
                connection.execute(sa.text(part))
        engine.dispose()

        assert "to head" in mlflow_schema.upgrade(uri)
        assert mlflow_schema.inspect_schema(uri).at_head
