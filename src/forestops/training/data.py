"""Training data: read the raw rows, split them by row hash, hand them between tasks.

The split depends on a row's content hash only (``schema.digest_bucket``),
so the same row always lands on the same side: a retrain is evaluated on
the same rows as the champion was, and a resampled duplicate can never sit
on both sides.  Between DAG tasks the rows travel as a parquet file in a
work folder; XCom carries only its path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from forestops import schema
from forestops.storage import tables

log = logging.getLogger(__name__)

SPLIT_COLUMN = "split"
TRAINING = "training"
EVALUATION = "evaluation"
# Columns of raw_rows carried along besides the data contract's 13.
META_COLUMNS: tuple[str, ...] = ("id", "row_hash", "group_number", "batch_number")


@dataclass(frozen=True)
class LoadedRows:
    """What a load step found: the file with the rows and facts for lineage."""

    path: Path
    rows: int
    max_raw_id: int | None
    batch_numbers: tuple[int, ...]
    digest: str


def evaluation_mask(row_hashes: pd.Series, evaluation_percent: int) -> np.ndarray:
    """True where a row belongs to the evaluation split."""
    return np.fromiter(
        (schema.digest_bucket(h) < evaluation_percent for h in row_hashes), dtype=bool, count=len(row_hashes)
    )


def validation_mask(row_hashes: pd.Series, validation_percent: int = 15) -> np.ndarray:
    """A second, independent hash split inside the training rows, for the search.

    It reads a different slice of the digest than ``digest_bucket`` so that it
    is not correlated with the evaluation split.
    """
    return np.fromiter(
        (int(h[12:24], 16) % 100 < validation_percent for h in row_hashes), dtype=bool, count=len(row_hashes)
    )


def read_raw_rows(engine: sa.Engine, max_raw_id: int | None = None) -> pd.DataFrame:
    """All stored rows (up to ``max_raw_id``), ordered by id."""
    table = tables.raw_rows
    columns = [table.c[name] for name in (*META_COLUMNS, *schema.RAW_COLUMNS)]
    query = sa.select(*columns).order_by(table.c.id)
    if max_raw_id is not None:
        query = query.where(table.c.id <= max_raw_id)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).all(), columns=[c.name for c in columns])
    return frame


def content_digest(frame: pd.DataFrame) -> str:
    """A digest of the set of rows (order-free): the row hashes, sorted, hashed."""
    import hashlib

    hasher = hashlib.sha256()
    for row_hash in sorted(frame["row_hash"]):
        hasher.update(row_hash.encode())
    return hasher.hexdigest()


def load_split(engine: sa.Engine, work_dir: Path, evaluation_percent: int, max_raw_id: int | None = None) -> LoadedRows:
    """Read the rows, tag each with its split, write them to ``work_dir/rows.parquet``."""
    frame = read_raw_rows(engine, max_raw_id)
    frame[SPLIT_COLUMN] = np.where(evaluation_mask(frame["row_hash"], evaluation_percent), EVALUATION, TRAINING)
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "rows.parquet"
    frame.to_parquet(path, index=False)
    batches = tuple(sorted(int(b) for b in frame["batch_number"].unique()))
    top = int(frame["id"].max()) if len(frame) else None
    log.info("loaded %d rows (max id %s, batches %s) into %s", len(frame), top, batches, path)
    return LoadedRows(path=path, rows=len(frame), max_raw_id=top, batch_numbers=batches, digest=content_digest(frame))


def read_split(path: Path | str) -> pd.DataFrame:
    return pd.read_parquet(path)


def features_and_labels(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return schema.feature_frame(frame), frame[schema.LABEL].to_numpy(dtype=np.int64)
