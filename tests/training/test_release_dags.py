"""The shadow and retention DAG files parse, wire their tasks, and schedule as the settings say."""

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
found = {}
for name in ("covertype_shadow.py", "covertype_retention.py"):
    bag = DagBag(dag_folder=f"{sys.argv[1]}/{name}")
    assert not bag.import_errors, bag.import_errors
    for dag_id, dag in bag.dags.items():
        found[dag_id] = {
            "tasks": sorted(dag.task_ids), "schedule": str(dag.schedule), "max_runs": dag.max_active_runs
        }
print("DAGS " + json.dumps(found))
"""


def _parse(tmp_path, policy: str, **extra: str) -> dict:
    env = {
        **os.environ,
        **airflow_env(tmp_path / policy),
        "FORESTOPS_HOME": str(tmp_path),
        "FORESTOPS_PROMOTION_POLICY": policy,
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",  # a loaded machine must not turn slowness into an error
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(DAGS_FOLDER)], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("DAGS ")), None)
    assert line, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(line.removeprefix("DAGS "))


def test_shadow_dag_is_scheduled_only_under_the_shadow_policy_and_retention_hourly(tmp_path):
    shadow_policy = _parse(tmp_path, "shadow")
    assert shadow_policy["covertype_shadow"] == {"tasks": ["settle"], "schedule": "0:02:00", "max_runs": 1}
    assert shadow_policy["covertype_retention"] == {
        "tasks": ["apply_retention", "prune_logs"],
        "schedule": "1:00:00",
        "max_runs": 1,
    }
    immediate = _parse(tmp_path, "immediate", FORESTOPS_RETENTION_EVERY_MINUTES="10")
    assert immediate["covertype_retention"]["schedule"] == "0:10:00"
    assert immediate["covertype_shadow"]["schedule"] == "None"
