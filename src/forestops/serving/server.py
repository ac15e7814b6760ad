"""Run the inference API under uvicorn with the configured number of workers."""

from __future__ import annotations

import os

from forestops.logs import setup_logging
from forestops.settings import Settings

# The watcher asks the registry again at the next poll, so MLflow's client
# need not retry for minutes (its defaults) while a registry is down; a user
# may still set these variables.
MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def serve(settings: Settings) -> int:
    import uvicorn

    for variable, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(variable, value)  # inherited by the workers
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
    )
    return 0
