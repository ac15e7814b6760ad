"""The Monitoring page reads batch_monitoring from a real database; it needs no other service."""

import pytest

from forestops.monitoring import store
from forestops.storage.db import ensure_schema, make_engine
from tests.ui.helpers import page, shown

pytestmark = pytest.mark.integration


def test_accuracy_and_drift_per_batch_with_the_scoring_version(ui_env, fresh_database_url):
    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    with engine.begin() as connection:
        store.upsert(connection, store.BatchResult(1, 2, "1", 900, 0.91, 0.84, {"0": 0.9}, 900, 0.0, [], None, "r1"))
        store.upsert(
            connection,
            store.BatchResult(1, 3, "2", 800, 0.72, 0.61, {"0": 0.7}, 1700, 0.5, ["Elevation", "Slope"], None, "r2"),
        )
    engine.dispose()
    ui_env(database_url=fresh_database_url, mlflow_tracking_uri="http://127.0.0.1:5999")
    at = page("monitoring").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Batches monitored"] == "2"
    assert metrics["Latest accuracy"] == "0.720" and metrics["Latest drift share"] == "50%"
    table = at.dataframe[0].value
    assert table["batch"].tolist() == ["1/2", "1/3"] and table["version"].tolist() == ["v1", "v2"]
    assert table["drifted"].tolist()[1] == "Elevation, Slope"
    assert table["report"].tolist()[1].endswith("get-artifact?path=drift_report.html&run_uuid=r2")


def test_without_a_database_the_page_says_what_to_do(ui_env, tmp_path):
    ui_env(database_url=f"sqlite:///{tmp_path / 'absent.db'}")
    at = page("monitoring").run()
    assert not at.exception
    assert "nothing has been collected yet" in shown(at)
    assert not (tmp_path / "absent.db").exists()
