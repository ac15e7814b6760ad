"""The predict form against the real inference API serving a registered champion."""

import httpx
import pytest

from forestops import schema
from tests.ui.helpers import button, page

pytestmark = pytest.mark.integration


def test_the_form_is_bounded_by_the_data_contract(ui_env):
    ui_env()
    at = page("predict").run()
    inputs = {n.key.removeprefix("predict."): n for n in at.number_input}
    assert set(inputs) == set(schema.NUMERIC_COLUMNS)
    for feature in schema.NUMERIC_FEATURES:
        assert inputs[feature.name].min == feature.minimum
        assert inputs[feature.name].max == feature.maximum
    wilderness, soil = at.selectbox
    assert wilderness.options == [f"{c} — {d}" for c, d in schema.WILDERNESS_AREAS.items()]
    assert len(soil.options) == len(schema.SOIL_CODES)


def test_the_example_filler_sets_every_input(ui_env):
    ui_env()
    at = page("predict").run()
    at = button(at, "Fill with an example row").click().run()
    for column, value in schema.example_features().items():
        assert at.session_state[f"predict.{column}"] == value


def test_the_form_shows_the_class_the_inference_api_returns(ui_env, ui_inference):
    ui_env(inference_url=ui_inference)
    at = page("predict").run()
    at = button(at, "Fill with an example row").click().run()
    at.number_input(key="predict.Elevation").set_value(2600)
    at = button(at, "Predict").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    features = {**schema.example_features(), "Elevation": 2600}
    answer = httpx.post(f"{ui_inference}/predict", json={"instances": [features]}, timeout=30).json()
    expected = answer["predictions"][0]
    assert at.success[0].value == (
        f"Predicted cover type: **{expected['cover_type_name']}** (class {expected['cover_type']})"
    )
    assert any(f"version {answer['model']['version']} (@champion)" in c.value for c in at.caption), at.caption
    chart = at.get("vega_lite_chart")
    assert chart, "no probability chart"
