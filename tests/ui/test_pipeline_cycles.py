"""The pipeline page tells the truth about cycles: per-cycle progress, and a finished collection said in words."""

import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from forestops.storage.db import ensure_schema, make_engine
from forestops.storage.tables import fetch_log
from forestops.ui.clients.collection import collection_progress, per_cycle
from tests.ui.helpers import NOTHING_LISTENS, page, shown


def _fetch(at: datetime, batch: int | None, status: str = "stored", new: int = 10) -> dict:
    received = new if status == "stored" else 0
    return {
        "started_at": at,
        "finished_at": at,
        "source_url": "test",
        "group_number": 1,
        "batch_number": batch,
        "status": status,
        "rows_received": received,
        "rows_new": received,
        "rows_duplicate": 0,
        "rows_rejected": 0,
    }


@pytest.fixture
def two_cycles(tmp_path) -> str:
    """Cycle 1: batches 1-3 then 'complete' answers; a restart; cycle 2: batch 1 twice, then 'complete' again."""
    url = f"sqlite:///{tmp_path / 'covertype.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    start = datetime(2026, 12, 1, 10, 0, 0)
    moments = (start + timedelta(seconds=10 * i) for i in range(100))
    rows = [_fetch(next(moments), b) for b in (1, 1, 2, 3)]
    rows += [_fetch(next(moments), None, "complete") for _ in range(3)]
    rows += [_fetch(next(moments), 1, new=5), _fetch(next(moments), 1, new=7)]
    rows += [_fetch(next(moments), None, "complete")]
    with engine.begin() as connection:
        connection.execute(sa.insert(fetch_log), rows)
    engine.dispose()
    return url


@pytest.mark.unit
def test_progress_counts_only_the_current_cycle_and_knows_when_it_is_complete(two_cycles):
    progress = collection_progress(two_cycles, 1)
    assert progress.cycle == 2 and progress.complete
    assert [(b.batch_number, b.fetches, b.rows_new) for b in progress.batches] == [(1, 2, 12)]
    assert progress.total_new == 52 and progress.cycle_new == 12
    assert per_cycle([]) == (1, [])


@pytest.mark.unit
def test_the_page_says_all_batches_collected_instead_of_a_none_row(ui_env, two_cycles):
    ui_env(database_url=two_cycles, datasource_url=NOTHING_LISTENS, airflow_url=NOTHING_LISTENS, batch_count="10")
    at = page("pipeline").run()
    assert not at.exception
    assert "All 10 batches collected; restart the collection above to collect again." in shown(at)
    [table] = [d.value for d in at.dataframe if "fetches" in d.value.columns]
    assert table["batch"].tolist() == [1] and table["fetches"].tolist() == [2]  # cycle 2 only, no None row
    assert "Cycle 2" in shown(at) and "12 new in this cycle, 52 distinct rows stored so far." in shown(at)


@pytest.mark.integration
def test_a_forced_training_run_and_the_run_it_is_queued_behind(ui_env, ui_airflow):
    from tests.ui.helpers import button, sign_in
    from tests.ui.test_airflow import airflow_settings, api_get

    ui_env(**airflow_settings(ui_airflow))
    at = sign_in(page("pipeline").run())
    at.checkbox(key="pipeline.force_train").check().run()
    at = button(at, "Trigger covertype_train").click().run()
    assert not at.exception
    [first] = [s.value for s in at.success if "Triggered covertype_train" in s.value]
    assert "(forced past the new-rows gate)" in first
    newest = api_get(ui_airflow, "/dags/covertype_train/dagRuns?order_by=-id&limit=1")["dag_runs"][0]
    assert newest["conf"] == {"force": True}

    # The DAG is paused (or busy) in this test, so a second run waits behind an earlier one: the first,
    # or a run other tests of this session's Airflow left queued before it.
    recent = api_get(ui_airflow, "/dags/covertype_train/dagRuns?order_by=-id&limit=100")["dag_runs"]
    waiting = {r["dag_run_id"] for r in recent if r["state"] in ("queued", "running")}
    assert newest["dag_run_id"] in waiting
    at = button(at, "Trigger covertype_train").click().run()
    [second] = [s.value for s in at.success if "Triggered covertype_train" in s.value]
    behind = re.search(r"queued behind run `([^`]+)`", second)
    assert behind and behind.group(1) in waiting, second
