"""Prometheus metrics: HTTP metrics from the instrumentator plus what the model does.

Each app gets its own registry so that several apps in one process (tests)
do not collide on metric names.  With several uvicorn workers
(``forestops.serving.server``) prometheus_client runs in multiprocess mode:
every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and
whichever worker answers ``/metrics`` reports all of them (counters summed;
the served version is the one a live worker set most recently).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_fastapi_instrumentator import Instrumentator, metrics

from forestops import schema
from forestops.serving.champion import ServedModel


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.served_version = Gauge(
            "forestops_served_model_version",
            "Registry version of the model being served (0: none loaded).",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )
        self.predictions = Counter(
            "forestops_predictions",
            "Rows predicted, by predicted cover type.",
            ["cover_type"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "forestops_model_load_failures",
            "Champion versions that could not be loaded (the previous model kept serving).",
            registry=self.registry,
        )
        self.refused_models = Counter(
            "forestops_model_refusals",
            "Champion versions refused because loading them could run code (not skops, or untrusted types).",
            registry=self.registry,
        )
        self._by_class = [self.predictions.labels(name) for name in schema.COVER_TYPES]
        # The instrumentator's usual request metrics (http_requests_total, http_request_duration_*, sizes),
        # kept as a function so that ``record_request`` writes the same samples for the routes it does not see.
        self._http_samples = metrics.default(registry=self.registry)

    def instrument(self, app: FastAPI) -> None:
        instrumentator = Instrumentator(registry=self.registry, excluded_handlers=["/metrics"])
        if self._http_samples is not None:
            instrumentator.add(self._http_samples)
        instrumentator.instrument(app).expose(app, endpoint="/metrics", include_in_schema=True, tags=["operations"])

    def record_request(self, scope: MutableMapping[str, Any], status: int, seconds: float, response_bytes: int) -> None:
        """Count a request answered outside the instrumented stack (``predict_route``) as the instrumentator would."""
        if self._http_samples is None:
            return
        response = Response(status_code=status, headers={"content-length": str(response_bytes)})
        served = metrics.Info(
            request=Request(scope),
            response=response,
            method=scope["method"],
            modified_handler=scope["path"],
            modified_status=f"{status // 100}xx",  # the instrumentator groups status codes by default
            modified_duration=seconds,
            modified_duration_without_streaming=seconds,
        )
        self._http_samples(served)

    def record_predictions(self, model: ServedModel, class_ids: np.ndarray) -> None:
        counts = np.bincount(class_ids, minlength=schema.N_CLASSES)
        for class_id, count in enumerate(counts.tolist()):
            if count:
                self._by_class[class_id].inc(count)

    def record_served(self, model_name: str, version: str | None) -> None:
        self.served_version.labels(model_name).set(int(version) if version and version.isdigit() else 0)
