"""Retention against the real MLflow server with S3 (moto) artefacts: what is deleted is gone from the bucket."""

from __future__ import annotations

import datetime as dt

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from forestops.settings import load_settings
from forestops.storage import tables
from forestops.storage.db import ensure_schema, make_engine
from forestops.training import candidates, data, promotion, registry, retention
from tests.training.conftest import insert_raw_rows

pytestmark = pytest.mark.integration


def test_choose_kept_keeps_newest_aliased_and_recent_history():
    kept, doomed = retention.choose_kept(["1", "2", "3", "4", "10", "11"], {"2"}, {"3"}, keep_latest=2)
    assert kept == ["2", "3", "10", "11"] and doomed == ["1", "4"]


def test_retention_deletes_versions_runs_and_their_s3_objects(
    mlflow_server, s3_endpoint, fresh_database_url, training_rows, tmp_path
):
    insert_raw_rows(fresh_database_url, training_rows[:400])
    name = f"retention_{tmp_path.name[-8:]}".replace("-", "_")
    settings = load_settings(
        database_url=fresh_database_url,
        mlflow_tracking_uri=mlflow_server.url,
        model_name=name,
        experiment_name=name,
        retention_keep_versions=1,
        retention_history_days=7,
        home=tmp_path / "home",
    )
    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    x, y = data.features_and_labels(data.read_raw_rows(engine))
    model = candidates.fit_pipeline(candidates.build_pipeline("baseline"), x, y)
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment(name)
    versions = []
    for _ in range(4):
        with mlflow.start_run():
            versions.append(registry.log_and_register(model, x.head(5), name))
    v1, v2, v3, v4 = versions
    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    promotion.promote(engine, client, name, v3, decided_by="cli:test")  # v3: named by recent history
    promotion.promote(engine, client, name, v2, decided_by="cli:test")  # v2: holds @champion

    doomed = client.get_model_version(name, v1)
    run_prefix = retention._relative(client.get_run(doomed.run_id).info.artifact_uri)
    doomed_model = retention.model_id_of(doomed)
    model_prefix = retention._relative(client.get_logged_model(doomed_model).artifact_location)
    s3 = s3_endpoint.client()
    destination = mlflow_server.artifacts_destination
    assert retention.remaining_objects(destination, model_prefix, s3), "the model's objects should be in S3 first"
    newest = retention.model_id_of(client.get_model_version(name, v4))
    kept_model = retention._relative(client.get_logged_model(newest).artifact_location)

    tally = {"model_name": name, "champion_version": v2, "challenger_version": v4, "worker": "w:1", "requests": 1}
    tally.update(rows=1, rows_agreeing=1, latency_seconds_sum=0.01, latency_seconds_max=0.01, failures=0)
    with engine.begin() as connection:
        connection.execute(
            tables.shadow_tallies.insert(),
            [{**tally, "flushed_at": dt.datetime(2020, 1, 1)}, {**tally, "flushed_at": dt.datetime.now(dt.UTC)}],
        )

    report = retention.apply(engine, client, settings, mlflow_server.backend_store_uri, destination, s3)
    assert report.pruned_tallies == 1  # the old shadow counts go, the recent ones stay
    assert report.kept == [v2, v3, v4] and report.deleted_versions == [v1]
    assert report.deleted_runs == [doomed.run_id] and report.deleted_models == [doomed_model]
    assert report.left_behind == []
    assert retention.remaining_objects(destination, model_prefix, s3) == []
    assert retention.remaining_objects(destination, run_prefix, s3) == []
    assert retention.remaining_objects(destination, kept_model, s3), "a kept version lost its objects"
    with pytest.raises(MlflowException):
        client.get_run(doomed.run_id)  # gone for good, not just marked deleted
    assert sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'")) == [v2, v3, v4]

    # A second pass finds nothing more to delete.
    assert (
        retention.apply(engine, client, settings, mlflow_server.backend_store_uri, destination, s3).deleted_versions
        == []
    )
    engine.dispose()


def test_the_retention_dag_also_prunes_old_task_logs_and_cuts_service_logs(
    airflow_home, fresh_database_url, settings_for, tmp_path
):
    """Real Airflow (``dag.test()``): both tasks run; the log task works on the folder Airflow logs to."""
    import os
    import time

    from forestops.log_retention import CUT_MARK
    from tests.support.airflow import run_dag_test
    from tests.training.conftest import env_of

    settings = settings_for(fresh_database_url)
    task_logs = tmp_path / "task-logs"
    old = task_logs / "dag_id=covertype_ingest" / "run_id=scheduled__old" / "task_id=fetch" / "attempt=1.log"
    old.parent.mkdir(parents=True)
    old.write_text("an old task log\n")
    stamp = time.time() - 3 * 3600
    os.utime(old, (stamp, stamp))
    service_log = settings.home / "logs" / "scheduler.log"
    service_log.parent.mkdir(parents=True)
    service_log.write_text("".join(f"scheduler line {n}\n" for n in range(5000)))
    env = {
        **env_of(settings),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(task_logs),
        "FORESTOPS_TASK_LOG_RETENTION_HOURS": "2",
        "FORESTOPS_SERVICE_LOG_MAX_MB": "0.01",
    }

    result = run_dag_test(airflow_home, "covertype_retention", env)

    assert result.succeeded and result.tasks == {"apply_retention": "success", "prune_logs": "success"}, result.output[
        -6000:
    ]
    assert not old.exists() and not (task_logs / "dag_id=covertype_ingest").exists()
    content = service_log.read_bytes()
    assert content.startswith(CUT_MARK) and content.endswith(b"scheduler line 4999\n")
    assert len(content) <= 0.01 * 2**20
