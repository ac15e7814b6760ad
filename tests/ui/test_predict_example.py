"""'Fill with an example row' draws a real collected row and shows its true class next to the prediction."""

import httpx
import pytest

from forestops import schema
from tests.training.conftest import insert_raw_rows
from tests.ui.helpers import button, page

pytestmark = pytest.mark.integration


@pytest.fixture
def stored_rows(tmp_path, ui_rows):
    url = f"sqlite:///{tmp_path / 'covertype.db'}"
    insert_raw_rows(url, ui_rows[:40])
    return url


def _features(row) -> tuple:
    return tuple(sorted((column, row[column]) for column in schema.FEATURE_COLUMNS))


def test_the_example_is_a_stored_row_and_its_true_class_is_shown(ui_env, ui_inference, stored_rows, ui_rows):
    from forestops.ui.clients.collection import random_stored_row

    stored = {_features(schema.normalise_raw_row(values)) for values in ui_rows[:40]}
    drawn = {_features(random_stored_row(stored_rows)[0]) for _ in range(60)}
    assert len(drawn) > 1 and drawn <= stored  # drawn at random from what was collected

    ui_env(inference_url=ui_inference, database_url=stored_rows)
    at = page("predict").run()
    at = button(at, "Fill with an example row").click().run()
    filled = {column: at.session_state[f"predict.{column}"] for column in schema.FEATURE_COLUMNS}
    assert _features(filled) in stored
    features, truth = at.session_state["predict.example_truth"]
    assert features == filled

    at = button(at, "Predict").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    answer = httpx.post(f"{ui_inference}/predict", json={"instances": [filled]}, timeout=30).json()
    predicted = answer["predictions"][0]["cover_type"]
    [said] = [i.value for i in at.info if "True class of this collected row" in i.value]
    assert f"**{schema.COVER_TYPES[truth]}** (class {truth})" in said
    assert ("the model is right" if predicted == truth else "the model is wrong") in said
