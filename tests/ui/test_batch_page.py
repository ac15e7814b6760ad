"""The batch page: bad files named by line and column; good files predicted by the real inference API."""

import httpx
import pytest

from forestops import schema
from tests.support import data
from tests.ui.helpers import button, page
from tests.ui.test_csv_batch import csv_bytes


@pytest.mark.unit
def test_a_malformed_file_is_refused_with_its_line_and_column(ui_env):
    ui_env()
    rows = data.generate_rows(5)
    rows[2][schema.RAW_COLUMNS.index(schema.SOIL_TYPE)] = "C9999"
    at = page("batch").run()
    at.file_uploader[0].set_value(("bad.csv", csv_bytes(rows), "text/csv"))
    at.run()
    assert not at.exception
    [error] = at.error
    assert "line 4, column Soil_Type" in error.value
    assert "'C9999'" in error.value
    problems = at.dataframe[0].value
    assert problems.iloc[0].to_dict()["line"] == 4
    assert not [b for b in at.button if b.label.startswith("Predict")]  # nothing can be sent


@pytest.mark.integration
def test_a_good_file_is_predicted_and_offered_for_download(ui_env, ui_inference, ui_rows):
    ui_env(inference_url=ui_inference)
    rows = ui_rows[:40]
    at = page("batch").run()
    at.file_uploader[0].set_value(("rows.csv", csv_bytes(rows), "text/csv"))
    at.run()
    at = button(at, "Predict 40 rows").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert len(table) == 40
    instances = [schema.normalise_features(dict(zip(schema.FEATURE_COLUMNS, r[:12], strict=True))) for r in rows]
    expected = httpx.post(f"{ui_inference}/predict", json={"instances": instances}, timeout=60).json()
    assert table["predicted_cover_type"].tolist() == [p["cover_type"] for p in expected["predictions"]]
    assert "by model" in at.success[0].value and f"version {expected['model']['version']}" in at.success[0].value
    assert at.metric[0].label == "Predictions matching Cover_Type"
    assert at.get("download_button")
