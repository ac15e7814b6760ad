"""Run the ``covertype_ingest`` DAG with ``dag.test()`` again and again in one child process.

A full batch cycle is a dozen DAG runs or more; paying Airflow's start-up
for each (``tests.support.airflow.run_dag_test``) would cost minutes on a
busy machine, so one child parses the DAG once and calls ``dag.test()`` for
each step of a plan, printing each run's result on a line of its own.  A
step may change ``FORESTOPS_*`` variables first: the task reads settings
when it runs, as it does under a real scheduler after a configuration change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.airflow import DAGS_FOLDER, REPO, DagTestResult, airflow_env

_CHILD = r"""
import json, os, sys, time
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
from sqlalchemy import select
from forestops.names import RAW_DATA_ASSET_NAME


def asset_events(run_id):
    # The raw-data Asset events this run emitted, as recorded in Airflow's metadata database.
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == RAW_DATA_ASSET_NAME, AssetEvent.source_run_id == run_id)
        ).all()
        return [event.extra for event in events]

bag = DagBag(dag_folder=sys.argv[1])
if bag.import_errors:
    print("IMPORT_ERRORS " + json.dumps({k: str(v) for k, v in bag.import_errors.items()}), flush=True)
    sys.exit(3)
dag = bag.get_dag("covertype_ingest")
for index, step in enumerate(json.loads(sys.argv[2])):
    os.environ.update(step["env"])
    for _ in range(step["runs"]):
        run = dag.test()
        tis = {ti.task_id: ti for ti in run.get_task_instances()}
        outcome = tis["collect"].xcom_pull(task_ids="collect") if "collect" in tis else None
        print("DAG_TEST_RESULT " + json.dumps({
            "step": index, "state": str(run.state), "run_id": run.run_id,
            "tasks": {task_id: str(ti.state) for task_id, ti in tis.items()}, "outcome": outcome,
            "asset_events": asset_events(run.run_id),
        }), flush=True)
        if str(run.state) != "success":
            sys.exit(4)
        if step["until_complete"] and outcome["status"] == "complete":
            break
        time.sleep(step["pause"])
"""


@dataclass
class Step:
    runs: int  # at most this many dag.test() runs
    until_complete: bool = False  # stop the step at the first "complete" outcome
    pause: float = 0.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class CycleRun:
    step: int
    result: DagTestResult
    outcome: dict | None
    asset_events: list[dict]  # extras of the raw-data Asset events the run emitted


def run_dag_plan(home: Path, env: Mapping[str, str], plan: list[Step], timeout: float = 600) -> list[CycleRun]:
    full_env = {**os.environ, **airflow_env(home), **env}
    argv = [sys.executable, "-c", _CHILD, str(DAGS_FOLDER), json.dumps([s.__dict__ for s in plan])]
    result = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    output = result.stdout + result.stderr
    runs = []
    for line in result.stdout.splitlines():
        if line.startswith("DAG_TEST_RESULT "):
            data = json.loads(line.removeprefix("DAG_TEST_RESULT "))
            dag_result = DagTestResult(data["state"], data["run_id"], data["tasks"], "")
            runs.append(CycleRun(data["step"], dag_result, data["outcome"], data["asset_events"]))
    if result.returncode != 0 or not runs:
        raise AssertionError(f"dag.test() plan failed (exit {result.returncode}):\n{output[-6000:]}")
    return runs
