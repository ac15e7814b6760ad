"""covertype_ingest: every FORESTOPS_INGEST_EVERY seconds, collect one portion of the data API.

Thin wiring only; the work is in ``forestops.ingest.tasks``.  The raw-data
Asset is emitted by ``announce_new_rows``, which runs only when the fetch
stored new rows (``has_new_rows`` short-circuits it otherwise), so the
training DAG is not woken by duplicates, failures or the end of collection.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

from forestops.ingest import tasks
from forestops.settings import get_settings
from forestops.storage import RAW_DATA_ASSET_NAME, RAW_DATA_ASSET_URI

RAW_DATA = Asset(name=RAW_DATA_ASSET_NAME, uri=RAW_DATA_ASSET_URI)


@dag(
    dag_id="covertype_ingest",
    schedule=timedelta(seconds=get_settings().ingest_every),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=5),
    },
    tags=["forestops", "ingest"],
    doc_md=__doc__,
)
def covertype_ingest():
    @task
    def collect(run_id: str | None = None) -> dict:
        return tasks.collect(run_id)

    @task.short_circuit
    def has_new_rows(outcome: dict) -> bool:
        return tasks.has_new_rows(outcome)

    @task(outlets=[RAW_DATA], retries=0)
    def announce_new_rows(outcome: dict, *, outlet_events=None) -> None:
        outlet_events[RAW_DATA].extra = tasks.asset_extra(outcome)

    outcome = collect()
    has_new_rows(outcome) >> announce_new_rows(outcome)


covertype_ingest()
