"""The fast predictors against the logged pipeline, and the request arrays against the pydantic path.

Each candidate family is fitted by the training package (small settings),
saved and loaded back with skops as the registry hands it to the service,
and its fast predictor must give the loaded pipeline's own ``predict_proba``
on 10,000 real rows (generated ones without ../shared): same classes,
probabilities within 1e-6.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from forestops import schema
from forestops.serving import arrays, contract, predictors
from forestops.serving.predictors import RowBlock, build_predictor
from forestops.training.candidates import CANDIDATES, build_pipeline, fit_pipeline
from tests.support.data import sample_rows

pytestmark = pytest.mark.unit

FIT_ROWS = 3_000
CHECK_ROWS = 10_000
SMALL = {
    "lightgbm": {"n_estimators": 30, "num_leaves": 31},
    "hist_gradient_boosting": {"max_iter": 30, "max_leaf_nodes": 31},
    "random_forest": {"n_estimators": 20},
    "baseline": {},
}
EXPECTED_KIND = {
    "lightgbm": predictors.LIGHTGBM_FOREST,
    "hist_gradient_boosting": predictors.HGB_FOREST,
    "random_forest": predictors.ONE_HOT_ARRAY,
    "baseline": predictors.ONE_HOT_ARRAY,
}


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread():
    """OpenMP busy-waits: on a shared, loaded machine HistGradientBoosting with every core crawls."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [schema.normalise_raw_row(r) for r in sample_rows(FIT_ROWS + CHECK_ROWS)]


def _logged(pipeline):
    """The pipeline as the service gets it: written and read back with skops."""
    import skops.io

    blob = skops.io.dumps(pipeline)
    return skops.io.loads(blob, trusted=skops.io.get_untrusted_types(data=blob))


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_fast_predictor_matches_the_logged_pipeline_on_10000_rows(rows, candidate):
    assert set(SMALL) == set(CANDIDATES)
    features = schema.feature_frame(rows[:FIT_ROWS])
    labels = [r[schema.LABEL] for r in rows[:FIT_ROWS]]
    logged = _logged(fit_pipeline(build_pipeline(candidate, SMALL[candidate]), features, labels))
    choice = build_predictor(logged)
    assert choice.fallback is None
    assert choice.predictor.kind == EXPECTED_KIND[candidate]

    check = schema.feature_frame(rows[FIT_ROWS:])
    want = logged.predict_proba(check)
    got = choice.predictor.predict_proba(RowBlock.from_frame(check))
    assert got.shape == want.shape == (CHECK_ROWS, len(logged.classes_))
    np.testing.assert_array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))
    assert np.max(np.abs(got - want)) <= 1e-6


def test_a_predictor_that_does_not_match_gives_way_to_the_next_and_says_why(rows, monkeypatch):
    features = schema.feature_frame(rows[:FIT_ROWS])
    labels = [r[schema.LABEL] for r in rows[:FIT_ROWS]]
    pipeline = fit_pipeline(build_pipeline("lightgbm", SMALL["lightgbm"]), features, labels)
    forest = predictors.LightGBMForestPredictor.predict_proba
    monkeypatch.setattr(
        predictors.LightGBMForestPredictor, "predict_proba", lambda self, block: forest(self, block) + 1e-4
    )
    choice = build_predictor(pipeline)
    assert choice.predictor.kind == predictors.LIGHTGBM_BOOSTER
    assert choice.fallback.startswith("lightgbm-forest: probabilities differ")

    booster = predictors.LightGBMPredictor.predict_proba
    monkeypatch.setattr(predictors.LightGBMPredictor, "predict_proba", lambda self, block: booster(self, block) * 0.5)
    choice = build_predictor(pipeline)
    assert choice.predictor.kind == predictors.PIPELINE
    assert "lightgbm-forest: probabilities differ" in choice.fallback
    assert "lightgbm-booster: probabilities differ" in choice.fallback


def test_something_that_is_not_one_of_our_pipelines_is_served_through_itself():
    from sklearn.dummy import DummyClassifier

    frame = schema.feature_frame([schema.example_features()] * 3)
    model = DummyClassifier().fit(frame, [0, 1, 1])
    choice = build_predictor(model)
    assert choice.predictor.kind == predictors.PIPELINE and choice.fallback is None


# -- request bodies: the array path accepts exactly what the pydantic path accepts, with the same values


def _pydantic_block(body: bytes) -> RowBlock:
    return arrays.block_from_instances(contract.parse_request(body).instances)


