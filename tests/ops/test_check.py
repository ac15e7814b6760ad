"""`forestops check`: one line per check, the fix on every failure, exit 1 when any fails.

The whole-deployment pass (every check ok against a running stack) is in
tests/e2e/test_local_stack.py; the grants check against the compose init
script's accounts is in tests/deploy/test_mysql_init.py.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from forestops.ops import check
from forestops.storage import provision
from tests.serving.support import inference_service, unique_model_name
from tests.support.processes import forestops_argv, free_port


def _nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"  # a port nothing listens on


def _target(**fields) -> check.Target:
    values = {
        "datasource_url": _nowhere(),
        "mlflow_url": _nowhere(),
        "airflow_url": _nowhere(),
        "airflow_username": "admin",
        "airflow_password": None,
        "inference_url": _nowhere(),
        "ui_url": _nowhere(),
        "raw_database_url": "sqlite:///unused.db",
        "mlflow_backend_uri": None,
        "fixes": {"*": "restart {service}"},
    }
    return check.Target(**{**values, **fields})


@pytest.mark.unit
def test_grants_are_read_from_mysql_and_mariadb_lines() -> None:
    lines = [
        "GRANT USAGE ON *.* TO `forestops`@`%` IDENTIFIED BY PASSWORD '*ABC'",
        "GRANT SELECT, INSERT, CREATE ON `covertype`.* TO `forestops`@`%`",
        "GRANT UPDATE, DELETE ON `covertype`.`fetch_log` TO `forestops`@`%`",
        "GRANT ALL PRIVILEGES ON `mlflow`.* TO 'mlflow'@'%'",
    ]
    assert check.parse_grants(lines) == {
        "covertype.*": frozenset({"SELECT", "INSERT", "CREATE"}),
        "covertype.fetch_log": frozenset({"UPDATE", "DELETE"}),
        "mlflow.*": frozenset({"ALL PRIVILEGES"}),
    }
    problems = check.grant_differences(
        check.parse_grants(lines[:2]), {"covertype.*": frozenset({"SELECT", "INSERT", "DELETE"})}
    )
    assert problems == ["extra CREATE on covertype.*", "missing DELETE on covertype.*"]


@pytest.mark.unit
def test_expected_application_grants_are_what_db_init_grants() -> None:
    expected = check.expected_application_grants("covertype", "forestops")
    assert expected["covertype.*"] == frozenset(provision.APP_GRANTS)
    assert set(expected) - {"covertype.*"} == {f"covertype.{table}" for table in provision.mutable_tables()}


@pytest.mark.unit
def test_summary_passes_with_skips_and_fails_with_exit_code_one() -> None:
    passing = [check.ok("a", "fine"), check.skip("grants", "SQLite")]
    assert check.summary(passing) == "all 1 checks passed (1 not applicable)"
    assert passing[1].line() == "grants: not applicable (SQLite)"
    with pytest.raises(check.ChecksFailed, match=r"1 of 3 checks failed: b") as raised:
        check.summary([*passing, check.fail("b", "broken", "do this")])
    assert raised.value.exit_code == 1


@pytest.mark.unit
def test_command_reports_every_stopped_service_with_its_fix_and_exits_one(tmp_path) -> None:
    """Nothing runs: every check that needs a service fails with a fix line; grants do not apply to SQLite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORESTOPS_", "MLFLOW_TRACKING"))}
    env.update(
        {
            "FORESTOPS_HOME": str(tmp_path),
            "FORESTOPS_DATASOURCE_URL": _nowhere(),
            "FORESTOPS_MLFLOW_TRACKING_URI": _nowhere(),
            "FORESTOPS_AIRFLOW_URL": _nowhere(),
            "FORESTOPS_AIRFLOW_PASSWORD": "not-used",
            "FORESTOPS_INFERENCE_URL": _nowhere(),
            "FORESTOPS_UI_URL": _nowhere(),
        }
    )
    result = subprocess.run(
        forestops_argv("check"), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "grants: not applicable (SQLite)" in lines
    failed = [i for i, line in enumerate(lines) if ": FAIL - " in line]
    names = {lines[i].split(":")[0] for i in failed}
    assert {"service batch data API", "service MLflow", "service UI", "ingest run", "predict"} <= names, lines
    for i in failed:
        assert lines[i + 1].startswith("    fix: "), lines[i : i + 2]
    assert "checks failed" in result.stderr
    assert not (tmp_path / "mlflow.db").exists(), "the check must not create MLflow's database"


@pytest.mark.integration
def test_inference_without_a_model_is_reported_with_why_and_how_to_get_one(tmp_path) -> None:
    """The real inference service, its registry unreachable: healthy, but /predict cannot answer."""
    with inference_service(_nowhere(), unique_model_name("check"), tmp_path) as service:
        target = _target(inference_url=service.url)
        services = {result.name: result for result in check.check_services(target)}
        assert services["service inference API"].outcome is check.Outcome.OK
        assert services["service MLflow"].outcome is check.Outcome.FAIL
        assert services["service MLflow"].fix == "restart MLflow"
        predict = check.check_predict(target)
    assert predict.outcome is check.Outcome.FAIL
    assert "no model is served yet" in predict.detail and "cannot be reached" in predict.detail
    assert "forestops train" in predict.line().splitlines()[1]


@pytest.mark.integration  # MLflow's migrations on SQLite take a few seconds
def test_mlflow_schema_at_head_passes_and_an_older_revision_names_the_upgrade(tmp_path) -> None:
    """A real MLflow database (made by MLflow's own store), then the same one stamped one revision back."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    SqlAlchemyStore(uri, str(tmp_path / "artefacts")).engine.dispose()
    target = _target(mlflow_backend_uri=uri)
    at_head = check.check_mlflow_schema(target)
    assert at_head.outcome is check.Outcome.OK, at_head.line()

    config = _get_alembic_config(uri)
    head = ScriptDirectory.from_config(config).get_revision("head")
    command.stamp(config, head.down_revision)
    behind = check.check_mlflow_schema(target)
    assert behind.outcome is check.Outcome.FAIL
    assert f"at {head.down_revision}, the installed MLflow's head is {head.revision}" in behind.detail
    assert "mlflow db upgrade" in behind.fix

    missing = check.check_mlflow_schema(_target(mlflow_backend_uri=f"sqlite:///{tmp_path / 'none.db'}"))
    assert missing.outcome is check.Outcome.FAIL and not (tmp_path / "none.db").exists()


@pytest.mark.integration
def test_database_urls_without_a_user_name_are_named_not_checked_as_user_none(fresh_database_url, tmp_path) -> None:
    """Each URL a grants check uses, its user name left out (with and without a password): a FAIL naming the setting.

    The server is the suite's real MariaDB (its fixture provisions as root; the check never does); no
    account called 'None' is looked up there, and neither the password nor 'None' is shown.
    """
    from sqlalchemy.engine import make_url

    from forestops.settings import load_settings

    server = make_url(fresh_database_url)
    password = "s3cret-never-shown"
    named = {
        "grants application": "FORESTOPS_DATABASE_URL",
        "grants reader": "FORESTOPS_READER_DATABASE_URL",
        "grants mlflow": "FORESTOPS_MLFLOW_BACKEND_STORE_URI",
    }
    for account in ("", f":{password}@"):
        no_user = f"{server.drivername}://{account}{server.host}:{server.port}/{server.database}"
        assert not make_url(no_user).username
        settings = load_settings(
            home=tmp_path, database_url=no_user, reader_database_url=no_user, mlflow_backend_store_uri=no_user
        )
        target = check.target_from_settings(settings, environ={})
        results = {result.name: result for result in check.check_grants(target)}
        assert set(results) == set(named), [r.line() for r in results.values()]
        for name, setting in named.items():
            line = results[name].line()
            assert results[name].outcome is check.Outcome.FAIL, line
            assert f"{setting} names no user" in results[name].detail, line
            assert setting in (results[name].fix or ""), line
            assert "None" not in line and password not in line, line


def test_a_complete_collection_confirmed_by_a_later_run_counts_as_the_triggered_run(tmp_path):
    """Once complete, each run confirms the newest 'complete' row; a scheduled run may do so after ours."""
    import datetime as dt

    from forestops.ops import check
    from forestops.storage.db import ensure_schema, make_engine
    from forestops.storage.tables import fetch_log

    url = f"sqlite:///{tmp_path / 'covertype.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    triggered = dt.datetime(2026, 12, 2, 5, 0, 0)
    with engine.begin() as connection:
        connection.execute(
            fetch_log.insert(),
            {
                "started_at": triggered - dt.timedelta(minutes=9),
                "finished_at": triggered + dt.timedelta(seconds=7),  # confirmed after our trigger...
                "source_url": "http://datasource",
                "group_number": 1,
                "status": "complete",
                "run_id": "scheduled__later",  # ...by a later scheduled run
            },
        )
    engine.dispose()

    found = check._fetch_of_run("ingest run", url, "manual__ours", triggered)
    assert found.outcome == check.Outcome.OK and "served every batch" in found.detail, found
    stale = check._fetch_of_run("ingest run", url, "manual__ours", triggered + dt.timedelta(minutes=1))
    assert stale.outcome == check.Outcome.FAIL and "has no fetch for it" in stale.detail, stale
