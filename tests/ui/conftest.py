"""Real services for the UI's tests, started once per session.

The data API and the inference API run as ``forestops`` processes on free
ports; MLflow is the session's real server, with a registered model of our
own (a unique name, so other areas' tests in the same server do not mix in);
the raw data database is a fresh MariaDB database filled by the real
ingestion.  A page under test reads the same ``FORESTOPS_*`` variables as
``forestops ui`` would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import data
from tests.support.processes import forestops_argv, free_port, running
from tests.ui.helpers import NOTHING_LISTENS


@dataclass
class TrainedModel:
    name: str
    tracking_uri: str
    versions: dict[str, dict] = field(default_factory=dict)  # version -> {"run_id", "metrics", "alias"}


@pytest.fixture(scope="session")
def ui_rows() -> list[list[str]]:
    return data.sample_rows(3000)


@pytest.fixture(scope="session")
def ui_data_api(session_dir: Path, ui_rows) -> Iterator[str]:
    """``forestops datasource`` on a free port serving a small CSV."""
    folder = session_dir / "ui-datasource"
    folder.mkdir()
    csv_path = data.write_csv(folder / "rows.csv", ui_rows)
    port = free_port()
    env = {
        "FORESTOPS_DATA_PATH": str(csv_path),
        "FORESTOPS_STATE_DIR": str(folder / "state"),
        "FORESTOPS_HOME": str(folder),
        "FORESTOPS_BATCH_SECONDS": "600",
    }
    url = f"http://127.0.0.1:{port}"
    with running(
        "data API", forestops_argv("datasource", "--port", str(port)), folder / "datasource.log", f"{url}/health", env
    ):
        yield url


@pytest.fixture(scope="session")
def ui_raw_database(database_factory, ui_data_api: str) -> dict:
    """A fresh database filled by two real ingestion runs against the data API (group 1)."""
    from forestops.ingest.pipeline import ingest_once
    from forestops.settings import load_settings

    url = database_factory("fo_ui")
    settings = load_settings(database_url=url, datasource_url=ui_data_api, group_number=1, http_retries=0)
    outcomes = [ingest_once(settings) for _ in range(2)]
    assert all(o.status == "stored" for o in outcomes), outcomes
    return {"url": url, "outcomes": outcomes}


def _confusion_matrix_png(labels, predicted, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    display = ConfusionMatrixDisplay.from_predictions(labels, predicted)
    display.figure_.savefig(path)
    plt.close(display.figure_)
    return path


@pytest.fixture(scope="session")
def ui_model(mlflow_server, ui_rows, session_dir: Path) -> TrainedModel:
    """Two versions of a model trained with the training package's pipelines, as the train DAG registers them.

    v1 (baseline) holds @challenger, v2 (random forest) @champion; each run logs
    accuracy, f1_macro and confusion_matrix.png like the training runs do.
    """
    import mlflow
    from sklearn.metrics import accuracy_score, f1_score

    from forestops import schema
    from forestops.training.candidates import build_pipeline, fit_pipeline
    from forestops.training.registry import log_and_register

    records = [schema.normalise_raw_row(row) for row in ui_rows]
    frame = schema.feature_frame(records)
    labels = [r[schema.LABEL] for r in records]
    cut = int(len(records) * 0.8)
    model = TrainedModel(name=f"ui_covertype_{uuid.uuid4().hex[:8]}", tracking_uri=mlflow_server.url)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    client = mlflow.MlflowClient()
    try:
        mlflow.set_experiment(model.name)
        for candidate, params in (("baseline", {}), ("random_forest", {"n_estimators": 20})):
            pipeline = fit_pipeline(build_pipeline(candidate, params), frame.iloc[:cut], labels[:cut])
            predicted = pipeline.predict(frame.iloc[cut:])
            metrics = {
                "accuracy": accuracy_score(labels[cut:], predicted),
                "f1_macro": f1_score(labels[cut:], predicted, average="macro"),
            }
            with mlflow.start_run(run_name=candidate) as run:
                mlflow.log_metrics(metrics)
                folder = session_dir / f"ui-{candidate}"
                folder.mkdir(exist_ok=True)
                png = _confusion_matrix_png(labels[cut:], predicted, folder / "confusion_matrix.png")
                mlflow.log_artifact(str(png))
                version = log_and_register(
                    pipeline, frame.iloc[:50], model.name, tags={"primary_metric": "f1_macro", "candidate": candidate}
                )
            model.versions[version] = {"run_id": run.info.run_id, "metrics": metrics}
        client.set_registered_model_alias(model.name, "challenger", "1")
        client.set_registered_model_alias(model.name, "champion", "2")
        client.set_model_version_tag(model.name, "2", "decision", "champion")
        client.set_model_version_tag(model.name, "1", "decision", "challenger")
    finally:
        mlflow.set_tracking_uri(previous_uri)
    return model


@pytest.fixture(scope="session")
def ui_inference(ui_model: TrainedModel, session_dir: Path) -> Iterator[str]:
    """``forestops inference`` serving ``ui_model``'s @champion."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "FORESTOPS_MLFLOW_TRACKING_URI": ui_model.tracking_uri,
        "FORESTOPS_MODEL_NAME": ui_model.name,
        "FORESTOPS_HOME": str(session_dir / "ui-inference"),
    }
    with running(
        "inference API",
        forestops_argv("inference", "--port", str(port)),
        session_dir / "ui-inference.log",
        f"{url}/ready",
        env,
        timeout=180,
    ):
        yield url


@pytest.fixture
def ui_env(monkeypatch, tmp_path) -> Callable[..., None]:
    """Point the app at given services; anything not given points where nothing listens."""

    def configure(**urls: str) -> None:
        defaults = {
            "datasource_url": NOTHING_LISTENS,
            "inference_url": NOTHING_LISTENS,
            "mlflow_tracking_uri": NOTHING_LISTENS,
            "airflow_url": NOTHING_LISTENS,
        }
        for name, value in {**defaults, **urls}.items():
            monkeypatch.setenv(f"FORESTOPS_{name.upper()}", value)
        monkeypatch.setenv("FORESTOPS_HOME", str(tmp_path / "home"))

    return configure


@dataclass(frozen=True)
class AirflowApi:
    url: str
    username: str
    password: str


@pytest.fixture(scope="session")
def ui_airflow(session_dir: Path) -> Iterator[AirflowApi]:
    """A real ``airflow api-server`` (no scheduler) knowing the project's two DAGs.

    The metadata database is a session-private SQLite one; ``dags reserialize``
    stores the DAGs so they can be listed and triggered.  Runs triggered here
    stay queued, since no scheduler runs: enough to test the REST calls.
    """
    import os
    import subprocess

    from tests.support.airflow import airflow_env, prepare_airflow_home
    from tests.support.processes import VENV_BIN

    home = prepare_airflow_home(session_dir / "ui-airflow")
    password = uuid.uuid4().hex
    passwords = home / "passwords.json"
    passwords.write_text(f'{{"admin": "{password}"}}')
    env = {
        **airflow_env(home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
    }
    result = subprocess.run(
        [str(VENV_BIN / "airflow"), "dags", "reserialize"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(VENV_BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)]
    with running(
        "airflow api-server",
        [*argv, "--workers", "1", "--apps", "core"],
        home / "api-server.log",
        f"{url}/api/v2/monitor/health",
        env,
        timeout=180,
    ):
        yield AirflowApi(url=url, username="admin", password=password)