def test_array_parsing_gives_the_pydantic_paths_arrays(rows):
    records = [{c: r[c] for c in schema.FEATURE_COLUMNS} for r in rows[:2_000]]
    records[0][schema.WILDERNESS_AREA] = "Comanche Peak"
    records[1][schema.SOIL_TYPE] = "7745"
    records[2][schema.SOIL_TYPE] = "soil_type29"
    body = orjson.dumps({"instances": records})
    fast = arrays.parse_block(body)
    assert fast is not None
    slow = _pydantic_block(body)
    np.testing.assert_array_equal(fast.numbers, slow.numbers)
    np.testing.assert_array_equal(fast.codes, slow.codes)
    canonical = [schema.normalise_features(r) for r in records]  # feature_frame takes canonical codes
    frame = RowBlock.from_frame(schema.feature_frame(canonical))
    np.testing.assert_array_equal(fast.numbers, frame.numbers)
    np.testing.assert_array_equal(fast.codes, frame.codes)


@pytest.mark.parametrize(
    "change",
    [
        {"Elevation": 9001},
        {"Slope": -1},
        {"Aspect": "12"},  # valid, but a string: the pydantic path decides
        {"Aspect": 12.0},
        {"Aspect": 12.5},
        {"Hillshade_9am": True},
        {"Horizontal_Distance_To_Roadways": 2**63},
        {"Vertical_Distance_To_Hydrology": None},
        {"Wilderness_Area": "Yosemite"},
        {"Soil_Type": 7745},
        {"Soil_Type": ["C7745"]},
        {"Colour": "green"},
    ],
)
def test_anything_unusual_in_any_row_goes_to_the_pydantic_path(change):
    instances = [dict(schema.example_features()) for _ in range(50)]
    instances[37].update(change)
    assert arrays.parse_block(orjson.dumps({"instances": instances})) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"instances": []}',
        b'{"instances": {}}',
        b'{"instances": [1]}',
        b'{"instances": [], "explain": 1}',
        orjson.dumps({"instances": [schema.example_features()] * (contract.MAX_INSTANCES + 1)}),
    ],
)
def test_bodies_of_the_wrong_shape_go_to_the_pydantic_path(body):
    assert arrays.parse_block(body) is None


def test_a_missing_field_goes_to_the_pydantic_path():
    row = dict(schema.example_features())
    row.pop("Slope")
    assert arrays.parse_block(orjson.dumps({"instances": [row]})) is None


def test_rendered_predictions_are_the_bytes_of_the_per_row_objects():
    rng = np.random.default_rng(3)
    names = schema.COVER_TYPES
    ref = {"name": "covertype", "version": "12", "alias": "champion"}
    for n in (1, 2, 777):
        proba = rng.dirichlet(np.full(schema.N_CLASSES, 0.3), size=n)
        proba[0, 3] = 0.0
        class_ids = np.argmax(proba, axis=1)
        expected = orjson.dumps(
            {
                "model": ref,
                "predictions": [
                    {"cover_type": k, "cover_type_name": names[k], "probabilities": dict(zip(names, p, strict=True))}
                    for k, p in zip(class_ids.tolist(), proba.tolist(), strict=True)
                ],
            }
        )
        assert arrays.render_predictions(ref, class_ids, proba) == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [({"Elevation": -5}, "Elevation"), ({"Soil_Type": "C9999"}, "Soil_Type"), ({"Aspect": 1.5}, "Aspect")],
)
def test_a_bad_row_in_a_big_request_gets_the_pydantic_paths_422(change, field):
    """Big bodies take the array path; a problem in row 150 must still be named exactly as for one row."""
    from fastapi.testclient import TestClient

    from forestops.serving.app import create_app
    from forestops.settings import load_settings

    app = create_app(load_settings(mlflow_tracking_uri="http://127.0.0.1:9", admin_token=None))
    client = TestClient(app, raise_server_exceptions=False)
    instances = [dict(schema.example_features()) for _ in range(200)]
    one = client.post("/predict", json={"instances": [{**instances[0], **change}]})
    instances[150].update(change)
    big = client.post("/predict", json={"instances": instances})
    assert one.status_code == big.status_code == 422
    [problem] = big.json()["detail"]
    [single] = one.json()["detail"]
    assert problem["loc"] == ["body", "instances", 150, field]
    assert problem["message"] == single["message"].replace("instances[0]", "instances[150]")
    assert client.post("/predict", json={"instances": [dict(schema.example_features())] * 200}).status_code == 503
