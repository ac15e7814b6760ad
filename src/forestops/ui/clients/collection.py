"""Collection progress, read from the ingest's ``fetch_log`` table.

The one place where the UI reads a database rather than an HTTP API: the
per-batch counts (received / new / duplicate / rejected) are only kept there
and no service publishes them.  Only SELECTs are issued; in a deployment give
the UI a user with SELECT rights on ``fetch_log`` alone.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import NoSuchTableError, OperationalError, ProgrammingError, SQLAlchemyError

from forestops.names import FetchStatus
from forestops.storage.db import make_engine
from forestops.storage.tables import fetch_log
from forestops.ui.clients.http import ServiceError

SERVICE = "raw data database"


@dataclass(frozen=True)
class BatchProgress:
    batch_number: int | None
    fetches: int
    rows_received: int
    rows_new: int
    rows_duplicate: int
    rows_rejected: int
    errors: int
    last_fetch_at: datetime | None


@dataclass(frozen=True)
class FetchRecord:
    started_at: datetime
    batch_number: int | None
    status: str
    rows_received: int
    rows_new: int
    rows_duplicate: int
    rows_rejected: int
    error: str | None
    run_id: str | None


@dataclass(frozen=True)
class CollectionProgress:
    batches: list[BatchProgress]  # the current cycle's batches only
    recent: list[FetchRecord]
    cycle: int = 1  # how many collection cycles the fetch log shows (restarts start a new one)
    complete: bool = False  # the latest fetch was told "all batches served"
    total_new: int = 0  # distinct rows stored over every cycle

    @property
    def cycle_new(self) -> int:
        return sum(b.rows_new for b in self.batches)


def per_cycle(fetches: list[tuple]) -> tuple[int, list[BatchProgress]]:
    """The current cycle's per-batch totals from fetches in log order.

    ``fetch_log`` has no cycle column, but batches only ever go up within a
    cycle; a batch number lower than the one before marks a restart.
    Fetches without a batch (complete, or failed before an answer) belong to
    no batch row.  Each fetch is (batch, received, new, duplicate, rejected,
    is_error, finished_at).
    """
    cycle, previous = 1, None
    totals: dict[int, list] = {}
    for batch, received, new, duplicate, rejected, is_error, at in fetches:
        if batch is None:
            continue
        if previous is not None and batch < previous:
            cycle, totals = cycle + 1, {}
        previous = batch
        row = totals.setdefault(batch, [0, 0, 0, 0, 0, 0, None])
        for index, value in enumerate((1, received, new, duplicate, rejected, int(is_error))):
            row[index] += int(value or 0)
        row[6] = at if row[6] is None or (at is not None and at > row[6]) else row[6]
    return cycle, [BatchProgress(batch, *row) for batch, row in sorted(totals.items())]


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    return make_engine(url)


def redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def collection_progress(database_url: str, group_number: int, recent: int = 15) -> CollectionProgress | ServiceError:
    """Per-batch totals and the latest fetches of one group."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        # Connecting would create an empty file; a reader must not.
        return ServiceError(
            SERVICE,
            f"no database at {url.database}: nothing has been collected yet",
            "Create the schema with `forestops db-init`, then let `covertype_ingest` run (or trigger it below).",
        )
    where = fetch_log.c.group_number == group_number
    every_fetch = (
        sa.select(
            fetch_log.c.batch_number,
            fetch_log.c.rows_received,
            fetch_log.c.rows_new,
            fetch_log.c.rows_duplicate,
            fetch_log.c.rows_rejected,
            fetch_log.c.status == FetchStatus.ERROR,
            sa.func.coalesce(fetch_log.c.finished_at, fetch_log.c.started_at),
        )
        .where(where)
        .order_by(fetch_log.c.id)
    )
    latest = (
        sa.select(
            fetch_log.c.started_at,
            fetch_log.c.batch_number,
            fetch_log.c.status,
            fetch_log.c.rows_received,
            fetch_log.c.rows_new,
            fetch_log.c.rows_duplicate,
            fetch_log.c.rows_rejected,
            fetch_log.c.error,
            fetch_log.c.run_id,
        )
        .where(where)
        .order_by(fetch_log.c.id.desc())
        .limit(recent)
    )
    try:
        with _engine(database_url).connect() as connection:
            fetches = [tuple(row) for row in connection.execute(every_fetch)]
            records = [FetchRecord(*row) for row in connection.execute(latest)]
    except (NoSuchTableError, ProgrammingError) as error:
        if "fetch_log" in str(error) or isinstance(error, NoSuchTableError):
            return ServiceError(
                SERVICE,
                f"no fetch_log table in {redact(database_url)}: nothing has been collected yet",
                "Create the schema with `forestops db-init`, then let `covertype_ingest` run (or trigger it below).",
            )
        return _database_error(database_url, error)
    except OperationalError as error:
        if "no such table" in str(error):
            return ServiceError(
                SERVICE,
                f"no fetch_log table in {redact(database_url)}: nothing has been collected yet",
                "Create the schema with `forestops db-init`, then let `covertype_ingest` run (or trigger it below).",
            )
        return _database_error(database_url, error)
    except SQLAlchemyError as error:
        return _database_error(database_url, error)
    cycle, batches = per_cycle(fetches)
    complete = bool(records) and records[0].status == FetchStatus.COMPLETE
    total = sum(int(fetch[2] or 0) for fetch in fetches)
    return CollectionProgress(batches, records, cycle=cycle, complete=complete, total_new=total)


def _database_error(database_url: str, error: Exception) -> ServiceError:
    first_line = str(getattr(error, "orig", None) or error).splitlines()[0][:300]
    return ServiceError(
        SERVICE,
        f"cannot read {redact(database_url)}: {first_line}",
        "Check that the database runs and that FORESTOPS_DATABASE_URL / FORESTOPS_MYSQL_URL point at it.",
    )


def random_stored_row(database_url: str) -> tuple[dict[str, int | str], int] | None:
    """One collected row (features, true class id), drawn at random; None when nothing is stored or readable.

    The Predict page fills its form with it, so "an example" is a different
    real row each time and the user can compare the answer with the truth.
    """
    from forestops import schema
    from forestops.storage.tables import raw_rows

    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return None
    columns = [raw_rows.c[name] for name in schema.FEATURE_COLUMNS]
    try:
        with _engine(database_url).connect() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(raw_rows)).scalar() or 0
            if not count:
                return None
            offset = secrets.randbelow(count)
            row = connection.execute(
                sa.select(*columns, raw_rows.c[schema.LABEL]).order_by(raw_rows.c.id).offset(offset).limit(1)
            ).first()
    except SQLAlchemyError:
        return None
    if row is None:
        return None
    *values, label = row
    return dict(zip(schema.FEATURE_COLUMNS, values, strict=True)), int(label)
