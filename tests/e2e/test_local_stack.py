"""The whole cycle on the local stack, server mode: data API -> Airflow -> MySQL -> MLflow/S3 -> serving.

One ``forestops stack up`` against fresh MariaDB databases and a fresh bucket
on moto's S3 server, every port free-picked, the data API serving a few
thousand real rows (generated ones without ../shared) in 4-second windows,
30% of a batch per call, so a few calls give enough rows to train on.
The test waits for what a user would wait for: the collection to complete,
a registered version holding ``champion``, and the inference API answering
with that version; then it checks what landed in MySQL, MLflow and the
bucket, and that ``stack down`` leaves none of the stack's processes behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from forestops import schema
from forestops.local.supervise import StackState
from tests.support import data
from tests.support.processes import forestops_argv, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1080)]

SAMPLE_ROWS = 3000
MODEL_NAME = "covertype"


def wait_for(what: str, check, timeout: float, interval: float = 3.0, on_timeout=lambda: ""):
    """Poll ``check`` until it returns something truthy; fail with ``what`` and context."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}", pytrace=False)
        time.sleep(interval)


def log_tails(home: Path, lines: int = 25) -> str:
    parts = []
    for path in sorted((home / "logs").glob("*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(parts)


@pytest.fixture
def stack_env(tmp_path, mysql_server_url, database_factory, s3_endpoint) -> dict[str, str]:
    raw_database = database_factory("fo_e2e_raw").rsplit("/", 1)[1]
    mlflow_database = database_factory("fo_e2e_mlflow").rsplit("/", 1)[1]
    data_path = data.write_csv(tmp_path / "sample.csv.gz", data.sample_rows(SAMPLE_ROWS))
    env = {
        "FORESTOPS_HOME": str(tmp_path / "home"),
        "FORESTOPS_DATA_PATH": str(data_path),
        "FORESTOPS_MYSQL_URL": mysql_server_url,
        "FORESTOPS_RAW_DATABASE": raw_database,
        "FORESTOPS_MLFLOW_DATABASE": mlflow_database,
        "FORESTOPS_S3_ENDPOINT_URL": s3_endpoint.url,
        "FORESTOPS_S3_ACCESS_KEY_ID": s3_endpoint.access_key_id,
        "FORESTOPS_S3_SECRET_ACCESS_KEY": s3_endpoint.secret_access_key,
        "FORESTOPS_S3_BUCKET": f"fo-e2e-{uuid.uuid4().hex[:8]}",
        "FORESTOPS_BATCH_SECONDS": "4",
        "FORESTOPS_PORTION_FRACTION": "0.3",
        "FORESTOPS_INGEST_EVERY": "2",
        "FORESTOPS_SEARCH_SECONDS": "5",
        "FORESTOPS_MODEL_POLL_SECONDS": "2",
        "FORESTOPS_STACK_HEALTH_TIMEOUT": "300",
    }
    for setting in ("DATASOURCE_PORT", "MLFLOW_PORT", "AIRFLOW_PORT", "INFERENCE_PORT", "UI_PORT", "PROMETHEUS_PORT"):
        env[f"FORESTOPS_{setting}"] = str(free_port())
    # Nothing of the developer's own configuration may leak into the stack.
    for name in list(os.environ):
        if name.startswith(("FORESTOPS_", "AIRFLOW")) and name not in env:
            env[name] = ""
    return env


def run_forestops(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    full = {k: v for k, v in {**os.environ, **env}.items() if v != ""}
    return subprocess.run(forestops_argv(*args), env=full, capture_output=True, text=True, timeout=timeout)


def stack_processes(state_path: Path) -> list[psutil.Process]:
    state = StackState.load(state_path)
    return [process for record in state.services.values() for process in record.family()]


def drop_app_user(home: Path, mysql_server_url: str) -> None:
    user_file = home / "stack" / "db-user.json"
    if user_file.exists():
        from forestops.storage.provision import drop_mysql_user

        drop_mysql_user(mysql_server_url, json.loads(user_file.read_text())["name"])


def test_whole_cycle_in_server_mode(stack_env, mysql_server_url, s3_endpoint):
    home = Path(stack_env["FORESTOPS_HOME"])
    state_path = home / "stack" / "state.json"
    raw_url = f"{mysql_server_url}/{stack_env['FORESTOPS_RAW_DATABASE']}"
    inference_url = f"http://127.0.0.1:{stack_env['FORESTOPS_INFERENCE_PORT']}"
    mlflow_url = f"http://127.0.0.1:{stack_env['FORESTOPS_MLFLOW_PORT']}"
    engine = sa.create_engine(raw_url)
    try:
        started = run_forestops(stack_env, "stack", "up", timeout=600)
        assert started.returncode == 0, f"stack up failed:\n{started.stdout}\n{started.stderr}\n{log_tails(home)}"
        assert "server (MySQL" in started.stdout, started.stdout
        assert f"127.0.0.1:{stack_env['FORESTOPS_AIRFLOW_PORT']}" in started.stdout
        admin_password_file = home.resolve() / "airflow" / "admin-password"
        assert f"Airflow login              admin / password in {admin_password_file}" in started.stdout
        assert admin_password_file.read_text().strip() not in started.stdout + started.stderr
        ui_password = (home / "ui-password").read_text().strip()  # generated by stack up
        assert f"UI sign-in                 admin / password in {home.resolve() / 'ui-password'}" in started.stdout
        assert ui_password not in started.stdout + started.stderr
        status = run_forestops(stack_env, "stack", "status", timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        recorded = StackState.load(state_path)
        assert {"datasource", "mlflow", "airflow-api-server", "airflow-scheduler", "inference"} <= set(
            recorded.services
        )

        # 1. The collection cycle completes: the data API said "all batches served".
        def collection_complete():
            with engine.connect() as connection:
                return connection.execute(
                    sa.text("SELECT COUNT(*) FROM fetch_log WHERE status = 'complete'")
                ).scalar_one()

        wait_for("the collection cycle to complete", collection_complete, 420, on_timeout=lambda: log_tails(home))

        # 2. A trained version holds the champion alias.
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=mlflow_url)

        def champion_version():
            with contextlib.suppress(Exception):
                return client.get_model_version_by_alias(MODEL_NAME, "champion")
            return None

        wait_for("a version with the champion alias", champion_version, 420, on_timeout=lambda: log_tails(home))

        # 3. The inference API serves the current champion (it polls the alias).
        rows = data.sample_rows(5)
        instances = [dict(zip(schema.FEATURE_COLUMNS, row[: len(schema.FEATURE_COLUMNS)], strict=True)) for row in rows]

        def served_champion():
            version = champion_version()
            response = httpx.post(f"{inference_url}/predict", json={"instances": instances}, timeout=30)
            if response.status_code != 200 or version is None:
                return None
            body = response.json()
            return body if str(body["model"]["version"]) == str(version.version) else None

        answer = wait_for("the inference API to serve the champion", served_champion, 120, 2)
        assert answer["model"]["name"] == MODEL_NAME
        assert answer["model"]["alias"] == "champion"
        assert len(answer["predictions"]) == len(instances)
        assert all(0 <= p["cover_type"] <= 6 for p in answer["predictions"])

        # 4. The raw table holds unique, valid rows, every one of them from the served sample.
        sample_digests = {schema.row_digest(schema.normalise_raw_row(row)) for row in data.sample_rows(SAMPLE_ROWS)}
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT * FROM raw_rows")).mappings().all()
        assert stored, "no rows were stored"
        hashes = [row["row_hash"] for row in stored]
        assert len(hashes) == len(set(hashes))
        for row in stored:
            normalised = schema.normalise_raw_row([row[c] for c in schema.RAW_COLUMNS])
            assert schema.row_digest(normalised) == row["row_hash"]
            assert row["row_hash"] in sample_digests

        # 5. MLflow holds the runs, and their artefacts are objects in the bucket.
        experiment = client.get_experiment_by_name(MODEL_NAME)
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id])
        assert runs, "no MLflow runs"
        champion = champion_version()
        champion_run = client.get_run(champion.run_id)
        assert {"accuracy", "f1_macro"} <= set(champion_run.data.metrics)
        artefacts = {item.path for item in client.list_artifacts(champion.run_id)}
        assert {"confusion_matrix.png", "classification_report.json"} <= artefacts, artefacts
        bucket = s3_endpoint.client().list_objects_v2(Bucket=stack_env["FORESTOPS_S3_BUCKET"])
        keys = [item["Key"] for item in bucket.get("Contents", [])]
        assert any(key.endswith("confusion_matrix.png") for key in keys), keys[:20]
        assert any(champion.run_id in key for key in keys)

        # 6. `forestops check` verifies the running stack end to end and passes, one line per check.
        checked = run_forestops({**stack_env, "FORESTOPS_CHECK_INGEST_TIMEOUT": "150"}, "check", timeout=300)
        assert checked.returncode == 0, f"forestops check failed:\n{checked.stdout}\n{checked.stderr}"
        lines = checked.stdout.splitlines()
        for name in ("service MLflow", "service Airflow scheduler", "MLflow schema", "artefact store", "predict"):
            assert any(line.startswith(f"{name}: ok") for line in lines), (name, lines)
        assert any(line.startswith("grants application: ok") for line in lines), lines
        assert any(line.startswith("ingest run: ok - run manual__") for line in lines), lines
        assert "checks passed" in lines[-1]

        # 7. stack down stops every recorded process and its children, and nothing else is left.
        before = stack_processes(state_path)
        assert before
        stopped = run_forestops(stack_env, "stack", "down", timeout=300)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        survivors = []
        for process in before:
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(f"{process.pid} {' '.join(process.cmdline())}")
        assert not survivors, survivors
        assert not state_path.exists()
        assert not any(record.family() for record in recorded.services.values())
    finally:
        if state_path.exists():
            run_forestops(stack_env, "stack", "down", timeout=300)
        engine.dispose()
        drop_app_user(home, mysql_server_url)
