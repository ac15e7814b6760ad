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


def test_the_valid_rows_of_a_file_with_bad_rows_are_kept_with_their_lines():
    rows = data.generate_rows(6)
    rows[1][schema.RAW_COLUMNS.index("Aspect")] = "north"
    rows[4] = rows[4][:5]
    parsed = parse_csv(csv_bytes(rows))
    assert isinstance(parsed, CsvRejected)
    assert parsed.valid is not None and parsed.bad_lines == 2
    assert parsed.valid.lines == [2, 4, 5, 7]
    assert parsed.valid.labels == [int(rows[i][-1]) for i in (0, 2, 3, 5)]
    assert parsed.valid.records[1] == schema.normalise_features(
        dict(zip(schema.FEATURE_COLUMNS, rows[2][:12], strict=True))
    )
    assert parsed.summary.startswith("2 of 6 rows have problems")


@pytest.mark.parametrize(
    "content",
    [
        csv_bytes(data.generate_rows(3), header=["Elevaton", *schema.RAW_COLUMNS[1:]]),  # the header
        csv_bytes(data.generate_rows(3)) + b"1," + b"9" * 200_000 + b"\n",  # unreadable: the rest is unknown
    ],
    ids=["bad header", "unreadable"],
)
def test_a_problem_with_the_file_itself_keeps_no_rows(content):
    parsed = parse_csv(content)
    assert isinstance(parsed, CsvRejected)
    assert parsed.valid is None and parsed.summary.startswith("The file was not accepted")


def test_a_file_whose_every_row_is_bad_offers_nothing():
    rows = data.generate_rows(2)
    for row in rows:
        row[0] = "high"
    parsed = parse_csv(csv_bytes(rows))
    assert isinstance(parsed, CsvRejected) and parsed.valid is None


def test_the_download_of_a_partial_batch_starts_with_the_line_numbers():
    rows = data.generate_rows(3)
    rows[1][0] = "high"
    parsed = parse_csv(csv_bytes(rows))
    assert isinstance(parsed, CsvRejected) and parsed.valid is not None
    batch = parsed.valid
    out = predictions_csv(batch.records, [{"predicted_cover_type": 2}] * 2, batch.lines).decode().splitlines()
    assert out[0] == ",".join(["line", *schema.FEATURE_COLUMNS, "predicted_cover_type"])
    assert [line.split(",")[0] for line in out[1:]] == ["2", "4"]
