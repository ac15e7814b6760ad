"""Every metric the Grafana dashboard queries is on the /metrics of a real inference API.

The service runs as ``forestops inference`` against a registered champion and
a database holding a monitored batch and a finished training, so the
request metrics, the prediction counters and the monitoring gauges it
re-reads from the tables are all there to be found.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from forestops.monitoring import store
from forestops.names import TrainingStatus
from forestops.storage import tables
from forestops.storage.db import ensure_schema, make_engine
from tests.deploy.test_metrics_stack import DASHBOARD
from tests.serving.support import (
    feature_records,
    inference_service,
    set_champion,
    train_and_register,
    unique_model_name,
)
from tests.support.data import sample_rows
from tests.training.conftest import insert_raw_rows

pytestmark = pytest.mark.integration

METRIC = re.compile(r"\b((?:forestops|http)_[a-z_]+)\b")


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {name for panel in dashboard["panels"] for t in panel["targets"] for name in METRIC.findall(t["expr"])}


def exported(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_dashboard_query_names_a_metric_the_inference_api_exports(mlflow_server, fresh_database_url, tmp_path):
    insert_raw_rows(fresh_database_url, sample_rows(30), batch_number=4)
    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as connection:
        store.upsert(connection, store.BatchResult(1, 4, "1", 30, 0.9, 0.8, {"1": 0.9}, 30, drift_share=0.5))
        connection.execute(
            tables.training_log.insert().values(
                started_at=now - timedelta(seconds=42), finished_at=now, status=TrainingStatus.TRAINED, rows_used=30
            )
        )
    engine.dispose()
    name = unique_model_name("dashboard")
    version = train_and_register(mlflow_server.url, name)
    set_champion(mlflow_server.url, name, version)
    env = {"FORESTOPS_DATABASE_URL": fresh_database_url, "FORESTOPS_MONITOR_METRICS_REFRESH_SECONDS": "0.5"}
    with inference_service(mlflow_server.url, name, tmp_path, **env) as service:
        service.wait_for(lambda: service.served_version() == version, "loading the champion")
        answer = httpx.post(f"{service.url}/predict", json={"instances": feature_records(sample_rows(3))}, timeout=30)
        assert answer.status_code == 200, answer.text
        service.wait_for(
            lambda: "forestops_batch_accuracy{" in httpx.get(f"{service.url}/metrics").text, "the monitoring gauges"
        )
        text = httpx.get(f"{service.url}/metrics").text
    names = exported(text)
    wanted = dashboard_metrics()
    assert {"forestops_batch_accuracy", "forestops_batch_drift_share", "http_requests_total"} <= wanted
    assert wanted <= names, f"queried but not exported: {sorted(wanted - names)}"
    assert "forestops_training_duration_seconds 42.0" in text
    assert 'forestops_batch_rows_stored{batch="4",group="1"} 30.0' in text
