"""Validate served rows against the data contract; quarantine the rest.

Every row either becomes a normalised record (with its content hash) or a
rejected record carrying the payload as received and the reason, so nothing
is dropped silently.  Rejected payloads are identified by their own hash, so
a retried or resampled bad row is quarantined once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from forestops import schema

# Integer columns are 32-bit in the store; a value beyond that would be
# clamped or refused by the database, so it is a bad value here.
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class RejectedRow:
    payload: str
    reason: str

    @property
    def payload_hash(self) -> str:
        return hashlib.sha256(self.payload.encode()).hexdigest()


@dataclass
class CheckedRows:
    valid: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.valid) + len(self.rejected)


def payload_text(value: Any) -> str:
    """The JSON text of one served row, as close to the wire as we can keep it."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


class _Normaliser:
    """The contract's normalisation, remembering each column's answers within one portion.

    A portion repeats most values (categories, hillshades, labels, common
    distances), so looking answers up halves the cost of validating an
    18k-row portion.  The answers are ``forestops.schema``'s own; any problem
    is re-raised by ``schema.normalise_raw_row`` so the reason is the
    contract's canonical message.
    """

    def __init__(self, label_base: schema.LabelBase) -> None:
        self.label_base = label_base
        self.answers: dict[str, dict[Any, int | str]] = {column: {} for column in schema.RAW_COLUMNS}
        self.width = len(schema.RAW_COLUMNS)

    def __call__(self, values: Any) -> dict[str, Any]:
        try:
            if type(values) is not list or len(values) != self.width:
                raise TypeError
            row = {}
            for column, value in zip(schema.RAW_COLUMNS, values, strict=True):
                answers = self.answers[column]
                if type(value) is not str:  # 1, 1.0 and True are equal dict keys but not equally valid
                    row[column] = schema.normalise_value(column, value, self.label_base)
                elif value in answers:
                    row[column] = answers[value]
                else:
                    row[column] = answers[value] = schema.normalise_value(column, value, self.label_base)
        except (TypeError, ValueError):  # off-contract shape, unhashable or bad value
            row = schema.normalise_raw_row(values, self.label_base)
        for column in schema.NUMERIC_COLUMNS:
            if not _INT32[0] <= row[column] <= _INT32[1]:
                raise schema.ValueProblem(column, values[schema.RAW_COLUMNS.index(column)], "a 32-bit integer")
        row["row_hash"] = schema.row_digest(row)
        return row


def check_rows(rows: list[Any], label_base: schema.LabelBase = 0) -> CheckedRows:
    checked = CheckedRows()
    normalise = _Normaliser(label_base)
    for values in rows:
        try:
            checked.valid.append(normalise(values))
        except ValueError as problem:
            checked.rejected.append(RejectedRow(payload_text(values), str(problem)))
    return checked
