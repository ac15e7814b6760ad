"""The real services the UI talks to, as plain context managers.

Used by the session fixtures (conftest.py) and by ``screenshots.py``, which
stands the same services up to photograph each page for the README.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import data
from tests.support.airflow import airflow_env, prepare_airflow_home
from tests.support.processes import VENV_BIN, forestops_argv, free_port, running


@dataclass
class TrainedModel:
    name: str
    tracking_uri: str
    versions: dict[str, dict] = field(default_factory=dict)  # version -> {"run_id", "metrics"}
    champion: str = ""
    challenger: str = ""


@dataclass(frozen=True)
class AirflowApi:
    url: str
    username: str
    password: str


@contextlib.contextmanager
def data_api(folder: Path, rows: list[list[str]], batch_seconds: int = 600) -> Iterator[str]:
    """``forestops datasource`` on a free port serving ``rows`` from a CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = data.write_csv(folder / "rows.csv", rows)
    port = free_port()
    env = {
        "FORESTOPS_DATA_PATH": str(csv_path),
        "FORESTOPS_STATE_DIR": str(folder / "state"),
        "FORESTOPS_HOME": str(folder),
        "FORESTOPS_BATCH_SECONDS": str(batch_seconds),
    }
    url = f"http://127.0.0.1:{port}"
    argv = forestops_argv("datasource", "--port", str(port))
    with running("data API", argv, folder / "datasource.log", f"{url}/health", env):
        yield url


def ingest(database_url: str, data_api_url: str, runs: int = 2, group_number: int = 1) -> list:
    """Real ingestion runs (what each covertype_ingest run does) into ``database_url``."""
    from forestops.ingest.pipeline import ingest_once
    from forestops.settings import load_settings

    settings = load_settings(
        database_url=database_url, datasource_url=data_api_url, group_number=group_number, http_retries=0
    )
    return [ingest_once(settings) for _ in range(runs)]


def _confusion_matrix_png(labels, predicted, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    display = ConfusionMatrixDisplay.from_predictions(labels, predicted)
    display.figure_.savefig(path)
    plt.close(display.figure_)
    return path


def train_and_register(tracking_uri: str, rows: list[list[str]], folder: Path, name: str | None = None) -> TrainedModel:
    """Two versions trained with the training package's pipelines, registered as the train DAG does.

    The better of the two by f1_macro holds @champion, the other @challenger;
    each run logs accuracy, f1_macro and confusion_matrix.png like the
    training runs.
    The name is unique by default, so other tests sharing the MLflow server
    never see these versions.
    """
    import mlflow
    from sklearn.metrics import accuracy_score, f1_score

    from forestops import schema
    from forestops.training.candidates import build_pipeline, fit_pipeline
    from forestops.training.registry import log_and_register

    records = [schema.normalise_raw_row(row) for row in rows]
    frame = schema.feature_frame(records)
    labels = [r[schema.LABEL] for r in records]
    cut = int(len(records) * 0.8)
    model = TrainedModel(name=name or f"ui_covertype_{uuid.uuid4().hex[:8]}", tracking_uri=tracking_uri)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    try:
        mlflow.set_experiment(model.name)
        for candidate, params in (("baseline", {}), ("random_forest", {"n_estimators": 20})):
            pipeline = fit_pipeline(build_pipeline(candidate, params), frame.iloc[:cut], labels[:cut])
            predicted = pipeline.predict(frame.iloc[cut:])
            metrics = {
                "accuracy": accuracy_score(labels[cut:], predicted),
                "f1_macro": f1_score(labels[cut:], predicted, average="macro"),
                "training_rows": float(cut),
            }
            with mlflow.start_run(run_name=candidate) as run:
                mlflow.log_metrics(metrics)
                picture_dir = folder / f"cm-{candidate}"
                picture_dir.mkdir(parents=True, exist_ok=True)
                mlflow.log_artifact(
                    str(_confusion_matrix_png(labels[cut:], predicted, picture_dir / "confusion_matrix.png"))
                )
                version = log_and_register(
                    pipeline, frame.iloc[:50], model.name, tags={"primary_metric": "f1_macro", "candidate": candidate}
                )
            model.versions[version] = {"run_id": run.info.run_id, "metrics": metrics}
        ranked = sorted(model.versions, key=lambda v: model.versions[v]["metrics"]["f1_macro"], reverse=True)
        model.champion, model.challenger = ranked
        for alias, version in (("champion", model.champion), ("challenger", model.challenger)):
            client.set_registered_model_alias(model.name, alias, version)
            client.set_model_version_tag(model.name, version, "decision", alias)
    finally:
        mlflow.set_tracking_uri(previous_uri)
    return model


@contextlib.contextmanager
def inference_api(model: TrainedModel, folder: Path) -> Iterator[str]:
    """``forestops inference`` serving ``model``'s @champion; yields once it is ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "FORESTOPS_MLFLOW_TRACKING_URI": model.tracking_uri,
        "FORESTOPS_MODEL_NAME": model.name,
        "FORESTOPS_HOME": str(folder),
    }
    argv = forestops_argv("inference", "--port", str(port))
    with running("inference API", argv, folder / "inference.log", f"{url}/ready", env, timeout=180):
        yield url


@contextlib.contextmanager
def airflow_api(home: Path) -> Iterator[AirflowApi]:
    """A real ``airflow api-server`` (no scheduler) knowing the project's two DAGs.

    The metadata database is a private SQLite one; ``dags reserialize`` stores
    the DAGs so they can be listed and triggered.  Runs triggered here stay
    queued, since no scheduler runs: enough for the UI's REST calls.
    """
    home = prepare_airflow_home(home)
    password = uuid.uuid4().hex
    passwords = home / "passwords.json"
    passwords.write_text(f'{{"admin": "{password}"}}')
    env = {
        **airflow_env(home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
    }
    airflow = str(VENV_BIN / "airflow")
    result = subprocess.run(
        [airflow, "dags", "reserialize"], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow dags reserialize failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--apps", "core"]
    with running("airflow api-server", argv, home / "api-server.log", f"{url}/api/v2/monitor/health", env, 180):
        yield AirflowApi(url=url, username="admin", password=password)


@contextlib.contextmanager
def ui_app(folder: Path, settings: dict[str, str]) -> Iterator[str]:
    """The real ``forestops ui`` process, configured with ``FORESTOPS_*`` ``settings``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {f"FORESTOPS_{k.upper()}": v for k, v in settings.items()}
    env.setdefault("FORESTOPS_HOME", str(folder / "home"))
    argv = forestops_argv("ui", "--port", str(port))
    with running("forestops ui", argv, folder / "ui.log", f"{url}/_stcore/health", env):
        yield url
