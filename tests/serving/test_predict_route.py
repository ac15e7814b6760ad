"""``POST /predict`` answered in front of FastAPI gives what FastAPI's own route gives, and counts the same.

Two apps from ``create_app``, the second with ``PredictRoute`` taken out so
that its ``/predict`` requests go through FastAPI's stack (the body limit,
the instrumentator, the router, the route and its exception handlers).
Both serve the same small LightGBM model; every request is sent to both and
the status, headers that matter and body bytes must be equal, and so must
the request metrics of ``/metrics`` (counts and size sums; durations
differ).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from forestops import schema
from forestops.serving.app import create_app
from forestops.serving.champion import ServedModel
from forestops.serving.predict_route import PredictRoute
from forestops.serving.predictors import build_predictor
from forestops.settings import load_settings
from forestops.training.candidates import build_pipeline, fit_pipeline
from tests.support.data import sample_rows

pytestmark = pytest.mark.unit

LIMIT = 65_536
EXAMPLE = schema.example_features()


@pytest.fixture(scope="module")
def model() -> ServedModel:
    rows = [schema.normalise_raw_row(r) for r in sample_rows(2_000)]
    pipeline = fit_pipeline(
        build_pipeline("lightgbm", {"n_estimators": 20, "num_leaves": 15}),
        schema.feature_frame(rows),
        [r[schema.LABEL] for r in rows],
    )
    choice = build_predictor(pipeline)
    class_ids = np.asarray(pipeline.classes_).astype(np.int64)
    return ServedModel("covertype", "3", None, {}, datetime.now(UTC), pipeline, class_ids, choice.predictor)


@contextlib.contextmanager
def _client(in_front: bool) -> Iterator[TestClient]:
    # Nothing listens on port 9: the registry check fails at once and the poller waits an hour.
    settings = load_settings(
        mlflow_tracking_uri="http://127.0.0.1:9", admin_token=None, max_request_bytes=LIMIT, model_poll_seconds=3600
    )
    app = create_app(settings)
    if not in_front:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not PredictRoute]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def clients(monkeypatch) -> Iterator[tuple[TestClient, TestClient]]:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with _client(in_front=True) as fast, _client(in_front=False) as slow:
        yield fast, slow


def _requests() -> list[tuple[str, bytes, dict[str, str]]]:
    json_type = {"content-type": "application/json"}
    many = [dict(EXAMPLE) for _ in range(200)]  # big enough for the array path
    bad_in_many = [*many[:150], {**EXAMPLE, "Slope": -1}, *many[151:]]
    return [
        ("one row", orjson.dumps({"instances": [EXAMPLE]}), json_type),
        ("two rows, strings", orjson.dumps({"instances": [{k: str(v) for k, v in EXAMPLE.items()}] * 2}), json_type),
        ("200 rows", orjson.dumps({"instances": many}), json_type),
        ("a bad row among 200", orjson.dumps({"instances": bad_in_many}), json_type),
        ("a value out of range", orjson.dumps({"instances": [{**EXAMPLE, "Elevation": 99999}]}), json_type),
        ("a missing field", orjson.dumps({"instances": [{k: v for k, v in EXAMPLE.items() if k != "Slope"}]}), {}),
        ("no rows", orjson.dumps({"instances": []}), json_type),
        ("not JSON", b"{instances: oops", json_type),
        ("an empty body", b"", {}),
        ("over the byte limit", orjson.dumps({"instances": [EXAMPLE] * 400}), json_type),
    ]


def _answers(client: TestClient) -> list[tuple[int, str, str | None, bytes]]:
    answers = []
    for _, body, headers in _requests():
        response = client.post("/predict", content=body, headers=headers)
        answers.append((response.status_code, response.headers["content-type"], response.headers.get("connection"),
                        response.content))  # fmt: skip
    return answers


def _predict_samples(client: TestClient) -> dict[tuple, float]:
    """The /predict samples of the request metrics, durations left out (they differ)."""
    wanted = {"http_requests_total", "http_request_size_bytes_count", "http_request_size_bytes_sum",
              "http_response_size_bytes_count", "http_response_size_bytes_sum", "http_request_duration_seconds_count",
              "http_request_duration_highr_seconds_count"}  # fmt: skip
    samples = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name in wanted and sample.labels.get("handler", "/predict") == "/predict":
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_predict_in_front_of_fastapi_answers_and_counts_as_fastapi_s_route(clients, model):
    fast, slow = clients
    names = [name for name, _, _ in _requests()]
    no_model_fast, no_model_slow = _answers(fast), _answers(slow)
    assert no_model_fast == no_model_slow
    for client in (fast, slow):
        client.app.state.service.holder.current = model
    with_model_fast, with_model_slow = _answers(fast), _answers(slow)
    for name, got, want in zip(names, with_model_fast, with_model_slow, strict=True):
        assert got == want, name

    statuses = dict(zip(names, [status for status, *_ in with_model_fast], strict=True))
    assert statuses == {
        "one row": 200, "two rows, strings": 200, "200 rows": 200, "a bad row among 200": 422,
        "a value out of range": 422, "a missing field": 422, "no rows": 422, "not JSON": 422, "an empty body": 422,
        "over the byte limit": 413,
    }  # fmt: skip
    assert {status for status, *_ in no_model_fast} == {503, 422, 413}
    answer = orjson.loads(with_model_fast[0][3])
    assert answer["model"]["version"] == "3" and len(answer["predictions"]) == 1
    assert with_model_fast[-1][2] == "close"  # the unread rest of an oversized body ends the connection

    # The same samples, except that FastAPI's stack never counted the two 413s: its body limit answers
    # outside the instrumentator.  Here they are counted like any other answer.
    counted, fastapi_counted = _predict_samples(fast), _predict_samples(slow)
    oversized_body, refusal = _requests()[-1][1], with_model_fast[-1][3]
    added_by_name = {
        "http_request_size_bytes_sum": 2 * len(oversized_body),
        "http_response_size_bytes_sum": 2 * len(refusal),
        "http_requests_total": 0,  # by status, below
    }
    for (name, labels), value in counted.items():
        added = added_by_name.get(name, 2)  # every count: two more
        if name == "http_requests_total" and ("status", "4xx") in labels:
            added = 2
        assert value == fastapi_counted.get((name, labels), 0) + added, (name, labels)
    assert counted.keys() == fastapi_counted.keys()
    total = {labels: value for (name, labels), value in counted.items() if name == "http_requests_total"}
    by_status = {dict(labels)["status"]: value for labels, value in total.items()}
    assert by_status == {"2xx": 3, "4xx": 14, "5xx": 3}  # 422s and 413s in both rounds, 503s without the model


def test_other_methods_on_predict_still_reach_fastapi(clients):
    fast, slow = clients
    for client in (fast, slow):
        response = client.get("/predict")
        assert response.status_code == 405
    assert fast.get("/openapi.json").json()["paths"]["/predict"]["post"]["summary"].startswith("Predict")
