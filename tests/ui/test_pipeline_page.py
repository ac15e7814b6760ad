"""The pipeline page against the real data API and a database filled by the real ingestion."""

import httpx
import pytest

from tests.ui.helpers import button, page, shown, sign_in

pytestmark = pytest.mark.integration


def test_collection_progress_and_the_data_api_clock(ui_env, ui_data_api, ui_raw_database):
    ui_env(datasource_url=ui_data_api, database_url=ui_raw_database["url"], group_number="1")
    at = page("pipeline").run()
    assert not at.exception
    status = httpx.get(f"{ui_data_api}/status", params={"group_number": 1}).json()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Current batch"] == f"{status['batch_number']} of {status['batch_count']}"
    assert metrics["Batches remaining"] == str(status["batches_remaining"])
    assert metrics["Next batch in"].endswith(" s")

    outcomes = ui_raw_database["outcomes"]
    progress = at.dataframe[0].value
    assert progress["batch"].tolist() == [1]
    row = progress.iloc[0]
    assert row["fetches"] == len(outcomes)
    assert row["rows received"] == sum(o.rows_received for o in outcomes)
    assert row["new"] == sum(o.rows_new for o in outcomes)
    assert row["duplicates"] == sum(o.rows_duplicate for o in outcomes)
    assert row["rejected"] == sum(o.rows_rejected for o in outcomes)
    assert f"{sum(o.rows_new for o in outcomes):,} distinct rows stored" in shown(at)
    # Airflow is not running in this test: one clear message, the rest of the page still works.
    assert [e.value for e in at.error if "Airflow" in e.value]


def test_restart_resets_the_group_at_the_data_api(ui_env, ui_data_api):
    group = 3
    ui_env(datasource_url=ui_data_api, group_number=str(group))
    assert httpx.get(f"{ui_data_api}/data", params={"group_number": group}).status_code == 200
    at = sign_in(page("pipeline").run())
    assert {m.label: m.value for m in at.metric}["Current batch"].startswith("1 of")
    assert "No fetch of group 3 has been logged yet" not in shown(at)  # no database: an error instead
    at.checkbox(key="pipeline.confirm_restart").check().run()
    at = button(at, "Restart data collection").click().run()
    [said] = [s.value for s in at.success if f"The data API restarted group {group}" in s.value]
    assert "the next fetch starts batch 1" in said and "{" not in said  # a sentence, not a raw dict
    assert at.checkbox(key="pipeline.confirm_restart").value is False  # a second click needs a new confirmation
    assert button(at, "Restart data collection").disabled
    assert {m.label: m.value for m in at.metric}["Current batch"] == "not started"
    assert "Batch 1 starts with the next fetch" in shown(at) and "started never" not in shown(at)
    assert httpx.get(f"{ui_data_api}/status", params={"group_number": group}).json()["batch_number"] is None
