"""Validated rows to the DataFrame the model was trained on, without pandas' per-row costs.

The models accept ``schema.feature_frame(records)``: int64 numbers and
categoricals with the full, fixed category lists.  ``schema.feature_frame``
goes through ``DataFrame.from_records`` and ``astype`` per column, which is
most of the cost of a one-row prediction; here the columns are built as
NumPy arrays and categorical codes, then handed to pandas once.  The unit
tests check that both produce the same frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from forestops import schema

Columns = dict[str, list[Any]]

_DTYPES = {c: pd.CategoricalDtype(list(cats)) for c, cats in schema.CATEGORIES.items()}
_CODES = {c: {name: code for code, name in enumerate(cats)} for c, cats in schema.CATEGORIES.items()}


def columns_of(instances: Sequence[Any]) -> Columns:
    """Column lists from validated instances (objects with one attribute per feature)."""
    return {c: [getattr(row, c) for row in instances] for c in schema.FEATURE_COLUMNS}


def extend(target: Columns, more: Columns) -> Columns:
    for column, values in more.items():
        target[column].extend(values)
    return target


def frame_from_columns(columns: Columns) -> pd.DataFrame:
    """The model's input frame; values must already be normalised (see ``contract``)."""
    data: dict[str, Any] = {}
    for column in schema.NUMERIC_COLUMNS:
        data[column] = np.fromiter(columns[column], dtype=np.int64, count=len(columns[column]))
    for column, dtype in _DTYPES.items():
        lookup = _CODES[column]
        codes = np.fromiter((lookup[v] for v in columns[column]), dtype=np.int8, count=len(columns[column]))
        data[column] = pd.Categorical.from_codes(codes, dtype=dtype)
    return pd.DataFrame(data, columns=list(schema.FEATURE_COLUMNS), copy=False)
