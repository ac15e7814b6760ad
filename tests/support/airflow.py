"""Run the project's real DAGs with ``dag.test()`` in a child process.

A child process gets its own ``AIRFLOW_HOME`` (a migrated SQLite metadata
database made once per test session) and the ``FORESTOPS_*`` settings of the
test, so Airflow's import-time configuration and our cached settings never
leak between tests.  Results are read from where the DAG writes them (MySQL,
MLflow), plus the run's final state printed by the child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"

_CHILD = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
if bag.import_errors:
    print("IMPORT_ERRORS " + json.dumps({k: str(v) for k, v in bag.import_errors.items()}))
    sys.exit(3)
dag = bag.get_dag(sys.argv[2])
conf = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
run = dag.test(run_conf=conf)
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("DAG_TEST_RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": states}))
"""


def airflow_env(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }


def prepare_airflow_home(home: Path) -> Path:
    """Create and migrate a SQLite metadata database under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **airflow_env(home)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return home


@dataclass
class DagTestResult:
    state: str
    run_id: str
    tasks: dict[str, str]
    output: str

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


def run_dag_test(
    home: Path,
    dag_id: str,
    env: Mapping[str, str],
    conf: dict | None = None,
    timeout: float = 600,
    dags_folder: Path = DAGS_FOLDER,
) -> DagTestResult:
    """Run ``dag.test()`` for ``dag_id`` from the repository's dags folder (or ``dags_folder``)."""
    full_env = {**os.environ, **airflow_env(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder), **env}
    argv = [sys.executable, "-c", _CHILD, str(dags_folder), dag_id]
    if conf is not None:
        argv.append(json.dumps(conf))
    result = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    output = result.stdout + result.stderr
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("DAG_TEST_RESULT "):
            data = json.loads(line.removeprefix("DAG_TEST_RESULT "))
            return DagTestResult(data["state"], data["run_id"], data["tasks"], output)
    raise AssertionError(f"dag.test() of {dag_id} did not finish (exit {result.returncode}):\n{output[-6000:]}")
