"""Prometheus metrics: HTTP metrics from the instrumentator plus what the model does.

Each app gets its own registry so that several apps in one process (tests)
do not collide on metric names.  With several uvicorn workers
(``forestops.serving.server``) prometheus_client runs in multiprocess mode:
every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and
whichever worker answers ``/metrics`` reports all of them (counters summed;
the served version is the one a live worker set most recently).
"""

from __future__ import annotations

import numpy as np
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_fastapi_instrumentator import Instrumentator

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

    def instrument(self, app: FastAPI) -> None:
        Instrumentator(registry=self.registry, excluded_handlers=["/metrics"]).instrument(app).expose(
            app, endpoint="/metrics", include_in_schema=True, tags=["operations"]
        )

    def record_predictions(self, model: ServedModel, class_ids: np.ndarray) -> None:
        counts = np.bincount(class_ids, minlength=schema.N_CLASSES)
        for class_id, count in enumerate(counts.tolist()):
            if count:
                self._by_class[class_id].inc(count)

    def record_served(self, model_name: str, version: str | None) -> None:
        self.served_version.labels(model_name).set(int(version) if version and version.isdigit() else 0)
