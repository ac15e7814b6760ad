"""A model served by ``forestops inference`` on 127.0.0.1, for the serving benchmarks.

A throwaway MLflow server (SQLite backend, local artefacts) in a folder, a
model trained with the package (the LightGBM candidate with its default
parameters, the usual champion) on real rows when ../shared is there, else
generated ones, registered with the package's ``log_and_register`` under the
``champion`` alias, and one ``forestops inference`` worker serving it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from forestops import schema

from . import data
from .processes import forestops_argv, free_port, running
from .servers import mlflow_server

MODEL_NAME = "covertype-bench"
TRAIN_ROWS = 20_000
REQUEST_ROWS = 3_000  # distinct rows the load generators cycle through, none of them trained on
START_TIMEOUT = 240.0  # seconds a server may take to answer: the benchmarks run on loaded machines


@dataclass(frozen=True)
class RegisteredModel:
    tracking_uri: str
    name: str
    version: str


@dataclass(frozen=True)
class InferenceServer:
    url: str
    pid: int  # the server's process, whose CPU time the benchmarks count


def train_and_register(tracking_uri: str, name: str = MODEL_NAME) -> str:
    """Train on ``TRAIN_ROWS`` rows, register the model as ``name`` and point ``champion`` at it; its version."""
    import mlflow

    from forestops.training.candidates import build_pipeline, fit_pipeline
    from forestops.training.registry import log_and_register

    rows = [schema.normalise_raw_row(r) for r in data.sample_rows(TRAIN_ROWS)]
    features = schema.feature_frame(rows)
    labels = [r[schema.LABEL] for r in rows]
    started = time.perf_counter()
    pipeline = fit_pipeline(build_pipeline("lightgbm"), features, labels)
    print(f"trained lightgbm (package defaults) on {len(rows):,} rows in {time.perf_counter() - started:.1f} s")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench-serving")
    version = log_and_register(pipeline, features, name)
    mlflow.MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, "champion", version)
    return version


def request_rows() -> list[dict]:
    """``REQUEST_ROWS`` rows of features, as the inference API takes them, from after the training rows."""
    raw = data.sample_rows(TRAIN_ROWS + REQUEST_ROWS)[TRAIN_ROWS:]
    return [schema.normalise_features(dict(zip(schema.FEATURE_COLUMNS, r[:12], strict=True))) for r in raw]


@contextlib.contextmanager
def registered_model(folder: Path) -> Iterator[RegisteredModel]:
    """An MLflow server with its database and artefacts in ``folder``, holding a freshly trained champion."""
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    with mlflow_server(folder, backend, folder / "artifacts", timeout=START_TIMEOUT) as server:
        yield RegisteredModel(server.url, MODEL_NAME, train_and_register(server.url))


@contextlib.contextmanager
def inference_server(folder: Path, model: RegisteredModel, workers: int = 1) -> Iterator[InferenceServer]:
    """``forestops inference`` (one worker unless told) serving ``model``'s champion, its home and log in ``folder``.

    Its port is picked here, just before the start (training takes minutes).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "FORESTOPS_MLFLOW_TRACKING_URI": model.tracking_uri,
        "FORESTOPS_MODEL_NAME": model.name,
        "FORESTOPS_INFERENCE_WORKERS": str(workers),
        "FORESTOPS_INFERENCE_HOST": "127.0.0.1",
        "FORESTOPS_INFERENCE_PORT": str(port),
        "FORESTOPS_HOME": str(folder / f"home-{workers}w"),
    }
    argv = forestops_argv("inference")
    log_path = folder / f"forestops-inference-{workers}w.log"
    with running("forestops-inference", argv, log_path, f"{url}/ready", env, START_TIMEOUT, cwd=folder) as service:
        yield InferenceServer(url, service.pid)
