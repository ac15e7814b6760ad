"""Airflow's run history is trimmed by ``airflow db clean`` (forestops.airflow_history), on a real metadata database.

Two real runs of a small DAG (``dag.test()``) leave their rows; cleaning
before a moment between them deletes the older run with its task instances
and XComs and keeps the newer one.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forestops.airflow_history import AirflowHistoryError, clean_history
from tests.support.airflow import airflow_env, run_dag_test

SMALL_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="history_probe", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def history_probe():
    @task
    def answer() -> int:
        return 42

    answer()


history_probe()
"""


def count_rows(database: Path, table: str, run_id: str) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]


@pytest.fixture
def metadata(airflow_home: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the session's migrated metadata database, and the environment that points at it."""
    home = tmp_path / "airflow"
    home.mkdir()
    database = home / "airflow.db"
    shutil.copyfile(airflow_home / "airflow.db", database)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "history_probe.py").write_text(SMALL_DAG)
    env = {
        **airflow_env(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
    }
    return database, env


def test_clean_deletes_the_runs_before_the_cutoff_with_their_rows_and_keeps_the_newer(metadata, tmp_path):
    database, env = metadata
    dags = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
    older = run_dag_test(Path(env["AIRFLOW_HOME"]), "history_probe", env, dags_folder=dags, timeout=300)
    assert older.succeeded, older.output[-3000:]
    time.sleep(1.5)
    cutoff = datetime.now(UTC)
    time.sleep(1.5)
    newer = run_dag_test(Path(env["AIRFLOW_HOME"]), "history_probe", env, dags_folder=dags, timeout=300)
    assert newer.succeeded, newer.output[-3000:]
    for run in (older, newer):
        assert count_rows(database, "dag_run", run.run_id) == 1
        assert count_rows(database, "task_instance", run.run_id) == 1
        assert count_rows(database, "xcom", run.run_id) == 1

    result = clean_history(keep_hours=0, env={**os.environ, **env}, now=cutoff)

    assert result.cutoff == cutoff
    assert count_rows(database, "dag_run", older.run_id) == 0
    assert count_rows(database, "task_instance", older.run_id) == 0
    assert count_rows(database, "xcom", older.run_id) == 0
    assert count_rows(database, "dag_run", newer.run_id) == 1
    assert count_rows(database, "task_instance", newer.run_id) == 1
    assert count_rows(database, "xcom", newer.run_id) == 1
    with sqlite3.connect(database) as connection:
        archives = connection.execute("SELECT name FROM sqlite_master WHERE name LIKE '_airflow_deleted%'").fetchall()
    assert archives == [], "archive tables would grow in place of the history"


def test_a_failed_clean_names_the_problem_without_the_database_password(metadata):
    _, env = metadata
    env = {
        **os.environ,
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "mysql+pymysql://forestops:s3cret-pw@127.0.0.1:9/none",
    }

    with pytest.raises(AirflowHistoryError) as caught:
        clean_history(keep_hours=48, env=env)

    message = str(caught.value)
    assert "`airflow db clean` exited with 1: RuntimeError:" in message
    assert "s3cret-pw" not in message


def test_the_health_check_follows_the_last_clean(tmp_path):
    from forestops.airflow_history import CleanResult, check_recent, record_outcome, status_path
    from forestops.settings import load_settings

    settings = load_settings(home=tmp_path, retention_every_minutes=60)
    assert "no clean recorded yet" in check_recent(settings)

    record_outcome(status_path(settings), None, CleanResult(datetime.now(UTC), 1.2))
    assert check_recent(settings) == ""
    assert "minutes ago" in check_recent(settings, now=time.time() + 3 * 3600)

    record_outcome(status_path(settings), "`airflow db clean` exited with 1: OperationalError: locked")
    assert check_recent(settings) == "the last clean failed: `airflow db clean` exited with 1: OperationalError: locked"


def test_the_local_stack_runs_the_cleaner_with_airflow_s_settings(tmp_path):
    from forestops.local import airflow, services
    from forestops.settings import load_settings

    settings = load_settings(home=tmp_path)
    setup = airflow.AirflowSetup(tmp_path, 8080, "password", "secret", "sqlite:///airflow.db", tmp_path / "logs")
    (cleaner,) = [spec for spec in services.plan(settings, setup) if spec.name == "airflow-history"]
    assert cleaner.argv[1:] == ["airflow-history"]
    assert cleaner.env == setup.environment() and cleaner.port is None and cleaner.healthy()


def test_the_cleaner_loop_cleans_and_records_each_outcome(metadata, tmp_path, monkeypatch):
    """run_forever against the real metadata database: healthy at start, then after each clean."""
    import threading

    from forestops import airflow_history
    from forestops.settings import load_settings

    _, env = metadata
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(airflow_history, "FIRST_CLEAN_AFTER_SECONDS", 0)
    settings = load_settings(home=tmp_path, retention_every_minutes=60)
    stop = threading.Event()
    cleaned = []
    real_clean = airflow_history.clean_history

    def clean_then_stop(keep_hours):
        cleaned.append(keep_hours)
        try:
            return real_clean(keep_hours)
        finally:
            stop.set()

    monkeypatch.setattr(airflow_history, "clean_history", clean_then_stop)
    airflow_history.run_forever(settings, stop)

    assert cleaned == [48.0]
    assert airflow_history.check_recent(settings) == ""
    outcome = json.loads(airflow_history.status_path(settings).read_text())
    assert outcome["ok"] and outcome["cutoff"]
