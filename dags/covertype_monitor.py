"""covertype_monitor: score each newly collected batch with the champion of that moment.

Scheduled on the same raw-data Asset as covertype_train.  Thin wiring only:
``score`` calls ``forestops.monitoring.steps.score_new_batches`` (which scores
only rows the champion never trained on, so it stays prequential whatever
training does meanwhile, and upserts one ``batch_monitoring`` row per
batch), ``alert`` reports crossed thresholds (task log always; mail or
Slack when configured), and when FORESTOPS_RETRAIN_ON_DRIFT is on an alert
triggers covertype_train with ``force`` and the reason in its conf, which
training records in ``training_log``.  A high priority weight lets the
monitor start before training when both wait for a worker slot.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, dag, task

from forestops import names
from forestops.monitoring import alerts, steps
from forestops.settings import get_settings

RAW_DATA = Asset(name=names.RAW_DATA_ASSET_NAME, uri=names.RAW_DATA_ASSET_URI)


@dag(
    dag_id=names.DAG_MONITOR,
    schedule=[RAW_DATA],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "priority_weight": 10},
    tags=["forestops", "monitoring"],
    doc_md=__doc__,
)
def covertype_monitor():
    @task
    def score(run_id: str | None = None) -> dict:
        return steps.score_new_batches(get_settings(), run_id)

    @task
    def alert(scored: dict) -> list[dict]:
        found = steps.find_alerts(get_settings(), scored)
        alerts.notify(found, get_settings())
        return found

    @task.short_circuit
    def retrain_wanted(found: list[dict]) -> bool:
        return bool(found) and get_settings().retrain_on_drift

    @task
    def retrain_reason(found: list[dict]) -> str:
        return "monitoring alert: " + alerts.summary(found)

    found = alert(score())
    reason = retrain_reason(found)
    retrain = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id=names.DAG_TRAIN,
        trigger_run_id="retrain_after_{{ run_id }}",
        conf={"force": True, "reason": "{{ ti.xcom_pull(task_ids='retrain_reason') }}"},
        skip_when_already_exists=True,
        retries=0,
    )
    retrain_wanted(found) >> reason >> retrain


covertype_monitor()
