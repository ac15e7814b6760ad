"""The MySQL init script, run for real against the test server with fresh names.

It creates the two databases and one user per service; each user must be able
to do its job and nothing more.  The app user must be able to build the
schema (the Alembic migrations) with the grants the script gives it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from forestops.storage.db import ensure_schema, make_engine
from forestops.storage.provision import APP_GRANTS, mutable_tables
from tests.support import deployment

SCRIPT = deployment.INIT_SCRIPT


@pytest.mark.unit
def test_script_grants_what_the_application_declares() -> None:
    """The init script and `forestops db-init` (storage.provision) give the app user the same grants."""
    grant = re.search(r"GRANT ([A-Z, \n]+?)\s+ON \\`\$\{raw_db\}\\`\.\* TO '\$\{app_user\}'", SCRIPT.read_text())
    assert grant, "no GRANT for the app user in the init script"
    granted = {word.strip() for word in grant.group(1).split(",")}
    assert granted == set(APP_GRANTS)
    tables = re.search(r'^mutable_tables="([a-z_ ]+)"$', SCRIPT.read_text(), re.MULTILINE)
    assert tables and set(tables.group(1).split()) == set(mutable_tables())


@pytest.fixture
def provisioned(mysql_server_url: str) -> Iterator[dict[str, URL]]:
    """Run the script (twice: a restarted container runs it again) with unique names; dropped afterwards."""
    with deployment.provisioned_by_init_script(mysql_server_url) as users:
        yield {"app": users.app, "reader": users.reader, "mlflow": users.mlflow, "other_db": users.names}


def _fails(url: URL, statement: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement))
    except sa.exc.OperationalError as error:
        return "denied" in str(error).lower()
    finally:
        engine.dispose()
    return False


@pytest.mark.integration
def test_each_user_can_do_its_job_and_no_more(provisioned) -> None:
    app, reader, mlflow_url = provisioned["app"], provisioned["reader"], provisioned["mlflow"]
    raw_db, mlflow_db = app.database, mlflow_url.database

    # the app user builds and migrates the raw data schema with its grants alone
    engine = make_engine(app.render_as_string(hide_password=False))
    try:
        revision = ensure_schema(engine)
        assert revision
        tables = set(sa.inspect(engine).get_table_names())
        assert {"raw_rows", "fetch_log", "alias_history"} <= tables
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE fetch_log SET status = 'x' WHERE id < 0"))
            connection.execute(
                sa.text(
                    "INSERT INTO alias_history (changed_at, model_name, alias, action, actor) "
                    "VALUES (NOW(), 'm', 'champion', 'manual', 'test')"
                )
            )
    finally:
        engine.dispose()
    # the promotion history is append-only, even for the application
    assert _fails(app, "UPDATE alias_history SET actor = 'someone else'")
    assert _fails(app, "DELETE FROM alias_history")

    # the reader reads and nothing else
    reader_engine = sa.create_engine(reader)
    try:
        with reader_engine.connect() as connection:
            assert connection.execute(sa.text("SELECT COUNT(*) FROM fetch_log")).scalar_one() == 0
    finally:
        reader_engine.dispose()
    assert _fails(reader, "DELETE FROM fetch_log")
    assert _fails(reader, "CREATE TABLE sneaky (id INT)")

    # MLflow owns its database and cannot see the raw data; the app cannot see MLflow's
    engine = sa.create_engine(mlflow_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE experiments_probe (id INT PRIMARY KEY)"))
            connection.execute(sa.text("DROP TABLE experiments_probe"))
    finally:
        engine.dispose()
    assert _fails(mlflow_url, f"SELECT * FROM `{raw_db}`.raw_rows")
    assert _fails(app, f"CREATE TABLE `{mlflow_db}`.sneaky (id INT)")


@pytest.mark.unit
def test_script_refuses_to_run_without_passwords() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL_")}
    env["MYSQL_CLIENT"] = "false"
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "MYSQL_APP_PASSWORD is not set" in result.stderr


@pytest.mark.integration
def test_forestops_check_finds_exactly_the_grants_the_script_gives_and_names_a_drift(
    provisioned, mysql_server_url
) -> None:
    """`forestops check`'s grants check against the accounts the compose init script made (after the app's
    migrations): every account passes; one extra privilege fails the check with the privilege named and a fix."""
    from forestops.ops import check

    app, reader, mlflow_url = (
        provisioned[k].render_as_string(hide_password=False) for k in ("app", "reader", "mlflow")
    )
    engine = make_engine(app)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
    users = (
        check.DatabaseUser(
            "application",
            app,
            check.expected_application_grants(provisioned["app"].database, provisioned["app"].username),
        ),
        check.DatabaseUser("reader", reader, {f"{provisioned['reader'].database}.*": check.READER_PRIVILEGES}),
        check.DatabaseUser("mlflow", mlflow_url, {f"{provisioned['mlflow'].database}.*": check.MLFLOW_PRIVILEGES}),
    )
    target = check.Target(
        datasource_url="http://unused",
        mlflow_url="http://unused",
        airflow_url="http://unused",
        airflow_username="admin",
        airflow_password=None,
        inference_url="http://unused",
        ui_url="http://unused",
        raw_database_url=app,
        mlflow_backend_uri=None,
        database_users=users,
    )
    results = check.check_grants(target)
    assert [r.outcome for r in results] == [check.Outcome.OK] * 3, [r.line() for r in results]

    root = sa.create_engine(mysql_server_url)
    try:
        with root.begin() as connection:
            connection.execute(
                sa.text(
                    f"GRANT DELETE ON `{provisioned['reader'].database}`.* TO '{provisioned['reader'].username}'@'%'"
                )
            )
    finally:
        root.dispose()
    results = {r.name: r for r in check.check_grants(target)}
    drifted = results["grants reader"]
    assert drifted.outcome is check.Outcome.FAIL
    assert f"extra DELETE on {provisioned['reader'].database}.*" in drifted.detail
    assert "fix: " in drifted.line() and "REVOKE" in drifted.fix
    assert results["grants application"].outcome is check.Outcome.OK
