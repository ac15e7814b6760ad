"""The data contract: normalisation of every variant, and refusals that name the problem."""

import pandas as pd
import pytest

from forestops import schema

pytestmark = pytest.mark.unit

ROW = ["3020", "101", "16", "67", "6", "4621", "245", "216", "95", "2024", "Rawah", "C7745", "1"]


def test_column_lists_are_consistent():
    assert len(schema.RAW_COLUMNS) == 13
    assert schema.RAW_COLUMNS[-1] == schema.LABEL
    assert set(schema.FEATURE_COLUMNS) == set(schema.NUMERIC_COLUMNS) | set(schema.CATEGORICAL_COLUMNS)
    assert len(schema.SOIL_CODES) == 40 and len(set(schema.SOIL_CODES)) == 40
    assert schema.WILDERNESS_CODES == ("Rawah", "Neota", "Commanche", "Cache")
    assert len(schema.COVER_TYPES) == schema.N_CLASSES == 7


def test_raw_row_is_typed():
    row = schema.normalise_raw_row(ROW)
    assert row["Elevation"] == 3020 and row["Vertical_Distance_To_Hydrology"] == 6
    assert row["Wilderness_Area"] == "Rawah" and row["Soil_Type"] == "C7745" and row["Cover_Type"] == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Commanche Peak", "Commanche"),
        ("Comanche", "Commanche"),
        ("comanche peak", "Commanche"),
        ("Cache la Poudre", "Cache"),
        (" Neota ", "Neota"),
        ("Wilderness_Area1", "Rawah"),
    ],
)
def test_wilderness_variants(given, expected):
    assert schema.normalise_wilderness(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [("7745", "C7745"), (7745, "C7745"), ("c2702", "C2702"), (8776.0, "C8776"), ("Soil_Type40", "C8776")],
)
def test_soil_variants(given, expected):
    assert schema.normalise_soil(given) == expected


def test_uci_labels_shift_to_course_numbering():
    assert schema.normalise_label("1", label_base=1) == 0
    assert schema.normalise_label("7", label_base=1) == 6
    with pytest.raises(schema.ValueProblem, match=r"Cover_Type.*\[1, 7\]"):
        schema.normalise_label("0", label_base=1)
    with pytest.raises(schema.ValueProblem, match=r"Cover_Type.*\[0, 6\]"):
        schema.normalise_label("7", label_base=0)


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, "abc", r"Elevation: 'abc' is not valid; expected an integer"),
        (0, "12.5", r"Elevation: '12.5'.*an integer"),
        (1, "361", r"Aspect: '361'.*\[0, 360\]"),
        (6, "-1", r"Hillshade_9am: '-1'.*\[0, 255\]"),
        (10, "Yosemite", r"Wilderness_Area: 'Yosemite'.*Rawah, Neota, Commanche, Cache"),
        (11, "C9999", r"Soil_Type: 'C9999'.*40 soil codes"),
        (0, "", r"Elevation"),
        (0, "nan", r"Elevation"),
    ],
)
def test_bad_values_name_column_and_domain(index, value, message):
    row = list(ROW)
    row[index] = value
    with pytest.raises(schema.ValueProblem, match=message):
        schema.normalise_raw_row(row)


def test_wrong_field_count_is_named():
    with pytest.raises(schema.ValueProblem, match=r"12 fields.*13 fields"):
        schema.normalise_raw_row(ROW[:12])
    with pytest.raises(schema.ValueProblem, match="list of 13"):
        schema.normalise_raw_row("3020,101")


def test_integral_floats_and_negative_vertical_distance_are_accepted():
    row = list(ROW)
    row[0], row[4] = "3020.0", "-120"
    parsed = schema.normalise_raw_row(row)
    assert parsed["Elevation"] == 3020 and parsed["Vertical_Distance_To_Hydrology"] == -120


def test_features_refuse_unknown_and_missing_fields():
    features = schema.example_features()
    schema.normalise_features(features)
    with pytest.raises(schema.ValueProblem, match=r"Colour.*no such field"):
        schema.normalise_features({**features, "Colour": "green"})
    incomplete = dict(features)
    del incomplete["Slope"]
    with pytest.raises(schema.ValueProblem, match=r"Slope.*required"):
        schema.normalise_features(incomplete)


def test_digest_is_stable_and_variant_blind():
    a = schema.normalise_raw_row(ROW)
    variant = list(ROW)
    variant[10], variant[11] = "rawah", "7745"
    b = schema.normalise_raw_row(variant)
    assert schema.row_digest(a) == schema.row_digest(b)
    # A golden value: changing how rows hash would re-split data and break uniqueness in storage.
    assert schema.row_digest(a) == "fbbe7898667f7e2b9ab15bc1108125dd3de343cf868a4b5a741d0fcf0b029e61"
    other = dict(a, Cover_Type=2)
    assert schema.row_digest(other) != schema.row_digest(a)
    assert 0 <= schema.digest_bucket(schema.row_digest(a)) < 100


def test_feature_frame_has_fixed_categories():
    frame = schema.feature_frame([schema.example_features()])
    assert list(frame.columns) == list(schema.FEATURE_COLUMNS)
    assert list(frame["Soil_Type"].cat.categories) == list(schema.SOIL_CODES)
    assert frame["Elevation"].dtype == "int64"
    assert isinstance(frame, pd.DataFrame)
