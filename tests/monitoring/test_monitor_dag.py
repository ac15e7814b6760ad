"""covertype_monitor end to end: a real champion, real MariaDB and MLflow, the DAG run by ``dag.test()``.

The champion is trained on batch 1; batch 2 is more of the same data and
batch 3 the same kind of rows with five feature columns altered.  The
monitor must score both with that champion, find batch 3 drifted (and
batch 2 much less), raise the drift alert, trigger the forced retrain, and
``forestops monitor --json`` must list both batches with their figures.
"""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest
import sqlalchemy as sa

from forestops import names, schema
from forestops.monitoring import alerts, store
from forestops.storage import tables
from forestops.storage.db import make_engine
from tests.monitoring.support import SHIFTED, register_champion, shifted
from tests.support.airflow import airflow_env, run_dag_test
from tests.support.processes import VENV_BIN, forestops_argv, settings_env
from tests.training.conftest import CHILD_SETTINGS, insert_raw_rows

pytestmark = pytest.mark.integration

MONITOR_SETTINGS = (
    *CHILD_SETTINGS,
    "alert_drift_share",
    "alert_accuracy_drop",
    "retrain_on_drift",
    "monitor_reference_rows",
)


def monitoring_rows(url: str) -> list[dict]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = store.results(connection)
    engine.dispose()
    return rows


def test_monitor_scores_new_batches_with_the_champion_and_alerts_on_a_shift(
    airflow_home, fresh_database_url, training_rows, settings_for
):
    rows = list(training_rows)
    random.Random(15).shuffle(rows)
    url = fresh_database_url
    insert_raw_rows(url, rows[:2000], batch_number=1)
    settings = settings_for(
        url,
        alert_drift_share=0.3,
        alert_accuracy_drop=1.0,  # this test is about drift; the accuracy rule has a unit test
        retrain_on_drift=True,
        monitor_reference_rows=1000,
    )
    champion = register_champion(settings)
    insert_raw_rows(url, rows[2000:2500], batch_number=2)
    insert_raw_rows(url, shifted(rows[2500:3000]), batch_number=3)
    env = settings_env(settings, MONITOR_SETTINGS)
    # The retrain trigger needs covertype_train in Airflow's metadata database, as the scheduler would have it.
    reserialized = subprocess.run(
        [str(VENV_BIN / "airflow"), "dags", "reserialize"],
        env={**os.environ, **airflow_env(airflow_home), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert reserialized.returncode == 0, reserialized.stdout[-3000:] + reserialized.stderr[-3000:]

    run = run_dag_test(airflow_home, names.DAG_MONITOR, env)
    assert run.succeeded, run.output[-6000:]
    assert run.tasks["score"] == "success" and run.tasks["alert"] == "success", run.tasks
    assert run.tasks["trigger_training"] == "success", run.tasks  # FORESTOPS_RETRAIN_ON_DRIFT is on

    by_batch = {r["batch_number"]: r for r in monitoring_rows(url)}
    assert set(by_batch) == {2, 3}  # batch 1 is the champion's own training data
    plain, moved = by_batch[2], by_batch[3]
    assert plain["model_version"] == moved["model_version"] == champion
    assert plain["rows_scored"] == 500 and moved["rows_scored"] == 500
    assert moved["drift_share"] >= 0.3 > plain["drift_share"]
    assert set(SHIFTED) & set(moved["drifted_columns"])
    assert moved["report_uri"].endswith("drift_report.html") and moved["monitoring_run_id"]
    assert 0 < plain["accuracy"] <= 1 and set(plain["recall_per_class"]) <= {str(c) for c in schema.CLASS_IDS}
    assert "MONITORING ALERT drift" in run.output and "group 1 batch 3" in run.output

    # A second run finds nothing new: no duplicate rows, nothing rescored.
    again = run_dag_test(airflow_home, names.DAG_MONITOR, env)
    assert again.succeeded and again.tasks["trigger_training"] == "skipped", again.tasks
    assert len(monitoring_rows(url)) == 2

    listed = subprocess.run(
        [*forestops_argv(), "monitor", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    batches = {b["batch_number"]: b for b in json.loads(listed.stdout)["batches"]}
    assert set(batches) == {2, 3}
    for batch in batches.values():
        assert batch["model_version"] == champion
        assert {"accuracy", "macro_f1", "drift_share"} <= set(batch)


def test_upsert_rewrites_the_row_of_a_retried_batch(fresh_database_url):
    from forestops.storage.db import ensure_schema

    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    first = store.BatchResult(1, 4, "3", 100, 0.9, 0.8, {"0": 0.9}, max_raw_id=50, drift_share=0.1)
    with engine.begin() as connection:
        store.upsert(connection, first)
        store.upsert(connection, store.BatchResult(**{**first.as_row(), "accuracy": 0.5, "max_raw_id": 60}))
        store.upsert(connection, store.BatchResult(**{**first.as_row(), "model_version": "4"}))
    with engine.connect() as connection:
        rows = connection.execute(sa.select(tables.batch_monitoring).order_by("id")).all()
        assert store.watermark(connection) == 60
    engine.dispose()
    assert [(r.model_version, r.accuracy) for r in rows] == [("3", 0.5), ("4", 0.9)]


def test_alert_rules():
    batch = {"group_number": 1, "batch_number": 7, "model_version": "2", "accuracy": 0.80, "drift_share": 0.25}
    batch["drifted_columns"] = ["Elevation", "Slope", "Aspect"]
    assert [a.kind for a in alerts.check([batch], 0.90, 0.05, 0.5)] == [alerts.ACCURACY_DROP]
    assert [a.kind for a in alerts.check([batch], 0.84, 0.05, 0.25)] == [alerts.DRIFT]
    assert alerts.check([{**batch, "drift_share": None}], None, 0.05, 0.25) == []


def test_a_triggered_training_records_its_reason(fresh_database_url, training_rows):
    from forestops.training import gate
    from tests.training.conftest import training_log

    insert_raw_rows(fresh_database_url, training_rows[:50])
    engine = make_engine(fresh_database_url)
    decision = gate.should_train(engine, None, True, "manual__1", trigger="monitoring alert: group 1 batch 3 drifted")
    engine.dispose()
    assert decision.train and decision.trigger.startswith("monitoring alert")
    (row,) = training_log(fresh_database_url)
    assert row.detail.startswith("monitoring alert: group 1 batch 3 drifted; forced;")


def test_gauges_follow_the_table(fresh_database_url, training_rows):
    from prometheus_client import CollectorRegistry, generate_latest

    from forestops.monitoring.metrics import MonitoringMetrics
    from forestops.storage.db import ensure_schema

    insert_raw_rows(fresh_database_url, training_rows[:40], batch_number=5)
    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    with engine.begin() as connection:
        store.upsert(connection, store.BatchResult(1, 5, "7", 40, 0.875, 0.5, {"1": 0.9}, 40, drift_share=0.25))
    registry = CollectorRegistry()
    assert MonitoringMetrics(registry).refresh(engine) == 1
    engine.dispose()
    text = generate_latest(registry).decode()
    assert 'forestops_batch_accuracy{batch="5",group="1",model_version="7"} 0.875' in text
    assert 'forestops_batch_drift_share{batch="5",group="1",model_version="7"} 0.25' in text
    assert 'forestops_batch_rows_stored{batch="5",group="1"} 40.0' in text
