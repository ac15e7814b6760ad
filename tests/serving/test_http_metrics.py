"""The HTTP metrics of /metrics: the instrumentator's default families, recorded by our own middleware.

``telemetry.HttpMetrics`` replaced prometheus-fastapi-instrumentator's
per-request middleware (about a sixth of the Python time of a single-row
/predict); the dashboard and the alerts still query the same names and
labels.  Checked here in process: the exact values after a known set of
requests, and the same exposition as the instrumentator's own middleware
gives for the same requests on a small app.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator

from forestops import schema
from forestops.serving import telemetry
from forestops.serving.app import create_app
from forestops.settings import load_settings

pytestmark = pytest.mark.unit

EXAMPLE = schema.example_features()


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{sample} not in /metrics"
    return float(match.group(1))


def test_request_metrics_count_every_request_by_handler_method_and_status_group():
    app = create_app(load_settings(mlflow_tracking_uri="http://127.0.0.1:9", admin_token=None))
    client = TestClient(app, raise_server_exceptions=False)
    bad = client.post("/predict", json={"instances": [dict(EXAMPLE, Elevation=-5)]})  # 422
    assert bad.status_code == 422
    no_model = client.post("/predict", json={"instances": [EXAMPLE]})  # 503: no model in this app
    assert no_model.status_code == 503
    assert client.get("/health").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405
    client.get("/metrics")
    text = client.get("/metrics").text

    assert _value(text, 'http_requests_total{handler="/predict",method="POST",status="4xx"}') == 1
    assert _value(text, 'http_requests_total{handler="/predict",method="POST",status="5xx"}') == 1
    assert _value(text, 'http_requests_total{handler="/health",method="GET",status="2xx"}') == 1
    assert _value(text, 'http_requests_total{handler="none",method="GET",status="4xx"}') == 1
    assert _value(text, 'http_requests_total{handler="/predict",method="GET",status="4xx"}') == 1
    assert 'handler="/metrics"' not in text  # /metrics itself is not counted
    sent = int(bad.request.headers["content-length"]) + int(no_model.request.headers["content-length"])
    assert _value(text, 'http_request_size_bytes_sum{handler="/predict"}') == sent
    answered = len(bad.content) + len(no_model.content) + len(wrong_method.content)
    assert _value(text, 'http_response_size_bytes_sum{handler="/predict"}') == answered
    assert _value(text, "http_request_duration_highr_seconds_count") == 5
    assert _value(text, 'http_request_duration_seconds_count{handler="/predict",method="POST"}') == 2
    assert _value(text, 'http_request_duration_highr_seconds_bucket{le="60.0"}') == 5


def _middleware(app: FastAPI) -> telemetry.HttpMetrics:
    layer = app.middleware_stack
    while not isinstance(layer, telemetry.HttpMetrics):
        layer = layer.app
    return layer


def test_the_handler_cache_stays_bounded_under_endless_unknown_paths():
    app = create_app(load_settings(mlflow_tracking_uri="http://127.0.0.1:9", admin_token=None))
    client = TestClient(app, raise_server_exceptions=False)
    for i in range(telemetry.HANDLER_CACHE_SIZE + 20):
        client.get(f"/scan/{i}")
    assert len(_middleware(app)._handlers) <= telemetry.HANDLER_CACHE_SIZE
    assert _value(client.get("/metrics").text, 'http_requests_total{handler="none",method="GET",status="4xx"}') == (
        telemetry.HANDLER_CACHE_SIZE + 20
    )


def _small_app(instrument) -> tuple[FastAPI, CollectorRegistry]:
    registry = CollectorRegistry()
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"item": item_id}

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        return body

    @app.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("hello")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    instrument(app, registry)
    return app, registry


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The /metrics lines, durations masked (they differ from run to run; the +Inf bucket is the count)."""
    masked = []
    for line in generate_latest(registry).decode().splitlines():
        if "_created" in line:
            continue
        name = line.split("{")[0].split(" ")[0]
        if name.startswith("http_request_duration") and not name.endswith("_count") and 'le="+Inf"' not in line:
            line = re.sub(r" [0-9.e+-]+$", " X", line)
        masked.append(line)
    return masked


def test_the_exposition_is_the_instrumentators_for_the_same_requests():
    def theirs(app, registry):
        Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app)

    def ours(app, registry):
        app.add_middleware(telemetry.HttpMetrics, registry=registry, excluded_handlers=["/metrics"])

    expositions = []
    for instrument in (theirs, ours):
        app, registry = _small_app(instrument)
        client = TestClient(app, raise_server_exceptions=False)
        client.get("/items/3")
        client.get("/items/x")  # 422
        client.post("/echo", json={"a": 1})
        client.post("/echo", content=b"{", headers={"content-type": "application/json"})
        client.get("/text")
        client.head("/text")
        client.get("/boom")  # 500
        client.get("/nowhere")
        client.get("/nowhere/metrics")  # excluded like /metrics (the instrumentator searched the raw path)
        client.put("/echo")  # 405
        expositions.append(_exposition(registry))
    assert expositions[0] == expositions[1]
