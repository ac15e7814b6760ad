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


def _stored_row(values: Any, normalise: schema.MemoNormaliser) -> dict[str, Any]:
    """One served row as ``raw_rows`` stores it: normalised, 32-bit checked, with its content hash."""
    row: dict[str, Any] = dict(zip(schema.RAW_COLUMNS, normalise(values), strict=True))
    for column in schema.NUMERIC_COLUMNS:
        if not _INT32[0] <= row[column] <= _INT32[1]:
            raise schema.ValueProblem(column, values[schema.RAW_COLUMNS.index(column)], "a 32-bit integer")
    row["row_hash"] = schema.row_digest(row)
    return row


def check_rows(rows: list[Any], label_base: schema.LabelBase = 0) -> CheckedRows:
    checked = CheckedRows()
    # One memo per portion: a portion repeats most values, so this halves the cost of validating it.
    normalise = schema.MemoNormaliser(label_base)
    for values in rows:
        try:
            checked.valid.append(_stored_row(values, normalise))
        except ValueError as problem:
            checked.rejected.append(RejectedRow(payload_text(values), str(problem)))
    return checked
