"""covertype_retention: keep the registry and the artefact store bounded.

Every FORESTOPS_RETENTION_EVERY_MINUTES (an hour), keep the
FORESTOPS_RETENTION_KEEP_VERSIONS newest versions, every aliased one and
every version the promotion history names within
FORESTOPS_RETENTION_HISTORY_DAYS; delete the others' versions, runs and
logged models, garbage-collect them with MLflow's gc and check that their
objects are gone from the artefact store.  Alongside, delete Airflow task
logs older than FORESTOPS_TASK_LOG_RETENTION_HOURS and cut the local stack's
service logs past FORESTOPS_SERVICE_LOG_MAX_MB.  Thin wiring only: the work
is ``forestops.training.retention.retention_step`` and
``forestops.log_retention.log_retention_step``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from forestops import log_retention, names
from forestops.settings import get_settings
from forestops.training import retention


@dag(
    dag_id=names.DAG_RETENTION,
    schedule=timedelta(minutes=get_settings().retention_every_minutes),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        # A stalled registry or store ends the attempt instead of holding a worker slot.
        "execution_timeout": timedelta(seconds=get_settings().train_task_timeout_seconds),
    },
    tags=["forestops", "retention"],
    doc_md=__doc__,
)
def covertype_retention():
    @task
    def apply_retention() -> dict:
        return retention.retention_step(get_settings())

    @task
    def prune_logs() -> dict:
        return log_retention.log_retention_step(get_settings())

    apply_retention()
    prune_logs()


covertype_retention()
