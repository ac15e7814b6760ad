"""covertype_shadow: decide the shadowed challenger (promote or reject) once its figures are in.

Scheduled only under ``FORESTOPS_PROMOTION_POLICY=shadow`` (every
``SETTLE_EVERY``); runnable by hand otherwise.  One run at a time, and the
decision itself runs under the promotion lock, so several inference
workers never each promote.  Thin wiring only: the work is
``forestops.training.shadow.settle_step``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from forestops import names
from forestops.settings import get_settings
from forestops.training import shadow

SETTLE_EVERY = timedelta(minutes=2)


@dag(
    dag_id=names.DAG_SHADOW,
    schedule=SETTLE_EVERY if get_settings().promotion_policy == "shadow" else None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        # A stalled registry or store ends the attempt instead of holding a worker slot.
        "execution_timeout": timedelta(seconds=get_settings().train_task_timeout_seconds),
    },
    tags=["forestops", "promotion"],
    doc_md=__doc__,
)
def covertype_shadow():
    @task
    def settle(run_id: str | None = None) -> dict:
        return shadow.settle_step(get_settings(), run_id)

    settle()


covertype_shadow()
