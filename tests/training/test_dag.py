"""The covertype_train DAG: structure, and real runs with ``dag.test()``."""

from __future__ import annotations

import mlflow
import pytest

from forestops.names import ALIAS_CHAMPION, TrainingStatus
from tests.support.airflow import run_dag_test
from tests.training.conftest import env_of, training_log

TASKS = ("gate", "enough_new_rows", "load", "check", "train", "evaluate", "register", "promote", "explain")


@pytest.mark.integration
def test_train_dag_runs_forced_then_skips_without_new_rows(airflow_home, stocked_database, settings_for):
    settings = settings_for(stocked_database, training_candidates="lightgbm,baseline")
    env = env_of(settings)

    forced = run_dag_test(airflow_home, "covertype_train", env, conf={"force": True})
    assert forced.succeeded, forced.output[-6000:]
    assert set(forced.tasks) == set(TASKS)
    assert all(state == "success" for state in forced.tasks.values()), forced.tasks
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, ALIAS_CHAMPION)
    run = client.get_run(champion.run_id)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["airflow_run_id"] == forced.run_id
    (row,) = training_log(stocked_database)
    assert row.status == TrainingStatus.TRAINED and row.run_id == forced.run_id

    # Scheduled (unforced) with no new rows: the gate records a skip, nothing trains.
    skipped = run_dag_test(airflow_home, "covertype_train", env)
    assert skipped.succeeded, skipped.output[-6000:]
    assert skipped.tasks["gate"] == "success"
    assert skipped.tasks["train"] == "skipped" and skipped.tasks["promote"] == "skipped"
    last = training_log(stocked_database)[-1]
    assert last.status == TrainingStatus.SKIPPED and "0 new rows" in last.detail
    assert client.get_model_version_by_alias(settings.model_name, ALIAS_CHAMPION).version == champion.version


_STRUCTURE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag("covertype_train")
print("STRUCTURE " + json.dumps({
    "max_active_runs": dag.max_active_runs,
    "schedule": repr(dag.timetable) + " " + str(getattr(dag.timetable, "asset_condition", "")),
    "tasks": {t.task_id: {"retries": t.retries, "downstream": sorted(t.downstream_task_ids)} for t in dag.tasks},
}))
"""


@pytest.mark.integration
def test_train_dag_structure(airflow_home):
    """Parsed by Airflow itself (in a child process): Asset schedule, one run at a time, the task chain."""
    import json
    import os
    import subprocess
    import sys

    from forestops.names import RAW_DATA_ASSET_NAME
    from tests.support.airflow import DAGS_FOLDER, airflow_env

    result = subprocess.run(
        [sys.executable, "-c", _STRUCTURE, str(DAGS_FOLDER)],
        env={**os.environ, **airflow_env(airflow_home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("STRUCTURE ")), None)
    assert line, result.stdout[-3000:] + result.stderr[-3000:]
    structure = json.loads(line.removeprefix("STRUCTURE "))
    tasks = structure["tasks"]
    assert structure["max_active_runs"] == 1
    assert RAW_DATA_ASSET_NAME in structure["schedule"]
    assert set(tasks) == set(TASKS)
    assert tasks["train"]["retries"] > 0 and tasks["check"]["retries"] == 0
    assert {"enough_new_rows", "load"} <= set(tasks["gate"]["downstream"])
    assert tasks["enough_new_rows"]["downstream"] == ["load"]
    assert "train" in tasks["check"]["downstream"]
    assert tasks["register"]["downstream"] == ["promote"]
    # Importance after promotion: a new champion does not wait for it.
    assert tasks["promote"]["downstream"] == ["explain"]
