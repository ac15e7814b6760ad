"""How long ``forestops stack down`` takes while a training is deep in its fit, and what it had to kill.

Used by ``bench_stack`` at the end of its run: it starts a forced
``covertype_train`` run through the Airflow REST API (as the UI's trigger
does), waits until the run's ``train`` task has been running for a few
seconds, then times ``stack down``.  The usual case should end within
15 seconds without SIGKILL; when SIGKILL is needed, ``stack down`` names
what it killed, and this prints it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
TRAIN_DAG = "covertype_train"
FIT_TASK = "train"


def _token(airflow_url: str, home: Path) -> str:
    from forestops.local.airflow import ADMIN_USER

    secrets = json.loads((home / "airflow" / "forestops-secrets.json").read_text())
    response = httpx.post(
        f"{airflow_url}/auth/token", json={"username": ADMIN_USER, "password": secrets["password"]}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


def trigger_training(airflow_url: str, home: Path) -> tuple[str, dict[str, str]]:
    """A forced training run, as the UI starts one; returns (run id, auth headers)."""
    headers = {"Authorization": f"Bearer {_token(airflow_url, home)}"}
    response = httpx.post(
        f"{airflow_url}/api/v2/dags/{TRAIN_DAG}/dagRuns",
        json={"logical_date": None, "conf": {"force": True, "reason": "bench: stack down during a fit"}},
        headers=headers,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["dag_run_id"], headers


def wait_for_fit(airflow_url: str, run_id: str, headers: dict[str, str], timeout: float = 900) -> float | None:
    """Seconds until the run's fit task is running (None: it never ran within ``timeout``)."""
    started = time.monotonic()
    url = f"{airflow_url}/api/v2/dags/{TRAIN_DAG}/dagRuns/{run_id}/taskInstances/{FIT_TASK}"
    while time.monotonic() - started < timeout:
        response = httpx.get(url, headers=headers, timeout=30)
        if response.status_code == 200 and response.json().get("state") == "running":
            return time.monotonic() - started
        if response.status_code == 200 and response.json().get("state") in ("success", "failed", "skipped"):
            return None
        time.sleep(1)
    return None


def measure(env: dict[str, str], airflow_url: str, home: Path, into_fit_seconds: float = 5.0) -> None:
    """Print the time ``stack down`` takes with a training in its fit, and what it killed."""
    try:
        run_id, headers = trigger_training(airflow_url, home)
    except (httpx.HTTPError, OSError, KeyError) as error:
        print(f"stack down during a fit: could not start a training ({type(error).__name__}: {error})")
        return
    waited = wait_for_fit(airflow_url, run_id, headers)
    if waited is None:
        print("stack down during a fit: the training's fit task never ran; not measured")
        return
    time.sleep(into_fit_seconds)
    began = time.perf_counter()
    down = subprocess.run(
        [str(BIN / "forestops"), "stack", "down"], env=env, capture_output=True, text=True, timeout=600
    )
    took = time.perf_counter() - began
    forced = [line for line in down.stdout.splitlines() if "SIGKILL" in line]
    print(
        f"stack down with a training {into_fit_seconds:g} s into its fit: {took:.1f} s "
        f"(exit {down.returncode}; target 15 s without SIGKILL); "
        + (f"forced: {' | '.join(forced)}" if forced else "no SIGKILL")
    )
