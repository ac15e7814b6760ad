"""Loading, validating and converting the data the API serves (no server, no download)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forestops import schema
from forestops.datasource.dataset import (
    DataSetError,
    build_from_uci,
    load_dataset,
    load_raw_file,
    onehot_to_raw,
    split_holdout,
    uci_cache_path,
)
from forestops.settings import load_settings
from tests.support.data import generate_rows, write_csv

pytestmark = pytest.mark.unit

ROWS = generate_rows(300, seed=11)


def served_rows(dataset) -> list[list[str]]:
    return [json.loads(fragment) for fragment in dataset.fragments]


@pytest.mark.parametrize("name", ["rows.csv", "rows.csv.gz", "compressed-without-suffix"])
def test_a_valid_file_is_served_as_it_is_in_file_order(tmp_path, name):
    path = write_csv(tmp_path / name, ROWS, compress=name != "rows.csv")
    dataset = load_raw_file(path)
    assert dataset.row_count == len(ROWS) and dataset.holdout_rows == 0
    assert served_rows(dataset) == ROWS


def test_variants_the_schema_accepts_are_served_normalised(tmp_path):
    row = ["3020.0", " 101", "16", "67", "-6", "4621", "245", "216", "95", "2024", "Commanche Peak", "7745", "1"]
    dataset = load_raw_file(write_csv(tmp_path / "variants.csv", [*ROWS[:5], row]))
    assert served_rows(dataset)[-1] == [
        "3020", "101", "16", "67", "-6", "4621", "245", "216", "95", "2024", "Commanche", "C7745", "1",
    ]  # fmt: skip


def with_bad_value(line: int, column: str, value: str) -> list[list[str]]:
    rows = [list(row) for row in ROWS]
    rows[line - 2][schema.RAW_COLUMNS.index(column)] = value  # line 1 is the header
    return rows


@pytest.mark.parametrize(
    ("line", "column", "value", "expected"),
    [
        (7, "Soil_Type", "C9999", "'C9999' is not valid; expected one of the 40 soil codes"),
        (5, "Elevation", "high", "'high' is not valid; expected an integer"),
        (300, "Hillshade_Noon", "256", "'256' is not valid; expected an integer in [0, 255]"),
        (2, "Wilderness_Area", "Yosemite", "'Yosemite' is not valid; expected one of Rawah"),
        (44, "Cover_Type", "7", "'7' is not valid; expected an integer in [0, 6]"),
        (9, "Slope", "", "'' is not valid; expected an integer"),
    ],
)
def test_the_first_bad_value_names_file_line_and_column(tmp_path, line, column, value, expected):
    rows = with_bad_value(line, column, value)
    rows[-1][0] = "also bad, but later"
    path = write_csv(tmp_path / "bad.csv.gz", rows)
    with pytest.raises(DataSetError) as raised:
        load_raw_file(path)
    assert str(raised.value).startswith(f"{path}, line {line}, column {column}: {expected}")
    assert (raised.value.line, raised.value.column) == (line, column)


def test_a_wrong_header_names_the_column(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(schema.RAW_COLUMNS).replace("Slope", "slope") + "\n" + ",".join(ROWS[0]) + "\n")
    with pytest.raises(DataSetError, match=r"header\.csv, line 1, column 3 \(Slope\): header 'slope' should be"):
        load_raw_file(path)


def test_a_short_header_and_a_short_row_are_named(tmp_path):
    short_header = tmp_path / "short-header.csv"
    short_header.write_text(",".join(schema.RAW_COLUMNS[:-1]) + "\n")
    with pytest.raises(DataSetError, match=r"line 1: the header has 12 columns, expected 13"):
        load_raw_file(short_header)
    short_row = tmp_path / "short-row.csv"
    write_csv(short_row, ROWS[:3])
    with short_row.open("a") as handle:
        handle.write("1,2,3\n")
    with pytest.raises(DataSetError, match=r"short-row\.csv, line 5: 3 fields, expected 13"):
        load_raw_file(short_row)


def test_empty_missing_and_truncated_files_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataSetError, match=r"empty.csv: the file is empty; expected the header line Elevation,"):
        load_raw_file(tmp_path / "empty.csv")
    with pytest.raises(DataSetError, match=r"nowhere.csv: no such file"):
        load_raw_file(tmp_path / "nowhere.csv")
    write_csv(tmp_path / "header-only.csv", [])
    with pytest.raises(DataSetError, match="0 rows to serve"):
        load_raw_file(tmp_path / "header-only.csv")
    whole = gzip.compress(write_csv(tmp_path / "whole.csv", ROWS).read_bytes())
    (tmp_path / "truncated.csv.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataSetError, match=r"truncated\.csv\.gz, line \d+: cannot be read"):
        load_raw_file(tmp_path / "truncated.csv.gz")


def test_a_data_set_smaller_than_the_batch_count_is_refused(tmp_path):
    settings = load_settings(data_path=write_csv(tmp_path / "tiny.csv", ROWS[:9]), batch_count=10)
    with pytest.raises(DataSetError, match=r"9 rows to serve .* at least 10 are needed"):
        load_dataset(settings)


TRICKY = st.one_of(
    st.sampled_from(["1", "01", " 7 ", "7.0", "7.5", "-3", "1e3", "", "nan", "inf", "0x10", "\uff17", "255", "256"]),
    st.sampled_from(["Rawah", "rawah", "Comanche", "Cache la Poudre", "Neota ", "C7745", "7745", "soil_type3", "C1"]),
    st.text(max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TRICKY, min_size=13, max_size=13))
def test_the_memoised_normaliser_gives_the_schemas_verdict(values):
    def verdict(normalise):
        try:
            return tuple(normalise(values))
        except schema.ValueProblem as problem:
            return ("refused", problem.column, problem.value)

    normalise = schema.MemoNormaliser()
    expected = verdict(lambda v: schema.normalise_raw_row(v).values())
    assert verdict(normalise) == expected
    assert verdict(normalise) == expected  # again, now from the memo


def test_holdout_is_decided_by_content_alone():
    rows = generate_rows(4000, seed=3)
    served, holdout = split_holdout(rows, 0.2)
    assert len(served) + len(holdout) == len(rows)
    assert 0.17 < len(holdout) / len(rows) < 0.23
    _, shuffled_holdout = split_holdout(list(reversed(rows)), 0.2)
    assert sorted(map(tuple, shuffled_holdout)) == sorted(map(tuple, holdout))
    # Normalised records and variant spellings of the same rows fall on the same side.
    records = [schema.normalise_raw_row(row) for row in rows]
    _, record_holdout = split_holdout(records, 0.2)
    assert [schema.row_digest(r) for r in record_holdout] == [
        schema.row_digest(schema.normalise_raw_row(r)) for r in holdout
    ]
    assert split_holdout(rows, 0.0) == (rows, [])
    with pytest.raises(ValueError, match="fraction"):
        split_holdout(rows, 1.0)


def test_holdout_is_independent_of_the_training_evaluation_buckets():
    rows = generate_rows(6000, seed=5)
    _, holdout = split_holdout(rows, 0.2)
    in_evaluation = [schema.digest_bucket(schema.row_digest(schema.normalise_raw_row(r))) < 20 for r in holdout]
    assert 0.15 < sum(in_evaluation) / len(holdout) < 0.25


def test_the_api_never_serves_the_holdout(tmp_path):
    rows = generate_rows(2000, seed=9)
    served, holdout = split_holdout(rows, 0.1)
    dataset = load_raw_file(write_csv(tmp_path / "rows.csv", rows), holdout_fraction=0.1)
    assert served_rows(dataset) == served and dataset.holdout_rows == len(holdout) > 0


# -- the UCI one-hot layout ------------------------------------------------------


def to_onehot(rows: list[list[str]], layout: str) -> pd.DataFrame:
    """Rows in the UCI one-hot layout, labels 1..7; ``layout`` is "sklearn" (X_0..) or "uci" (X1..)."""

    def name(prefix: str, index: int) -> str:
        return f"{prefix}_{index}" if layout == "sklearn" else f"{prefix}{index + 1}"

    frame = pd.DataFrame({c: [float(r[i]) for r in rows] for i, c in enumerate(schema.NUMERIC_COLUMNS)})
    for prefix, codes, position in (
        (schema.WILDERNESS_AREA, schema.WILDERNESS_CODES, schema.RAW_COLUMNS.index(schema.WILDERNESS_AREA)),
        (schema.SOIL_TYPE, schema.SOIL_CODES, schema.RAW_COLUMNS.index(schema.SOIL_TYPE)),
    ):
        for index, code in enumerate(codes):
            frame[name(prefix, index)] = [float(r[position] == code) for r in rows]
    frame[schema.LABEL] = [int(r[-1]) + 1 for r in rows]
    return frame


@pytest.mark.parametrize("layout", ["sklearn", "uci"])
def test_onehot_frames_convert_to_the_raw_rows(layout):
    raw = onehot_to_raw(to_onehot(ROWS, layout))
    assert tuple(raw.columns) == schema.RAW_COLUMNS
    assert raw.astype(str).to_numpy().tolist() == ROWS


def test_broken_onehot_frames_are_refused_with_the_row_named():
    frame = to_onehot(ROWS[:20], "sklearn")
    two_soils = frame.copy()
    two_soils.loc[4, [f"Soil_Type_{i}" for i in range(40)]] = 0.0
    two_soils.loc[4, ["Soil_Type_0", "Soil_Type_1"]] = 1.0
    with pytest.raises(ValueError, match="row 4: 2 of the Soil_Type columns are 1; expected exactly one"):
        onehot_to_raw(two_soils)
    fractional = frame.copy()
    fractional.loc[6, "Elevation"] = 2500.5
    with pytest.raises(ValueError, match=r"row 6, column Elevation: .* is not an integer"):
        onehot_to_raw(fractional)
    label = frame.copy()
    label.loc[8, schema.LABEL] = 8
    with pytest.raises(ValueError, match=r"row 8, column Cover_Type: 8 is not in \[1, 7\]"):
        onehot_to_raw(label)
    with pytest.raises(ValueError, match="lacks the Wilderness_Area columns"):
        onehot_to_raw(frame.drop(columns=["Wilderness_Area_2"]))


def seed_sklearn_cache(cache_dir: Path, rows: list[list[str]]) -> None:
    """Put rows where fetch_covtype keeps its download, as it would have stored them."""
    from sklearn.datasets._base import _pkl_filepath

    frame = to_onehot(rows, "sklearn")
    folder = cache_dir / "sklearn" / "covertype"
    folder.mkdir(parents=True)
    joblib.dump(frame.drop(columns=[schema.LABEL]).to_numpy(dtype="float64"), _pkl_filepath(str(folder), "samples"))
    joblib.dump(frame[schema.LABEL].to_numpy(dtype=np.int32), _pkl_filepath(str(folder), "targets"))


def test_the_uci_build_converts_shuffles_samples_and_caches(tmp_path):
    rows = generate_rows(1500, seed=21)
    seed_sklearn_cache(tmp_path / "a", rows)
    seed_sklearn_cache(tmp_path / "b", rows)
    settings_a = load_settings(home=tmp_path, data_cache_dir=tmp_path / "a", uci_sample_rows=1000)
    settings_b = load_settings(home=tmp_path, data_cache_dir=tmp_path / "b", uci_sample_rows=1000)

    built = build_from_uci(settings_a, download=False)
    assert built == uci_cache_path(settings_a)
    served = served_rows(load_raw_file(built))
    assert len(served) == 1000 and served != rows[:1000], "a sample of shuffled rows"
    assert {tuple(r) for r in served} <= {tuple(r) for r in rows}
    assert served_rows(load_raw_file(build_from_uci(settings_b, download=False))) == served, "a fixed shuffle"

    # A later start reuses the conversion; it neither converts nor needs the download again.
    stamp = built.stat().st_mtime_ns
    for leftover in (tmp_path / "a" / "sklearn" / "covertype").iterdir():
        leftover.unlink()
    assert build_from_uci(settings_a, download=False) == built and built.stat().st_mtime_ns == stamp
    assert load_dataset(settings_a).row_count == 1000
    assert not [p for p in os.listdir(tmp_path / "a") if p.endswith(".tmp")]


def test_without_the_uci_file_the_message_says_what_to_set(tmp_path):
    settings = load_settings(home=tmp_path)
    with pytest.raises(DataSetError, match=r"cannot get the UCI covertype file .* set FORESTOPS_DATA_PATH"):
        build_from_uci(settings, download=False)
