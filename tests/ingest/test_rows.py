"""Validation and response parsing: pure functions, no servers."""

from __future__ import annotations

import json

import pytest

from forestops import schema
from forestops.ingest.client import parse_portion
from forestops.ingest.connections import settings_overrides
from forestops.ingest.rows import check_rows, payload_text
from tests.support import data

pytestmark = pytest.mark.unit

GOOD = data.generate_rows(3)


def test_valid_rows_are_normalised_and_hashed_like_the_contract():
    variant = [*GOOD[0]]
    variant[10], variant[11] = "Comanche Peak", variant[11].removeprefix("C")
    checked = check_rows([GOOD[0], variant])
    assert not checked.rejected
    expected = schema.normalise_raw_row(GOOD[0])
    assert checked.valid[0]["row_hash"] == schema.row_digest(expected)
    assert checked.valid[1][schema.WILDERNESS_AREA] == "Commanche"


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (GOOD[0][:12], "12 fields"),
        ([*GOOD[0], "extra"], "14 fields"),
        ([*GOOD[0][:11], "C9999", GOOD[0][12]], "Soil_Type"),
        ([*GOOD[0][:10], "Mordor", *GOOD[0][11:]], "Wilderness_Area"),
        (["-5", *GOOD[0][1:]], "Elevation"),
        ([*GOOD[0][:12], "7"], "Cover_Type"),
        ([GOOD[0][0], "north", *GOOD[0][2:]], "Aspect"),
        ([*GOOD[0][:3], str(2**40), *GOOD[0][4:]], "32-bit"),
        ("not a row", "row"),
        ({"Elevation": 1}, "row"),
        (None, "row"),
    ],
)
def test_bad_rows_are_quarantined_with_a_reason_naming_the_problem(row, needle):
    checked = check_rows([GOOD[1], row])
    assert len(checked.valid) == 1
    [rejected] = checked.rejected
    assert needle in rejected.reason
    assert rejected.payload == payload_text(row)
    assert checked.received == 2


def test_label_base_one_reads_uci_numbering():
    uci = [*GOOD[0][:12], "7"]
    [row] = check_rows([uci], label_base=1).valid
    assert row[schema.LABEL] == 6
    assert check_rows([[*GOOD[0][:12], "0"]], label_base=1).rejected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"group_number": 1, "batch_number": 2, "data": [["1"', "malformed JSON"),
        (b'{"group_number": 1, "data": []}', "missing key(s) batch_number"),
        (b'{"group_number": 1, "batch_number": 2}', "missing key(s) data"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"group_number": 2, "batch_number": 2, "data": []}', "for group 2, asked for 1"),
        (b'{"group_number": 1, "batch_number": "x", "data": []}', "batch_number"),
        (b'{"group_number": 1, "batch_number": 3, "data": {"a": 1}}', "must be a list"),
        (b"\xff\xfe not even text", "malformed JSON"),
    ],
)
def test_off_contract_bodies_are_unreadable_not_crashes(body, reason):
    result = parse_portion(body, 1)
    assert result.kind == "unreadable" and reason in result.reason
    assert result.body  # kept for the quarantine


def test_a_contract_body_is_a_portion():
    body = json.dumps({"group_number": 1, "batch_number": "4", "data": GOOD}).encode()
    result = parse_portion(body, 1)
    assert (result.kind, result.batch_number, result.rows) == ("portion", 4, GOOD)


def test_airflow_connection_uris_become_settings():
    overrides = settings_overrides("http://data-api:80/", "mysql://app:p%40ss@db:3306/covertype")
    assert overrides == {
        "datasource_url": "http://data-api:80",
        "database_url": "mysql+pymysql://app:p%40ss@db:3306/covertype",
    }
    assert settings_overrides("https://api.example.org/course", None) == {
        "datasource_url": "https://api.example.org/course"
    }
    assert settings_overrides(None, "sqlite:////tmp/covertype.db") == {"database_url": "sqlite:////tmp/covertype.db"}
    assert settings_overrides(None, None) == {}


def test_remembered_answers_do_not_confuse_equal_but_different_values():
    as_text, as_int, as_bool = [*GOOD[0][:12], "1"], [*GOOD[0][:12], 1], [*GOOD[0][:12], True]
    checked = check_rows([as_text, as_int, as_bool])
    assert [row[schema.LABEL] for row in checked.valid] == [1, 1]
    [rejected] = checked.rejected
    assert "Cover_Type" in rejected.reason and rejected.payload == payload_text(as_bool)
