"""One collection step: fetch a portion, validate it, store it, log it.

``ingest_once`` is what each run of the ``covertype_ingest`` DAG and the
``forestops ingest-once`` command do.  It returns an outcome instead of
raising for the data API's own failures (they are logged in ``fetch_log`` so
the UI shows them) and raises only for configuration mistakes, which no
retry can fix.  Given a ``run_id`` it is idempotent: a retried task of a run
whose fetch was already committed returns that fetch instead of taking (and
consuming) another portion.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TypedDict

from sqlalchemy import Engine

from forestops.ingest import store
from forestops.ingest.client import DataApiClient, DataApiConfigurationError, DataApiUnavailable
from forestops.ingest.rows import RejectedRow, check_rows
from forestops.names import FetchStatus
from forestops.redaction import redact
from forestops.settings import Settings
from forestops.storage.db import ensure_schema, make_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    status: FetchStatus
    group_number: int
    batch_number: int | None = None
    rows_received: int = 0
    rows_new: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0
    fetch_id: int | None = None
    error: str | None = None
    detail: str | None = None
    restarted: bool = False
    replayed: bool = False
    # True only for the fetch that first found the collection complete (training's cue for a final run).
    collection_completed: bool = False

    def as_dict(self) -> dict:
        return {**asdict(self), "status": self.status.value}  # plain values for XCom and JSON

    def summary(self) -> str:
        if self.status == FetchStatus.COMPLETE:
            return f"group {self.group_number}: collection complete ({self.detail})"
        if self.status == FetchStatus.ERROR:
            return f"group {self.group_number}: fetch failed: {self.error}"
        return (
            f"group {self.group_number} batch {self.batch_number}: received {self.rows_received}, "
            f"new {self.rows_new}, duplicate {self.rows_duplicate}, rejected {self.rows_rejected}"
        )


def _replay(row: dict) -> IngestOutcome:
    return IngestOutcome(
        status=FetchStatus(row["status"]),
        group_number=row["group_number"],
        batch_number=row["batch_number"],
        rows_received=row["rows_received"],
        rows_new=row["rows_new"],
        rows_duplicate=row["rows_duplicate"],
        rows_rejected=row["rows_rejected"],
        fetch_id=row["id"],
        error=row["error"],
        detail=row["detail"],
        replayed=True,
    )


def ingest_once(settings: Settings, run_id: str | None = None, engine: Engine | None = None) -> IngestOutcome:
    own_engine = engine is None
    engine = engine or make_engine(settings.raw_database_url)
    try:
        ensure_schema(engine)
        if run_id is not None:
            previous = store.finished_fetch_of_run(engine, run_id)
            if previous is not None:
                log.info("run %s already stored fetch %s; not fetching again", run_id, previous["id"])
                return _replay(previous)
        try:
            return _fetch_and_store(settings, engine, run_id)
        except (DataApiConfigurationError, DataApiUnavailable):
            raise  # already in fetch_log
        except Exception as error:
            # A bug met by odd input must still leave a trace where the UI looks, then fail loudly.
            _record_crash(settings, engine, run_id, error)
            raise
    finally:
        if own_engine:
            engine.dispose()


class _Where(TypedDict):
    """Which source, group and run a fetch_log row belongs to."""

    source_url: str
    group_number: int
    run_id: str | None


def _record_crash(settings: Settings, engine: Engine, run_id: str | None, error: Exception) -> None:
    try:
        store.record_status(
            engine,
            status=FetchStatus.ERROR,
            error=redact(f"unexpected {type(error).__name__}: {error}")[:2000],
            source_url=redact(settings.datasource_url),
            group_number=settings.group_number,
            run_id=run_id,
        )
    except Exception:  # the store itself is down: the raised error is all there is
        log.exception("could not record the failed fetch")


def _fetch_and_store(settings: Settings, engine: Engine, run_id: str | None) -> IngestOutcome:
    group = settings.group_number
    # fetch_log is shown by the UI: the URL goes there without its credentials.
    where: _Where = {"source_url": redact(settings.datasource_url), "group_number": group, "run_id": run_id}
    started_at = store.utcnow()
    with DataApiClient(settings) as client:
        try:
            result = client.fetch()
        except DataApiUnavailable as error:
            fetch_id = store.record_status(
                engine, status=FetchStatus.ERROR, error=str(error), started_at=started_at, **where
            )
            log.error("%s", error)
            return IngestOutcome(FetchStatus.ERROR, group, fetch_id=fetch_id, error=str(error))
        except DataApiConfigurationError as error:
            store.record_status(engine, status=FetchStatus.ERROR, error=str(error), started_at=started_at, **where)
            raise

        if result.kind == "complete":
            detail = f"all batches collected: {result.detail}"
            restarted = False
            if settings.restart_when_done:
                try:
                    answer = client.restart()
                except DataApiUnavailable as error:
                    # Still complete; the next run hears the same 400 and tries the restart again.
                    detail += f"; restart failed, will retry on the next run: {error}"
                else:
                    restarted = True
                    detail += f"; collection restarted (FORESTOPS_RESTART_WHEN_DONE): {answer}"
            completed_now = store.newest_status(engine, group) != FetchStatus.COMPLETE
            # One row per stretch of completeness, confirmed by later runs (not one row per run).
            fetch_id = store.record_complete(engine, detail=detail, started_at=started_at, merge=not restarted, **where)
            outcome = IngestOutcome(
                FetchStatus.COMPLETE,
                group,
                fetch_id=fetch_id,
                detail=detail,
                restarted=restarted,
                collection_completed=completed_now,
            )
            log.info("%s", outcome.summary())
            return outcome

    if result.kind == "unreadable":
        checked_valid, rejected = [], [RejectedRow(result.body, f"unreadable response: {result.reason}")]
        fetch_error = result.reason
    else:
        checked = check_rows(result.rows, settings.label_base)
        checked_valid, rejected, fetch_error = checked.valid, checked.rejected, None
    counts = store.store_fetch(
        engine,
        batch_number=result.batch_number,
        valid=checked_valid,
        rejected=rejected,
        started_at=started_at,
        error=fetch_error,
        **where,
    )
    outcome = IngestOutcome(
        FetchStatus.STORED,
        group,
        batch_number=result.batch_number,
        rows_received=counts.received,
        rows_new=counts.new,
        rows_duplicate=counts.duplicate,
        rows_rejected=counts.rejected,
        fetch_id=counts.fetch_id,
        error=fetch_error,
    )
    log.info("%s", outcome.summary())
    return outcome
