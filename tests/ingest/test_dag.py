"""The covertype_ingest DAG collects a whole batch cycle from the real data API (``dag.test()``)."""

from __future__ import annotations

import pytest

from tests.ingest.conftest import env_for
from tests.ingest.dag_cycle import Step, run_dag_plan
from tests.ingest.faulty_api import FaultyDataApi
from tests.ingest.helpers import Store, assert_fetch_log_adds_up, contract_rows

pytestmark = pytest.mark.integration


def test_full_cycle_through_dag_test_then_restart(airflow_home, data_api, fresh_group, app_database, ingest_settings):
    # A recording wrapper (no faults) tells us exactly which rows the real API served.
    with FaultyDataApi(data_api.url, ("ok",)) as recorder:
        settings = ingest_settings(datasource_url=recorder.url, group_number=fresh_group, database_url=app_database.url)
        plan = [
            # Each run is one fetch: one or more portions per 1 s batch window, until "all batches served".
            Step(runs=80, until_complete=True, pause=0.2),
            # Without FORESTOPS_RESTART_WHEN_DONE the collection stays complete.
            Step(runs=1),
            # With it, the complete run restarts the collection and the next run gets batch 1 again.
            # These runs find both endpoints through Airflow connections, which win over the
            # (now wrong) FORESTOPS_* URLs.
            Step(
                runs=2,
                env={
                    "FORESTOPS_RESTART_WHEN_DONE": "true",
                    "FORESTOPS_DATASOURCE_URL": "http://127.0.0.1:9",
                    "FORESTOPS_DATABASE_URL": "mysql+pymysql://nobody:nothing@127.0.0.1:9/none",
                    "AIRFLOW_CONN_FORESTOPS_DATASOURCE": recorder.url,
                    "AIRFLOW_CONN_FORESTOPS_RAW_DB": app_database.url.replace("mysql+pymysql://", "mysql://"),
                },
            ),
        ]
        runs = run_dag_plan(airflow_home, env_for(settings), plan)

    cycle = [r for r in runs if r.step == 0]
    outcomes = [r.outcome for r in cycle]
    assert [o["status"] for o in outcomes] == ["stored"] * (len(outcomes) - 1) + ["complete"]
    batches = [o["batch_number"] for o in outcomes[:-1]]
    assert batches == sorted(batches) and set(batches) == set(range(1, 11))
    assert len({r.result.run_id for r in runs}) == len(runs)
    # The Asset event is emitted exactly by the runs that stored new rows, and once by the run that
    # first found the collection complete (the final training's cue); otherwise its task is skipped.
    completing = cycle[-1]
    assert completing.outcome["collection_completed"] is True
    for run in runs:
        if run.outcome["rows_new"] > 0 or run is completing:
            assert run.result.tasks["announce_new_rows"] == "success"
            [extra] = run.asset_events
            assert extra["rows_new"] == run.outcome["rows_new"] and extra["fetch_id"] == run.outcome["fetch_id"]
            assert extra["collection_completed"] is (run is completing)
        else:
            assert not run.outcome["collection_completed"]
            assert run.result.tasks["announce_new_rows"] == "skipped" and run.asset_events == []
    assert sum(bool(run.asset_events) for run in runs) >= 11

    store = Store(app_database.url)
    try:
        fetches = store.fetches()
        complete_fetch = fetches[len(cycle) - 1]
        assert complete_fetch["status"] == "complete" and "all batches collected" in complete_fetch["detail"]

        [still_complete] = [r.outcome for r in runs if r.step == 1]
        assert still_complete["status"] == "complete" and not still_complete["restarted"]

        restart, after_restart = (r.outcome for r in runs if r.step == 2)
        assert restart["status"] == "complete" and restart["restarted"] is True
        [restart_fetch] = [f for f in fetches if f["id"] == restart["fetch_id"]]
        assert "restarted" in restart_fetch["detail"]
        assert recorder.restarts == 1
        assert after_restart["status"] == "stored" and after_restart["batch_number"] == 1

        # Exactly the unique valid rows served, each once; the log adds up.
        expected = contract_rows(recorder.delivered_valid_rows())
        assert store.raw() == expected
        assert_fetch_log_adds_up(fetches, len(expected))
    finally:
        store.close()
