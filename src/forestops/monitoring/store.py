"""The ``batch_monitoring`` table: reading the monitor's input rows and upserting its results.

A row of ``batch_monitoring`` is keyed by (group, batch, scoring version) and
written with an upsert, so a retried monitor run rewrites the row it wrote
before instead of adding a second one.  ``max_raw_id`` is the watermark:
the next run looks only at batches that received rows above it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from forestops import schema
from forestops.storage import tables
from forestops.training import data

KEY = ("group_number", "batch_number", "model_version")


@dataclass(frozen=True)
class BatchResult:
    """What the monitor measured on one batch with one version (one table row)."""

    group_number: int
    batch_number: int
    model_version: str
    rows_scored: int
    accuracy: float
    macro_f1: float
    recall_per_class: dict[str, float]
    max_raw_id: int
    drift_share: float | None = None
    drifted_columns: list[str] | None = None
    report_uri: str | None = None
    monitoring_run_id: str | None = None
    drift_seconds: float | None = None
    detail: str | None = None
    scored_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def watermark(connection: sa.Connection) -> int:
    """The highest raw row id any monitor run has scored (0 before the first)."""
    return int(connection.execute(sa.select(sa.func.max(tables.batch_monitoring.c.max_raw_id))).scalar() or 0)


def batches_since(connection: sa.Connection, above_id: int) -> list[tuple[int, int]]:
    """(group, batch) pairs that received rows with an id above ``above_id``, oldest first."""
    raw = tables.raw_rows
    query = (
        sa.select(raw.c.group_number, raw.c.batch_number, sa.func.min(raw.c.id).label("first"))
        .where(raw.c.id > above_id)
        .group_by(raw.c.group_number, raw.c.batch_number)
        .order_by("first")
    )
    return [(int(g), int(b)) for g, b, _ in connection.execute(query).all()]


def _frame(connection: sa.Connection, query) -> pd.DataFrame:
    result = connection.execute(query)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


def batch_rows(connection: sa.Connection, group: int, batch: int, above_id: int) -> pd.DataFrame:
    """The rows of one batch with an id above ``above_id`` (the ones the scoring version never trained on)."""
    raw = tables.raw_rows
    columns = [raw.c[name] for name in (*data.META_COLUMNS, *schema.RAW_COLUMNS)]
    query = (
        sa.select(*columns)
        .where(raw.c.group_number == group, raw.c.batch_number == batch, raw.c.id > above_id)
        .order_by(raw.c.id)
    )
    return _frame(connection, query)


def reference_rows(connection: sa.Connection, max_raw_id: int, evaluation_percent: int, size: int) -> pd.DataFrame:
    """A fixed sample of the rows a version was trained on: its training split, first ``size`` by row hash.

    Training used every row up to ``max_raw_id`` outside the evaluation split
    (a function of the row hash), so the same call always gives the same
    rows, and ordering by a content hash makes them a uniform sample.
    """
    raw = tables.raw_rows
    columns = [raw.c[name] for name in (*data.META_COLUMNS, *schema.RAW_COLUMNS)]
    over_fetch = math.ceil(size / max(0.01, 1 - evaluation_percent / 100) * 1.2) + 50
    query = sa.select(*columns).where(raw.c.id <= max_raw_id).order_by(raw.c.row_hash).limit(over_fetch)
    frame = _frame(connection, query)
    training = frame[~data.evaluation_mask(frame["row_hash"], evaluation_percent)] if len(frame) else frame
    return training.head(size).reset_index(drop=True)


def upsert(connection: sa.Connection, result: BatchResult) -> None:
    """Insert the row, or rewrite the one already stored for the same (group, batch, version)."""
    table = tables.batch_monitoring
    values = result.as_row()
    changing = {k: v for k, v in values.items() if k not in KEY}
    dialect = connection.dialect.name
    statement: sa.Insert
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        mysql_insert = mysql.insert(table).values(**values)
        statement = mysql_insert.on_duplicate_key_update(**{k: mysql_insert.inserted[k] for k in changing})
    elif dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        sqlite_insert = sqlite.insert(table).values(**values)
        statement = sqlite_insert.on_conflict_do_update(
            index_elements=list(KEY), set_={k: sqlite_insert.excluded[k] for k in changing}
        )
    else:  # pragma: no cover - the two backends forestops supports are above
        raise NotImplementedError(f"no upsert for {dialect}")
    connection.execute(statement)


def results(connection: sa.Connection, limit: int | None = None) -> list[dict[str, Any]]:
    """Stored rows, oldest batch first (the CLI, the UI and the metrics read this)."""
    table = tables.batch_monitoring
    query = sa.select(table).order_by(table.c.group_number, table.c.batch_number, table.c.scored_at)
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for row in connection.execute(query).mappings():
        item = dict(row)
        item["scored_at"] = item["scored_at"].isoformat() if item["scored_at"] else None
        rows.append(item)
    return rows
