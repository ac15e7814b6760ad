"""A complete collection is one fetch_log row confirmed by later runs, not a new row per run."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from forestops.ingest.store import record_complete, record_status
from forestops.names import FetchStatus
from forestops.storage.db import ensure_schema, make_engine
from forestops.storage.tables import fetch_log

pytestmark = pytest.mark.integration

DONE = "all batches collected: group 1"


@pytest.mark.parametrize("backend", ["mysql", "sqlite"])
def test_complete_is_logged_once_per_stretch_and_confirmed_by_later_runs(backend, app_database, tmp_path):
    url = app_database.url if backend == "mysql" else f"sqlite:///{tmp_path / 'covertype.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    where = {"source_url": "http://data-api", "group_number": 1}

    first = record_complete(engine, detail=DONE, run_id="run-1", **where)
    for run in range(2, 50):  # the ingest DAG keeps asking a finished API
        assert record_complete(engine, detail=DONE, run_id=f"run-{run}", **where) == first
    with engine.connect() as connection:
        [row] = connection.execute(sa.select(fetch_log)).mappings().all()
    assert row["status"] == FetchStatus.COMPLETE and row["run_id"] == "run-49"
    assert row["finished_at"] >= row["started_at"]  # first found complete .. last confirmed

    # A failure in between, a restart, or another message starts a new row: each is an event of its own.
    record_status(engine, status=FetchStatus.ERROR, error="API down", **where)
    after_error = record_complete(engine, detail=DONE, run_id="run-50", **where)
    restarted = record_complete(engine, detail=DONE + "; collection restarted", run_id="run-51", merge=False, **where)
    again = record_complete(engine, detail=DONE + "; collection restarted", run_id="run-52", merge=False, **where)
    assert len({first, after_error, restarted, again}) == 4
    with engine.connect() as connection:
        statuses = connection.execute(sa.select(fetch_log.c.status).order_by(fetch_log.c.id)).scalars().all()
    assert statuses == ["complete", "error", "complete", "complete", "complete"]
    engine.dispose()
