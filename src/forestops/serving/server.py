"""Run the inference API under uvicorn with the configured number of workers."""

from __future__ import annotations

import logging

from forestops.settings import Settings


def serve(settings: Settings) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
