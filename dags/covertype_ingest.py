"""covertype_ingest: every FORESTOPS_INGEST_EVERY seconds, collect one portion of the data API.

Thin wiring only; the work is in ``forestops.ingest.tasks``, imported inside
the tasks so that parsing this file stays cheap.  Endpoints come
from FORESTOPS_DATASOURCE_URL / FORESTOPS_DATABASE_URL (or FORESTOPS_MYSQL_URL),
or from the Airflow connections ``forestops_datasource`` and
``forestops_raw_db`` when they exist (for example AIRFLOW_CONN_* variables).  The raw-data
Asset is emitted by ``announce_new_rows``, which runs only when the fetch
stored new rows or first found the collection complete (``should_announce``
short-circuits it otherwise), so the training DAG is not woken by duplicates
or failures, and is woken once for its final training when the cycle ends.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Connection, dag, task
from airflow.sdk.exceptions import AirflowNotFoundException

from forestops import names
from forestops.ingest import connections
from forestops.settings import get_settings

RAW_DATA = Asset(name=names.RAW_DATA_ASSET_NAME, uri=names.RAW_DATA_ASSET_URI)


def _connection_uri(conn_id: str) -> str | None:
    try:
        return Connection.get(conn_id).get_uri()
    except AirflowNotFoundException:
        return None


@dag(
    dag_id=names.DAG_INGEST,
    schedule=timedelta(seconds=get_settings().ingest_every),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=5),
        # A stalled data API or store ends the attempt (and Airflow retries) instead of holding the slot.
        "execution_timeout": timedelta(seconds=get_settings().ingest_task_timeout_seconds),
    },
    tags=["forestops", "ingest"],
    doc_md=__doc__,
)
def covertype_ingest():
    @task
    def collect(run_id: str | None = None) -> dict:
        from forestops.ingest import tasks

        overrides = connections.settings_overrides(
            _connection_uri(connections.DATASOURCE_CONN_ID), _connection_uri(connections.RAW_DB_CONN_ID)
        )
        return tasks.collect(run_id, overrides)

    @task.short_circuit
    def should_announce(outcome: dict) -> bool:
        from forestops.ingest import tasks

        return tasks.should_announce(outcome)

    @task(outlets=[RAW_DATA], retries=0)
    def announce_new_rows(outcome: dict, *, outlet_events=None) -> None:
        from forestops.ingest import tasks

        outlet_events[RAW_DATA].extra = tasks.asset_extra(outcome)

    outcome = collect()
    should_announce(outcome) >> announce_new_rows(outcome)


covertype_ingest()
