"""Reading uploaded CSV files: every problem named by line and column, nothing half-accepted."""

import gzip

import pytest

from forestops import schema
from forestops.ui.csv_batch import CsvBatch, CsvRejected, parse_csv, predictions_csv
from tests.support import data

pytestmark = pytest.mark.unit


def csv_bytes(rows, header=schema.RAW_COLUMNS) -> bytes:
    lines = [",".join(header)] if header else []
    lines += [",".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def test_a_raw_file_with_header_is_read_with_its_labels():
    rows = data.generate_rows(25)
    parsed = parse_csv(csv_bytes(rows))
    assert isinstance(parsed, CsvBatch)
    assert len(parsed.records) == 25
    assert parsed.labels == [int(r[-1]) for r in rows]
    assert parsed.records[0] == schema.normalise_features(dict(zip(schema.FEATURE_COLUMNS, rows[0][:12], strict=True)))


def test_without_header_or_label_the_columns_are_in_raw_order():
    rows = [r[:12] for r in data.generate_rows(5)]
    parsed = parse_csv(csv_bytes(rows, header=None))
    assert isinstance(parsed, CsvBatch)
    assert parsed.labels is None
    assert [r[schema.WILDERNESS_AREA] for r in parsed.records] == [r[10] for r in rows]


def test_variants_are_normalised_as_ingestion_does():
    row = data.generate_rows(1)[0]
    row[10], row[11] = "Comanche Peak", row[11][1:]
    parsed = parse_csv(csv_bytes([row]))
    assert isinstance(parsed, CsvBatch)
    assert parsed.records[0][schema.WILDERNESS_AREA] == "Commanche"
    assert parsed.records[0][schema.SOIL_TYPE] == "C" + row[11]


def test_a_bad_value_is_named_by_line_and_column():
    rows = data.generate_rows(6)
    rows[3][schema.RAW_COLUMNS.index("Slope")] = "steep"
    parsed = parse_csv(csv_bytes(rows))
    assert isinstance(parsed, CsvRejected)
    problem = parsed.problems[0]
    assert (problem.line, problem.column) == (5, "Slope")  # header is line 1, rows[3] is line 5
    assert "'steep'" in problem.message and "integer" in problem.message
    assert "line 5, column Slope" in parsed.summary


def test_every_problem_is_reported_not_only_the_first():
    rows = data.generate_rows(4)
    rows[0][schema.RAW_COLUMNS.index("Hillshade_9am")] = "300"
    rows[2] = rows[2][:7]
    parsed = parse_csv(csv_bytes(rows))
    assert isinstance(parsed, CsvRejected)
    assert [(p.line, p.column) for p in parsed.problems] == [(2, "Hillshade_9am"), (4, "-")]
    assert "7 fields, expected 13" in parsed.problems[1].message


def test_a_header_with_a_missing_or_unknown_column_is_refused():
    rows = [r[1:12] for r in data.generate_rows(2)]
    header = ["Elevaton", *schema.FEATURE_COLUMNS[1:]]
    parsed = parse_csv(csv_bytes([["1", *r] for r in rows], header=header))
    assert isinstance(parsed, CsvRejected)
    assert {(p.line, p.column) for p in parsed.problems} == {(1, "Elevaton"), (1, "Elevation")}


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (",".join(schema.RAW_COLUMNS).encode() + b"\n", "no data rows"), (b"\xff\xfe\x00x", "UTF-8")],
)
def test_files_without_rows_are_refused_with_a_reason(content, message):
    parsed = parse_csv(content)
    assert isinstance(parsed, CsvRejected)
    assert message in parsed.problems[0].message


def test_a_gzip_file_is_not_mistaken_for_text():
    parsed = parse_csv(gzip.compress(csv_bytes(data.generate_rows(3))))
    assert isinstance(parsed, CsvRejected)


def test_the_download_holds_inputs_and_predictions():
    parsed = parse_csv(csv_bytes(data.generate_rows(2)))
    out = predictions_csv(parsed.records, [{"predicted_cover_type": 1}, {"predicted_cover_type": 4}]).decode()
    lines = out.splitlines()
    assert lines[0] == ",".join([*schema.FEATURE_COLUMNS, "predicted_cover_type"])
    assert lines[2].endswith(",4")
