"""The retraining gate and the training log.

Training runs on every new raw-data Asset event, but most events carry a
handful of rows; retraining on them would burn the machine for nothing.
The gate trains only when enough rows arrived since the last successful
training (``FORESTOPS_RETRAIN_MIN_NEW_ROWS``, default 5% of the rows that
training used), on the first training, or when forced, and every decision
(skip or train, with its numbers) is a row of ``training_log``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from forestops.names import FetchStatus, TrainingStatus
from forestops.storage import tables

log = logging.getLogger(__name__)

DEFAULT_SHARE = 0.05


@dataclass(frozen=True)
class GateDecision:
    train: bool
    reason: str
    total_rows: int
    new_rows: int
    threshold: int
    max_raw_id: int | None
    log_id: int
    trigger: str | None = None  # why the run was started, when something other than new rows started it
    # The collection is complete and this training reads every row: the cycle's last, and the one that matters.
    final: bool = False

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> GateDecision:
        return cls(**value)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def last_training(connection: sa.Connection) -> sa.Row | None:
    log_table = tables.training_log
    query = (
        sa.select(log_table)
        .where(log_table.c.status == TrainingStatus.TRAINED)
        .order_by(log_table.c.id.desc())
        .limit(1)
    )
    return connection.execute(query).first()


def collection_complete(connection: sa.Connection, group_number: int) -> bool:
    """Whether the group's newest fetch says that every batch has been collected."""
    fetch_log = tables.fetch_log
    newest = connection.execute(
        sa.select(fetch_log.c.status)
        .where(fetch_log.c.group_number == group_number)
        .order_by(fetch_log.c.id.desc())
        .limit(1)
    ).scalar()
    return newest == FetchStatus.COMPLETE


def should_train(
    engine: sa.Engine,
    min_new_rows: int | None,
    force: bool,
    run_id: str | None = None,
    trigger: str | None = None,
    group_number: int | None = None,
) -> GateDecision:
    """Decide whether to train now and record the decision in ``training_log``.

    ``trigger`` (e.g. the monitoring alert that asked for this run) leads the recorded reason.
    Once ``group_number``'s collection is complete, any new row earns a final
    training on every collected row, below the usual threshold: otherwise the
    cycle's best model would depend on when the last periodic training
    happened to run (the ingest DAG announces the completion once).
    """
    trigger = trigger[:2000] if trigger else None
    raw = tables.raw_rows
    with engine.begin() as connection:
        max_id = connection.execute(sa.select(sa.func.max(raw.c.id))).scalar()
        total = connection.execute(sa.select(sa.func.count()).select_from(raw)).scalar() or 0
        previous = last_training(connection)
        if previous is None:
            new_rows, threshold = total, 1
            reason = "first training"
        else:
            since = previous.max_raw_id or 0
            new_rows = (
                connection.execute(sa.select(sa.func.count()).select_from(raw).where(raw.c.id > since)).scalar() or 0
            )
            threshold = (
                min_new_rows if min_new_rows is not None else max(1, math.ceil(DEFAULT_SHARE * previous.rows_used))
            )
            reason = f"{new_rows} new rows since training #{previous.id} (threshold {threshold})"
        train = force or new_rows >= threshold
        final = (
            not force
            and previous is not None
            and new_rows > 0
            and group_number is not None
            and collection_complete(connection, group_number)
        )
        if final:
            train = True
            reason = f"final training: the collection is complete; {reason}"
        if force:
            reason = f"forced; {reason}"
        elif not train and previous is None:
            reason = "no rows stored yet"
        if trigger:
            reason = f"{trigger}; {reason}"
        status = TrainingStatus.RUNNING if train else TrainingStatus.SKIPPED
        now = _utcnow()
        result = connection.execute(
            tables.training_log.insert().values(
                started_at=now,
                finished_at=None if train else now,
                status=status,
                rows_used=0,
                max_raw_id=max_id,
                decision=None if train else "none",
                detail=reason,
                run_id=run_id,
            )
        )
        key = result.inserted_primary_key
        assert key is not None  # an INSERT of one row always has its key
        log_id = int(key[0])
    log.info("training gate: %s (%s)", "train" if train else "skip", reason)
    return GateDecision(train, reason, int(total), int(new_rows), int(threshold), max_id, log_id, trigger, final)


def update(engine: sa.Engine, log_id: int, **values: Any) -> None:
    """Record progress or the outcome of a training on its log row."""
    if values.get("status") in (TrainingStatus.TRAINED, TrainingStatus.FAILED, TrainingStatus.SKIPPED):
        values.setdefault("finished_at", _utcnow())
    if "detail" in values and values["detail"] is not None:
        values["detail"] = str(values["detail"])[:60000]
    with engine.begin() as connection:
        connection.execute(sa.update(tables.training_log).where(tables.training_log.c.id == log_id).values(**values))
