"""Locust scenario against the forestops inference API (run by ``bench_load``; loopback only).

``PredictUser`` is the traffic being measured: mostly single-row predictions,
some 100-row batches and a look at ``/model``, with no think time.
``HealthUser`` hits ``/health`` only: the anchor, i.e. what the same server and
the same Python load generator reach when the model does no work.  The rows
come from the JSON file named by FORESTOPS_BENCH_ROWS_FILE.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from locust import HttpUser, constant, task

ROWS: list[dict] = json.loads(Path(os.environ["FORESTOPS_BENCH_ROWS_FILE"]).read_text())
BATCH_ROWS = 100


class PredictUser(HttpUser):
    wait_time = constant(0)

    @task(8)
    def single_row(self) -> None:
        self.client.post("/predict", json={"instances": [random.choice(ROWS)]}, name="/predict (1 row)")

    @task(1)
    def batch(self) -> None:
        self.client.post(
            "/predict", json={"instances": random.sample(ROWS, BATCH_ROWS)}, name=f"/predict ({BATCH_ROWS} rows)"
        )

    @task(1)
    def model(self) -> None:
        self.client.get("/model")


class HealthUser(HttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get("/health")
