"""The real ``forestops inference`` process against the real MLflow server, champion first.

A model trained by the training package is registered and made champion
before the service starts; the tests then check what clients see.
"""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from forestops import schema
from tests.serving.support import (
    ADMIN_TOKEN,
    TRAIN_ROWS,
    feature_records,
    inference_service,
    set_champion,
    train_and_register,
    unique_model_name,
)
from tests.support.data import sample_rows

pytestmark = pytest.mark.integration

EXAMPLE = schema.example_features()


@pytest.fixture(scope="module")
def champion(mlflow_server) -> tuple[str, str]:
    name = unique_model_name("serving-live")
    version = train_and_register(mlflow_server.url, name, seed=0)
    set_champion(mlflow_server.url, name, version)
    return name, version


@pytest.fixture(scope="module")
def service(mlflow_server, champion, tmp_path_factory):
    name, version = champion
    with inference_service(mlflow_server.url, name, tmp_path_factory.mktemp("inference-live")) as running:
        running.wait_for(lambda: running.served_version() == version, "loading the champion at start-up")
        yield running


def test_predictions_equal_the_logged_models_own_predictions(service, mlflow_server, champion):
    import mlflow.pyfunc
    import mlflow.sklearn

    name, version = champion
    raw = sample_rows(TRAIN_ROWS + 400)[TRAIN_ROWS:]  # rows the model did not see
    records = feature_records(raw)
    with service.client() as client:
        response = client.post("/predict", json={"instances": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": name, "version": version, "alias": "champion"}

    uri = f"models:/{name}/{version}"
    mlflow.set_tracking_uri(mlflow_server.url)
    frame = schema.feature_frame([schema.normalise_features(r) for r in records])
    as_strings = frame.astype({c: str for c in schema.CATEGORICAL_COLUMNS})  # what the pyfunc signature says
    expected_classes = np.asarray(mlflow.pyfunc.load_model(uri).predict(as_strings)).astype(int)
    estimator = mlflow.sklearn.load_model(uri)
    expected_proba = np.zeros((len(records), schema.N_CLASSES))
    expected_proba[:, estimator.classes_.astype(int)] = estimator.predict_proba(frame)

    served_classes = np.array([p["cover_type"] for p in body["predictions"]])
    served_proba = np.array([[p["probabilities"][n] for n in schema.COVER_TYPES] for p in body["predictions"]])
    np.testing.assert_array_equal(served_classes, expected_classes)
    np.testing.assert_allclose(served_proba, expected_proba, rtol=0, atol=1e-12)
    assert [p["cover_type_name"] for p in body["predictions"]] == [schema.COVER_TYPES[c] for c in expected_classes]


def test_spelling_variants_get_the_same_answer_as_canonical_values(service):
    variant = {k: str(v) for k, v in EXAMPLE.items()} | {"Wilderness_Area": "RAWAH", "Soil_Type": "7745"}
    with service.client() as client:
        canonical = client.post("/predict", json={"instances": [EXAMPLE]}).json()["predictions"]
        varied = client.post("/predict", json={"instances": [variant]}).json()["predictions"]
    assert varied == canonical


def test_a_10000_row_request_is_answered_and_10001_rows_are_refused(service):
    with service.client() as client:
        big = client.post("/predict", json={"instances": [EXAMPLE] * 10_000})
        too_big = client.post("/predict", json={"instances": [EXAMPLE] * 10_001})
    assert big.status_code == 200 and len(big.json()["predictions"]) == 10_000
    assert too_big.status_code == 422 and too_big.json()["detail"][0]["field"] == "instances"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Elevation": 12000}, "Elevation"),
        ({"Hillshade_Noon": "bright"}, "Hillshade_Noon"),
        ({"Wilderness_Area": "Yellowstone"}, "Wilderness_Area"),
        ({"Soil_Type": "C0000"}, "Soil_Type"),
        ({"Unknown": 1}, "Unknown"),
    ],
)
def test_bad_fields_are_422_over_http(service, change, field):
    with service.client() as client:
        response = client.post("/predict", json={"instances": [EXAMPLE | change]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == field


def test_model_ready_and_metrics_describe_the_served_version(service, champion):
    name, version = champion
    with service.client() as client:
        model = client.get("/model").json()
        assert client.get("/ready").json() == {"status": "ready", "model": {"name": name, "version": version}}
        client.post("/predict", json={"instances": [EXAMPLE] * 3})
        metrics = client.get("/metrics").text
    assert model["name"] == name and model["version"] == version and model["run_id"]
    assert model["metrics"]["accuracy"] == pytest.approx(0.5)
    assert model["loaded_at"] and model["load_failure"] is None and model["registry_error"] is None
    assert re.search(rf'forestops_served_model_version\{{model="{name}"\}} {version}\.0', metrics)
    counted = re.findall(r'forestops_predictions_total\{cover_type="[^"]+"\} ([0-9.]+)', metrics)
    assert sum(float(c) for c in counted) >= 3
    assert 'http_requests_total{handler="/predict"' in metrics


def test_admin_reload_needs_the_token(service, champion):
    _, version = champion
    with service.client() as client:
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200
    assert ok.json()["outcome"] == "unchanged" and ok.json()["model"]["version"] == version


def test_docs_page_is_served(service):
    with service.client() as client:
        docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_fuzzing_predict_finds_no_server_error(service, mode):
    """Bodies generated from the OpenAPI document, valid (200) and invalid (422): never a 5xx."""
    operation = schemathesis.openapi.from_url(f"{service.url}/openapi.json")["/predict"]["POST"]
    expected = {200} if mode is schemathesis.GenerationMode.POSITIVE else {200, 422}
    seen: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        response = case.call(base_url=service.url, timeout=30)
        seen.add(response.status_code)
        assert response.status_code in expected, f"{response.status_code}: {response.text[:500]}"

    check()
    assert seen, "no request was made"


def test_service_survived_everything(service):
    assert service.process.process.poll() is None
    assert httpx.get(f"{service.url}/health").status_code == 200
