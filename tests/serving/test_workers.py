"""Three uvicorn workers, one set of metrics: /metrics counts every request whichever worker answers.

The real ``forestops inference`` with ``FORESTOPS_INFERENCE_WORKERS=3``
serves a registered champion; requests arrive on fresh connections, so the
kernel spreads them over the workers, and whichever worker answers
``/metrics`` must report the sums over all of them.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from forestops import schema
from tests.serving.support import (
    feature_records,
    inference_service,
    set_champion,
    train_and_register,
    unique_model_name,
)
from tests.support.data import sample_rows

pytestmark = pytest.mark.integration

REQUESTS = 45


def _samples(text: str, name: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def _predict_requests(worker_file) -> float:
    """/predict requests one worker counted, from its own multiprocess file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    return sum(
        sample.value
        for metric in MultiProcessCollector.merge([str(worker_file)])
        for sample in metric.samples
        if sample.name == "http_requests_total" and sample.labels.get("handler") == "/predict"
    )


def test_counters_summed_over_three_workers_equal_the_requests_sent(mlflow_server, tmp_path):
    name = unique_model_name("serving-workers")
    version = train_and_register(mlflow_server.url, name, seed=3)
    set_champion(mlflow_server.url, name, version)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Left over from an earlier start (unreadable): the service must clear it, or /metrics would fail.
    (metrics_dir / "counter_1.db").write_bytes(b"not a metrics file")
    rows = feature_records(sample_rows(60))
    env = {"FORESTOPS_INFERENCE_WORKERS": "3", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with inference_service(mlflow_server.url, name, tmp_path, **env) as service:
        # Three workers load the model at once (a loaded machine needs time); fresh connections
        # land on any worker, so nine answers in a row with the version mean all of them serve.
        service.wait_for(
            lambda: all(service.served_version() == version for _ in range(9)), "the workers loading", timeout=300
        )
        statuses: dict[int, int] = {}
        predicted_rows = 0
        for i in range(REQUESTS):
            instances = rows[i % 20 : i % 20 + 1 + i % 3]  # 1 to 3 rows
            if i % 9 == 4:
                instances = [{**instances[0], "Elevation": -1}]  # a 422
            response = httpx.post(f"{service.url}/predict", json={"instances": instances}, timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                predicted_rows += len(response.json()["predictions"])
        assert set(statuses) <= {200, 422, 503}, statuses
        assert statuses.get(200, 0) > REQUESTS // 2, statuses
        per_worker = {path.name: _predict_requests(path) for path in metrics_dir.glob("counter_*.db")}
        assert sum(1 for n in per_worker.values() if n) >= 2, f"one worker took every request: {per_worker}"

        text = httpx.get(f"{service.url}/metrics", timeout=30).text
        requests = _samples(text, "http_requests_total")
        by_status: dict[str, float] = {}
        for sample in requests:
            if sample.labels.get("handler") == "/predict":
                status = sample.labels["status"]
                by_status[status] = by_status.get(status, 0) + sample.value
        counted = {int(s[0]) * 100: v for s, v in by_status.items()} if all("xx" in s for s in by_status) else None
        if counted is not None:  # the instrumentator groups status codes (2xx, 4xx, 5xx)
            sent = {}
            for code, number in statuses.items():
                sent[code // 100 * 100] = sent.get(code // 100 * 100, 0) + number
            assert counted == sent, text
        else:
            assert {int(s): v for s, v in by_status.items()} == statuses, text
        predictions = _samples(text, "forestops_predictions_total")
        assert sum(s.value for s in predictions) == predicted_rows
        assert {s.labels["cover_type"] for s in predictions} <= set(schema.COVER_TYPES)
        served = _samples(text, "forestops_served_model_version")
        assert [s.value for s in served] == [float(version)], text

        info = httpx.get(f"{service.url}/model", timeout=10).json()
        assert info["predictor"] == "lightgbm-forest" and info["predictor_fallback"] is None
