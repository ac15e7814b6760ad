"""Every task of the two DAGs has an execution_timeout, taken from the settings.

A stalled data API, store or training must end the attempt (Airflow then
retries or fails it) rather than hold a worker slot forever.  The DAG files
are parsed in a child process, as Airflow's DAG processor would, with the
timeouts set through the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.airflow import DAGS_FOLDER, REPO, airflow_env

pytestmark = pytest.mark.integration

_CHILD = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
print("TIMEOUTS " + json.dumps({
    dag_id: {t.task_id: t.execution_timeout.total_seconds() if t.execution_timeout else None for t in dag.tasks}
    for dag_id, dag in bag.dags.items()
}))
"""


def test_dag_tasks_have_execution_timeouts_from_settings(tmp_path):
    env = {
        **os.environ,
        **airflow_env(tmp_path / "airflow"),
        "FORESTOPS_HOME": str(tmp_path),
        "FORESTOPS_INGEST_TASK_TIMEOUT_SECONDS": "123",
        "FORESTOPS_TRAIN_TASK_TIMEOUT_SECONDS": "4567",
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(DAGS_FOLDER)], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("TIMEOUTS ")), None)
    assert line, done.stdout[-3000:] + done.stderr[-3000:]
    timeouts = json.loads(line.removeprefix("TIMEOUTS "))
    assert set(timeouts["covertype_ingest"].values()) == {123.0}, timeouts["covertype_ingest"]
    assert set(timeouts["covertype_train"].values()) == {4567.0}, timeouts["covertype_train"]
