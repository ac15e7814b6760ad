"""Run the inference API under uvicorn with the configured number of workers."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from forestops.logs import setup_logging
from forestops.settings import Settings

# The watcher asks the registry again at the next poll, so MLflow's client
# need not retry for minutes (its defaults) while a registry is down; a user
# may still set these variables.
MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# uvicorn's supervisor kills a worker that does not answer its ping within
# this time (default 5 s).  A spawned worker only starts answering once it
# has imported uvicorn and unpickled its config: on a busy machine that took
# longer than 5 s, and the supervisor killed every worker, over and over.
WORKER_HEALTHCHECK_SECONDS = 60


def prepare_metrics_dir(workers: int) -> Path | None:
    """A fresh, empty folder for prometheus_client's multiprocess files when there are several workers.

    Exported as ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts (each
    worker imports prometheus_client with it set).  Files left by an earlier
    start would add their counts to this one's, so the folder is emptied
    first; a folder the operator chose is kept, a temporary one is removed
    when the service stops (the returned path).
    """
    if workers <= 1:
        os.environ.pop(METRICS_DIR_VARIABLE, None)
        return None
    given = os.environ.get(METRICS_DIR_VARIABLE)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        return None
    folder = Path(tempfile.mkdtemp(prefix="forestops-metrics-"))
    os.environ[METRICS_DIR_VARIABLE] = str(folder)
    return folder


def serve(settings: Settings) -> int:
    import uvicorn

    for variable, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(variable, value)  # inherited by the workers
    own_metrics_dir = prepare_metrics_dir(settings.inference_workers)
    setup_logging()
    # Workers are separate processes that build their own app (and read the
    # same FORESTOPS_* environment) through the factory.
    uvicorn.run(
        "forestops.serving.app:create_app",
        factory=True,
        host=settings.inference_host,
        port=settings.inference_port,
        workers=settings.inference_workers,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    if own_metrics_dir is not None:
        shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return 0
