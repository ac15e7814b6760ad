"""covertype_train: retrain when enough new rows arrived, then champion/challenger.

Scheduled on the raw-data Asset (the ingest DAG emits it when it stored new
rows) and runnable by hand; ``{"force": true}`` in the run's conf skips the
new-rows gate.  Thin wiring only: every task calls one function of
``forestops.training.steps`` and passes its typed result through XCom
(``to_xcom()`` / ``from_xcom()``).  The steps module (pandas, scikit-learn,
MLflow, alembic) is imported inside the tasks, so parsing this file imports
only Airflow and forestops' names and settings.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

from forestops import names
from forestops.settings import get_settings

RAW_DATA = Asset(name=names.RAW_DATA_ASSET_NAME, uri=names.RAW_DATA_ASSET_URI)


@dag(
    dag_id=names.DAG_TRAIN,
    schedule=[RAW_DATA],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(seconds=get_settings().train_task_timeout_seconds),
    },
    params={"force": False},
    tags=["forestops", "training"],
    doc_md=__doc__,
)
def covertype_train():
    @task(retries=0)
    def gate(dag_run=None, run_id: str | None = None) -> dict:
        from forestops.training import steps

        conf = (dag_run.conf or {}) if dag_run is not None else {}
        # A run triggered by covertype_monitor's alert carries its reason, recorded in training_log.
        decision = steps.gate_step(
            get_settings(), force=bool(conf.get("force", False)), run_id=run_id, trigger=conf.get("reason") or None
        )
        return decision.to_xcom()

    @task.short_circuit
    def enough_new_rows(decision: dict) -> bool:
        from forestops.training.gate import GateDecision

        return GateDecision.from_xcom(decision).train

    @task
    def load(decision: dict) -> dict:
        from forestops.training import steps
        from forestops.training.gate import GateDecision

        return steps.load_step(get_settings(), GateDecision.from_xcom(decision)).to_xcom()

    @task(retries=0)
    def check(loaded: dict) -> dict:
        from forestops.training import steps

        return steps.check_step(get_settings(), steps.Loaded.from_xcom(loaded)).to_xcom()

    @task
    def train(loaded: dict, run_id: str | None = None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from forestops.training import preemption, steps

        try:
            return steps.train_step(get_settings(), steps.Loaded.from_xcom(loaded), run_id).to_xcom()
        except preemption.Superseded as error:
            # The final training (queued behind this run) replaces it; the rest of this run is skipped.
            raise AirflowSkipException(str(error)) from None

    @task
    def evaluate(loaded: dict, trained: dict) -> dict:
        from forestops.training import steps

        return steps.evaluate_step(
            get_settings(), steps.Loaded.from_xcom(loaded), steps.Trained.from_xcom(trained)
        ).to_xcom()

    @task
    def register(loaded: dict, trained: dict, evaluated: dict) -> dict:
        from forestops.training import steps

        return steps.register_step(
            get_settings(),
            steps.Loaded.from_xcom(loaded),
            steps.Trained.from_xcom(trained),
            steps.Evaluated.from_xcom(evaluated),
        ).to_xcom()

    @task
    def promote(loaded: dict, evaluated: dict, registered: dict) -> dict:
        from forestops.training import steps

        return steps.promote_step(
            get_settings(),
            steps.Loaded.from_xcom(loaded),
            steps.Evaluated.from_xcom(evaluated),
            steps.Registered.from_xcom(registered),
        ).to_xcom()

    @task
    def explain(loaded: dict, trained: dict, evaluated: dict) -> None:
        from forestops.training import steps

        steps.explain_step(
            get_settings(),
            steps.Loaded.from_xcom(loaded),
            steps.Trained.from_xcom(trained),
            steps.Evaluated.from_xcom(evaluated),
        )

    decision = gate()
    loaded = load(decision)
    enough_new_rows(decision) >> loaded
    checked = check(loaded)
    trained = train(loaded)
    checked >> trained
    evaluated = evaluate(loaded, trained)
    registered = register(loaded, trained, evaluated)
    promote(loaded, evaluated, registered) >> explain(loaded, trained, evaluated)


covertype_train()
