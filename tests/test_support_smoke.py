"""The test harness itself: the backing servers start and are what they claim."""

import pytest
import sqlalchemy as sa

from forestops import schema
from tests.support import data

pytestmark = pytest.mark.integration


def test_fresh_database_is_empty_and_writable(fresh_database_url):
    engine = sa.create_engine(fresh_database_url)
    with engine.begin() as connection:
        assert connection.execute(sa.text("SHOW TABLES")).fetchall() == []
        connection.execute(sa.text("CREATE TABLE t (x INT)"))
        connection.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert connection.execute(sa.text("SELECT x FROM t")).scalar_one() == 1
    engine.dispose()


def test_mlflow_server_stores_artifacts_in_s3(mlflow_server, s3_endpoint, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment("harness-smoke")
    run = client.create_run(experiment_id)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt"]
    assert any(key.endswith("/note.txt") for key in s3_endpoint.object_keys())


@pytest.mark.unit
def test_generated_rows_follow_the_contract():
    for row in data.generate_rows(500):
        schema.normalise_raw_row(row)
