"""The request contract and the app's answers to bad input, in process (no model, no registry).

These drive the real FastAPI app through Starlette's test client without its
lifespan, so no registry is contacted: every request either fails
validation (422) or finds no model (503), which is what is checked here.
The live service is exercised in the integration modules.
"""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forestops import schema
from forestops.serving import contract, frames
from forestops.serving.app import create_app
from forestops.settings import load_settings

pytestmark = pytest.mark.unit

EXAMPLE = schema.example_features()


@pytest.fixture(scope="module")
def client() -> TestClient:
    # Port 9 (discard) on loopback: nothing answers, and nothing is asked anyway (no lifespan).
    app = create_app(load_settings(mlflow_tracking_uri="http://127.0.0.1:9", admin_token=None))
    return TestClient(app, raise_server_exceptions=False)


def _instance(**changes):
    row = dict(EXAMPLE)
    for key, value in changes.items():
        if value is _DROP:
            row.pop(key)
        else:
            row[key] = value
    return row


_DROP = object()


@pytest.mark.parametrize(
    ("body", "field", "value", "allowed_part"),
    [
        ({"instances": [_instance(Elevation=99999)]}, "Elevation", 99999, "[0, 9000]"),
        ({"instances": [_instance(Slope=-1)]}, "Slope", -1, "[0, 90]"),
        (
            {"instances": [_instance(Horizontal_Distance_To_Roadways=2**64)]},
            "Horizontal_Distance_To_Roadways",
            str(2**64),
            "64-bit",
        ),
        ({"instances": [_instance(Aspect="north")]}, "Aspect", "north", "an integer"),
        ({"instances": [_instance(Aspect=12.5)]}, "Aspect", 12.5, "an integer"),
        ({"instances": [_instance(Hillshade_9am=True)]}, "Hillshade_9am", True, "[0, 255]"),
        ({"instances": [_instance(Wilderness_Area="Yosemite")]}, "Wilderness_Area", "Yosemite", "Rawah"),
        ({"instances": [_instance(Soil_Type="C9999")]}, "Soil_Type", "C9999", "40 soil codes"),
        ({"instances": [_instance(Soil_Type=None)]}, "Soil_Type", None, "40 soil codes"),
        ({"instances": [_instance(Elevation=_DROP)]}, "Elevation", None, "[0, 9000]"),
        ({"instances": [_instance(Colour="green")]}, "Colour", "green", "only the fields"),
        ({"instances": [EXAMPLE], "explain": True}, "explain", True, "only the field 'instances'"),
        ({"instances": []}, "instances", None, "1 to 10,000"),
        ({"instances": EXAMPLE}, "instances", None, "1 to 10,000"),
        ({"rows": [EXAMPLE]}, "rows", None, "only the field 'instances'"),
    ],
)
def test_each_kind_of_bad_field_is_a_422_naming_field_value_and_domain(client, body, field, value, allowed_part):
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    problem = next(p for p in problems if p["field"] == field)
    assert allowed_part in problem["allowed"]
    assert field in problem["message"] and allowed_part in problem["message"]
    if value is not None:
        assert problem["input"] == value
        assert repr(value) in problem["message"]


def test_the_failing_row_is_named_by_its_index(client):
    body = {"instances": [EXAMPLE, EXAMPLE, _instance(Elevation=-5)]}
    problem = client.post("/predict", json=body).json()["detail"][0]
    assert problem["loc"] == ["body", "instances", 2, "Elevation"]
    assert problem["message"].startswith("instances[2].Elevation: -5 is not valid")


def test_too_many_rows_is_a_422_that_does_not_echo_the_rows(client):
    response = client.post("/predict", json={"instances": [EXAMPLE] * (contract.MAX_INSTANCES + 1)})
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["field"] == "instances" and problem["input"] == "a list of 10001 items"
    assert len(response.content) < 2000


@pytest.mark.parametrize(
    "content", [b"", b"{", b"not json", b"[1, 2]", b"null", b'{"instances": "all"}', "é".encode("latin-1")]
)
def test_malformed_bodies_are_422_not_500(client, content):
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["message"]


def test_valid_input_without_a_model_is_a_503_saying_why(client):
    response = client.post("/predict", json={"instances": [EXAMPLE]})
    assert response.status_code == 503
    detail = response.json()["detail"]
    # This app never ran its start-up, so the registry has not been asked yet.
    assert "no model loaded yet" in detail and "http://127.0.0.1:9" in detail
    assert client.get("/ready").status_code == 503
    assert client.get("/health").json() == {"status": "ok", "model_loaded": False}
    model = client.get("/model").json()
    assert model["version"] is None and model["message"] == detail


def test_admin_reload_is_refused_while_no_token_is_configured(client):
    response = client.post("/admin/reload", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert "FORESTOPS_ADMIN_TOKEN" in response.json()["detail"]


def test_spelling_variants_are_normalised_to_the_canonical_codes():
    variant = {k: str(v) for k, v in EXAMPLE.items()} | {"Wilderness_Area": " rawah wilderness area", "Soil_Type": 7745}
    parsed = contract.PredictRequest.model_validate({"instances": [variant]}).instances[0]
    assert parsed.model_dump() == EXAMPLE


def test_the_fast_frame_equals_the_schema_frame():
    rows = [schema.normalise_raw_row(r) for r in __import__("tests.support.data", fromlist=["x"]).sample_rows(300)]
    records = [{c: r[c] for c in schema.FEATURE_COLUMNS} for r in rows]
    parsed = contract.PredictRequest.model_validate({"instances": records}).instances
    pd.testing.assert_frame_equal(frames.frame_from_columns(frames.columns_of(parsed)), schema.feature_frame(records))


def test_the_openapi_document_carries_a_working_example(client):
    document = client.get("/openapi.json").json()
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    example = body["examples"]["one row"]["value"]
    contract.PredictRequest.model_validate(example)
    assert set(document["components"]["schemas"]["Instance"]["properties"]) == set(schema.FEATURE_COLUMNS)
    assert client.get("/docs").status_code == 200


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(st.sampled_from([*schema.FEATURE_COLUMNS, "extra"]), _json_values, max_size=4),
    drop=st.sets(st.sampled_from(schema.FEATURE_COLUMNS), max_size=2),
)
def test_mutated_rows_never_cause_a_server_error(client, changes, drop):
    row = {k: v for k, v in {**EXAMPLE, **changes}.items() if k not in drop}
    response = client.post("/predict", json={"instances": [row]})
    assert response.status_code in (422, 503), response.text
