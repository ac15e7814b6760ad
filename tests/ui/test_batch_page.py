"""The batch page: bad files named by line and column; good files predicted by the real inference API."""

import httpx
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from forestops import schema
from tests.support import data
from tests.ui.helpers import button, page
from tests.ui.test_csv_batch import csv_bytes


@pytest.mark.unit
def test_a_malformed_file_is_refused_with_its_line_and_column(ui_env):
    ui_env()
    rows = data.generate_rows(5)
    header = [*schema.RAW_COLUMNS[:11], "Soil", schema.LABEL]
    at = page("batch").run()
    at.file_uploader[0].set_value(("bad.csv", csv_bytes(rows, header=header), "text/csv"))
    at.run()
    assert not at.exception
    [error] = at.error
    assert "not accepted" in error.value and "line 1, column Soil" in error.value
    problems = at.dataframe[0].value
    assert problems.iloc[0].to_dict()["line"] == 1
    assert not [b for b in at.button if b.label.startswith("Predict")]  # nothing can be sent


@pytest.mark.unit
def test_bad_rows_are_listed_with_the_contracts_message_and_the_valid_ones_offered(ui_env):
    ui_env()
    rows = data.generate_rows(5)
    rows[2][schema.RAW_COLUMNS.index(schema.SOIL_TYPE)] = "C9999"
    at = page("batch").run()
    at.file_uploader[0].set_value(("bad.csv", csv_bytes(rows), "text/csv"))
    at.run()
    assert not at.exception and not at.error
    [warning] = at.warning
    assert "1 of 5 rows have problems" in warning.value and "line 4, column Soil_Type" in warning.value
    problems = at.dataframe[0].value
    assert problems.iloc[0].to_dict()["line"] == 4
    with pytest.raises(schema.ValueProblem) as contract:
        schema.normalise_value(schema.SOIL_TYPE, "C9999")
    assert problems.iloc[0]["problem"] == f"'C9999' is not valid; expected {contract.value.allowed}"
    assert button(at, "Predict the 4 valid rows")


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


@pytest.mark.integration
def test_the_valid_rows_of_a_file_with_bad_lines_are_predicted_with_their_line_numbers(
    ui_env, ui_inference, ui_rows, monkeypatch
):
    ui_env(inference_url=ui_inference)
    downloads = []  # what the page hands to st.download_button, read where Streamlit stores it
    keep = MemoryMediaFileStorage.load_and_get_id

    def recording(storage, data, mimetype, kind, filename=None):
        downloads.append(data)
        return keep(storage, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    rows = [list(r) for r in ui_rows[:30]]
    rows[2][schema.RAW_COLUMNS.index("Slope")] = "steep"  # line 4 (the header is line 1)
    rows[10] = rows[10][:7]  # line 12
    at = page("batch").run()
    at.file_uploader[0].set_value(("rows.csv", csv_bytes(rows), "text/csv"))
    at.run()
    problems = at.dataframe[0].value
    assert problems[["line", "column"]].values.tolist() == [[4, "Slope"], [12, "-"]]
    at = button(at, "Predict the 28 valid rows").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    kept = [(line, row) for line, row in enumerate(rows, start=2) if line not in (4, 12)]
    table = at.dataframe[1].value
    assert table["line"].tolist() == [line for line, _ in kept]
    instances = [schema.normalise_features(dict(zip(schema.FEATURE_COLUMNS, r[:12], strict=True))) for _, r in kept]
    expected = httpx.post(f"{ui_inference}/predict", json={"instances": instances}, timeout=60).json()
    assert table["predicted_cover_type"].tolist() == [p["cover_type"] for p in expected["predictions"]]
    assert "28 predictions" in at.success[0].value and "2 lines with problems left out" in at.success[0].value
    assert at.metric[0].label == "Predictions matching Cover_Type"
    assert at.get("download_button")
    [download] = [d for d in downloads if isinstance(d, bytes) and d.startswith(b"line,")]
    assert [row.split(",")[0] for row in download.decode().splitlines()[1:]] == [str(line) for line, _ in kept]
