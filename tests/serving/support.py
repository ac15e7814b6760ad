"""Helpers for the inference API tests: models trained by the package, a running service."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from forestops import schema
from tests.support.data import sample_rows
from tests.support.processes import ServiceProcess, forestops_argv, free_port

ADMIN_TOKEN = "serving-test-token"
POLL_SECONDS = 0.3
TRAIN_ROWS = 1500


def unique_model_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def feature_records(raw_rows: list[list[str]]) -> list[dict[str, str]]:
    """Raw rows (13 strings) as request instances: the 12 features, values as strings."""
    return [dict(zip(schema.FEATURE_COLUMNS, row[: len(schema.FEATURE_COLUMNS)], strict=True)) for row in raw_rows]


def train_and_register(tracking_uri: str, model_name: str, seed: int = 0, candidate: str = "lightgbm") -> str:
    """Fit a small pipeline with the training package and register it; returns the version."""
    import mlflow

    from forestops.training.candidates import build_pipeline, fit_pipeline
    from forestops.training.registry import log_and_register

    rows = [schema.normalise_raw_row(r) for r in sample_rows(TRAIN_ROWS)]
    features = schema.feature_frame(rows)
    labels = [r[schema.LABEL] for r in rows]
    params = {"n_estimators": 20, "num_leaves": 15} if candidate == "lightgbm" else {"n_estimators": 20}
    pipeline = fit_pipeline(build_pipeline(candidate, params, seed=seed), features, labels)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"serving-tests-{model_name}")
    with mlflow.start_run():
        mlflow.log_metrics({"accuracy": 0.5 + seed / 100, "f1_macro": 0.4 + seed / 100})
        return log_and_register(pipeline, features, model_name)


def register_unloadable(tracking_uri: str, model_name: str) -> str:
    """A version of ``model_name`` that has no sklearn flavour, as a broken training run might leave."""
    import mlflow
    import mlflow.pyfunc

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [0] * len(model_input)

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"serving-tests-{model_name}")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Constant(), registered_model_name=model_name)
    return str(info.registered_model_version)


def set_champion(tracking_uri: str, model_name: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(model_name, "champion", version)


@dataclass
class Service:
    url: str
    process: ServiceProcess
    model_name: str

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"{what} did not happen within {timeout}s; service log:\n{self.log_tail()}")

    def served_version(self) -> str | None:
        return httpx.get(f"{self.url}/model", timeout=10).json()["version"]

    def log_tail(self) -> str:
        from tests.support.processes import tail

        return tail(self.process.log_path, 60)


@contextlib.contextmanager
def inference_service(tracking_uri: str, model_name: str, log_dir: Path, **env: str) -> Iterator[Service]:
    """The real ``forestops inference`` process on a free port."""
    port = free_port()
    settings_env = {
        "FORESTOPS_MLFLOW_TRACKING_URI": tracking_uri,
        "FORESTOPS_MODEL_NAME": model_name,
        "FORESTOPS_MODEL_POLL_SECONDS": str(POLL_SECONDS),
        "FORESTOPS_ADMIN_TOKEN": ADMIN_TOKEN,
        "FORESTOPS_INFERENCE_HOST": "127.0.0.1",
        "FORESTOPS_INFERENCE_PORT": str(port),
        "FORESTOPS_INFERENCE_WORKERS": "1",
        "FORESTOPS_HOME": str(log_dir / "home"),
        **env,
    }
    # cwd: anything the process writes relative to its folder stays out of the repository.
    log_path = log_dir / f"{model_name}.log"
    process = ServiceProcess("forestops inference", forestops_argv("inference"), log_path, settings_env, cwd=log_dir)
    url = f"http://127.0.0.1:{port}"
    with process:
        process.wait_http(f"{url}/health", timeout=90)
        yield Service(url=url, process=process, model_name=model_name)
