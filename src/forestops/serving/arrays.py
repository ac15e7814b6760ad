"""Request bodies to model arrays at array speed, and predictions to JSON the same way.

The per-row pydantic models of ``contract`` are the source of truth for what
a request may hold and for every 422 message; validating 10,000 rows through
them costs tens of milliseconds of per-field Python.  ``parse_block`` takes
the common case, a body of plain JSON integers and category strings, with
orjson and whole-column NumPy checks (types, bounds, known categories), and
answers ``None`` whenever anything is unusual: a missing or extra field, a
string or float where a number goes, a boolean, a value out of its domain,
an unknown category.  The caller then runs the pydantic path, which either
accepts the body (numeric strings, ``3020.0``, ...) or produces exactly
today's 422.  So the fast path only ever accepts bodies the pydantic path
accepts, with the same values.

``render_predictions`` writes the response bytes from the probability
matrix with orjson's NumPy serialiser and one join, instead of one Python
dict per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from forestops import schema
from forestops.serving.contract import INT64_MAX, INT64_MIN, MAX_INSTANCES
from forestops.serving.predictors import RowBlock

_NORMALISERS = {schema.WILDERNESS_AREA: schema.normalise_wilderness, schema.SOIL_TYPE: schema.normalise_soil}
_CODES = {c: {name: code for code, name in enumerate(cats)} for c, cats in schema.CATEGORIES.items()}
_N_FIELDS = len(schema.FEATURE_COLUMNS)
_BOUNDS = np.array(
    [
        [INT64_MIN if f.minimum is None else f.minimum for f in schema.NUMERIC_FEATURES],
        [INT64_MAX if f.maximum is None else f.maximum for f in schema.NUMERIC_FEATURES],
    ],
    dtype=np.int64,
)


def _category_codes(column: str, values: list[Any]) -> np.ndarray | None:
    """Codes of the values, each distinct value normalised once by the schema; None if one is not valid."""
    known = _CODES[column]
    normalise = _NORMALISERS[column]
    mapping: dict[Any, int] = {}
    for value in set(values):  # TypeError for unhashable values: the caller falls back
        if not isinstance(value, str):
            return None
        try:
            canonical = normalise(value)
        except ValueError:
            return None
        if canonical not in known:
            return None
        mapping[value] = known[canonical]
    return np.fromiter(map(mapping.__getitem__, values), dtype=np.int16, count=len(values))


def parse_block(body: bytes) -> RowBlock | None:
    """The rows of a plainly valid body as arrays, or None when the pydantic path must decide."""
    if b"true" in body or b"false" in body:
        return None  # booleans are refused with their own message by the pydantic path
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(payload) is not dict or len(payload) != 1:
        return None
    instances = payload.get("instances")
    if type(instances) is not list or not 1 <= len(instances) <= MAX_INSTANCES:
        return None
    try:
        return _block_of(instances)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def _block_of(instances: list[Any]) -> RowBlock | None:
    # Every row an object with exactly the 12 fields: the length check plus the
    # lookups below (KeyError on a missing field) leave no room for an extra one.
    if any(type(row) is not dict or len(row) != _N_FIELDS for row in instances):
        return None
    numbers = np.array([[row[c] for c in schema.NUMERIC_COLUMNS] for row in instances])
    if numbers.dtype != np.int64:  # a float, a string, None, or an integer beyond int64
        return None
    if (numbers < _BOUNDS[0]).any() or (numbers > _BOUNDS[1]).any():
        return None
    codes = np.empty((len(instances), len(schema.CATEGORICAL_COLUMNS)), dtype=np.int16)
    for j, column in enumerate(schema.CATEGORICAL_COLUMNS):
        column_codes = _category_codes(column, [row[column] for row in instances])
        if column_codes is None:
            return None
        codes[:, j] = column_codes
    return RowBlock(numbers, codes)


def block_from_instances(instances: Sequence[Any]) -> RowBlock:
    """Arrays from pydantic-validated instances (values already canonical)."""
    numbers = np.array([[getattr(row, c) for c in schema.NUMERIC_COLUMNS] for row in instances], dtype=np.int64)
    numbers = numbers.reshape(len(instances), len(schema.NUMERIC_COLUMNS))
    codes = np.array(
        [[_CODES[c][getattr(row, c)] for c in schema.CATEGORICAL_COLUMNS] for row in instances], dtype=np.int16
    ).reshape(len(instances), len(schema.CATEGORICAL_COLUMNS))
    return RowBlock(numbers, codes)


# -- responses -----------------------------------------------------------------------------

_NAMES = schema.COVER_TYPES
_ROW_HEADS = [
    orjson.dumps({"cover_type": k, "cover_type_name": name})[:-1]
    + b',"probabilities":{'
    + orjson.dumps(_NAMES[0])
    + b":"
    for k, name in enumerate(_NAMES)
]
_BETWEEN = [b"," + orjson.dumps(name) + b":" for name in _NAMES[1:]]
_ROW_END = b"}}"
_ROW_HEADS_ARRAY = np.array(_ROW_HEADS, dtype=object)


def render_predictions(model_ref: dict[str, str], class_ids: np.ndarray, probabilities: np.ndarray) -> bytes:
    """The /predict body: the same bytes orjson writes for the per-row dicts, built column-wise.

    orjson writes every float64 of the matrix in one call (shortest round-trip
    form, as for Python floats); the pieces are then interleaved with the
    fixed per-class and per-name fragments by NumPy and joined once.
    """
    n = probabilities.shape[0]
    head = b'{"model":' + orjson.dumps(model_ref) + b',"predictions":['
    if n == 0:
        return head + b"]}"
    matrix = np.ascontiguousarray(probabilities, dtype=np.float64)
    flat = orjson.dumps(matrix.ravel(), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    width = 2 * schema.N_CLASSES + 2
    pieces = np.empty((n, width), dtype=object)
    pieces[:, 0] = b","
    pieces[0, 0] = b""
    pieces[:, 1] = _ROW_HEADS_ARRAY[class_ids]
    pieces[:, 2:width:2] = np.array(flat, dtype=object).reshape(n, schema.N_CLASSES)
    for i, between in enumerate(_BETWEEN):
        pieces[:, 3 + 2 * i] = between
    pieces[:, -1] = _ROW_END
    return head + b"".join(pieces.ravel().tolist()) + b"]}"
