"""Ingestion and the inference API read the same number texts the same way.

One rule (``forestops.schema.INTEGER_TEXT``, documented in
docs/ingestion.md "Number formats") decides: each text below is either
accepted by both paths with the same value, or refused by both.
"""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from forestops import schema
from forestops.ingest.rows import check_rows
from forestops.serving import contract

pytestmark = pytest.mark.unit

FIELD = "Elevation"
ACCEPTED = {"2596": 2596, " 2596 ": 2596, "+2596": 2596, "2596.0": 2596, "2_596": 2596, "02596": 2596, "\t2596\n": 2596}
REFUSED = ["2.596e3", "2596.", ".5", "2596.5", "\u0662\u0665\u0669\u0666", "\ufeff2596", "0x0A24", "2__596", "", "nan"]


def _ingest(text: str) -> int | None:
    row = [str(v) for v in schema.example_features().values()] + ["1"]
    row[schema.FEATURE_COLUMNS.index(FIELD)] = text
    checked = check_rows([row])
    return checked.valid[0][FIELD] if checked.valid else None


def _serving(text: str) -> int | None:
    instance = {**schema.example_features(), FIELD: text}
    try:
        request = contract.parse_request(orjson.dumps({"instances": [instance]}))
    except ValidationError:
        return None
    first = request.instances[0]
    return first[FIELD] if isinstance(first, dict) else getattr(first, FIELD)


@pytest.mark.parametrize("text", sorted(ACCEPTED))
def test_both_paths_accept_the_same_texts_with_the_same_value(text):
    assert _ingest(text) == ACCEPTED[text]
    assert _serving(text) == ACCEPTED[text]


@pytest.mark.parametrize("text", REFUSED)
def test_both_paths_refuse_the_same_texts(text):
    assert _ingest(text) is None
    assert _serving(text) is None
