"""Watch and drive the pipeline: collection progress, DAG runs, triggers, restart."""

import pandas as pd
import streamlit as st

from forestops.names import DAG_TRAIN
from forestops.ui import auth, views
from forestops.ui.clients import collection
from forestops.ui.clients.airflow import PIPELINE_DAGS
from forestops.ui.clients.http import ServiceError

services = views.page("Pipeline", ":material/conveyor_belt:")
settings = services.settings
group = settings.group_number
st.button("Refresh")

# -- actions first, so their outcome shows above what they changed ------------
st.subheader("Actions")
CONFIRM_KEY = "pipeline.confirm_restart"
access = auth.access(settings)
if not access.allowed:
    st.info(access.refusal, icon=":material/lock:")


def _refused() -> bool:
    """Checked again when an action runs (a click can arrive for a button drawn disabled); True: refused."""
    now = auth.access(settings)
    if not now.allowed:
        views.remember("pipeline.action", ("error", f"Not done: {now.refusal}"))
    return not now.allowed


def _queued_note(dag_id: str, run_id: str | None) -> str:
    """Which run a new one waits behind (a DAG runs one at a time), or nothing."""
    runs = services.airflow.dag_runs(dag_id, limit=5)
    if isinstance(runs, ServiceError):
        return ""
    ahead = [r for r in runs if r.get("state") in ("running", "queued") and r.get("dag_run_id") != run_id]
    if not ahead:
        return ""
    first = ahead[-1]
    return f" It is queued behind run `{first.get('dag_run_id')}` ({first.get('state')}), which finishes first."


def _trigger(dag_id: str, conf: dict | None = None) -> None:
    if _refused():
        return
    result = services.airflow.trigger(dag_id, conf)
    if isinstance(result, ServiceError):
        views.remember("pipeline.action", ("error", f"Triggering {dag_id} failed: {result.problem}. {result.advice}"))
        return
    run_id = result.get("dag_run_id")
    forced = " (forced past the new-rows gate)" if conf and conf.get("force") else ""
    views.remember(
        "pipeline.action",
        ("ok", f"Triggered {dag_id}{forced}: run `{run_id}` is {result.get('state')}.{_queued_note(dag_id, run_id)}"),
    )


def _restart() -> None:
    """Runs as the button's callback, so the confirmation can be unticked before the page draws again."""
    st.session_state[CONFIRM_KEY] = False
    if _refused():
        return
    result = services.datasource.restart(group)
    if isinstance(result, ServiceError):
        views.remember("pipeline.action", ("error", f"Restart failed: {result.problem}. {result.advice}"))
    else:
        views.remember(
            "pipeline.action",
            (
                "ok",
                f"The data API restarted group {group}: the next fetch starts batch 1 of {settings.batch_count} "
                "again, and ingestion collects into the same store (rows already stored count as duplicates).",
            ),
        )


buttons = st.columns(3)
for column, dag_id in zip(buttons, PIPELINE_DAGS, strict=False):
    if dag_id == DAG_TRAIN:
        force = column.checkbox("Force (train even without enough new rows)", key="pipeline.force_train")
        if column.button(f"Trigger {dag_id}", key=f"trigger.{dag_id}", disabled=not access.allowed):
            _trigger(dag_id, {"force": True} if force else None)
    elif column.button(f"Trigger {dag_id}", key=f"trigger.{dag_id}", disabled=not access.allowed):
        _trigger(dag_id)
confirm = buttons[2].checkbox(
    f"Confirm: restart group {group} from batch 1", key=CONFIRM_KEY, disabled=not access.allowed
)
buttons[2].button("Restart data collection", disabled=not (confirm and access.allowed), on_click=_restart)
views.show_remembered("pipeline.action")

# -- the data API's clock -------------------------------------------------------
st.subheader(f"Data API — group {group}")
status = services.datasource.status(group)
if isinstance(status, ServiceError):
    views.show_error(status)
else:
    batch = status.get("batch_number")
    cells = st.columns(4)
    cells[0].metric("Current batch", "not started" if batch is None else f"{batch} of {status.get('batch_count')}")
    cells[1].metric("Batches remaining", status.get("batches_remaining"))
    seconds = status.get("seconds_to_next_batch")
    if status.get("finished"):
        cells[2].metric("Next batch", "all served")
    else:
        cells[2].metric("Next batch in", "—" if seconds is None else f"{float(seconds):.0f} s")
    cells[3].metric("Rows per portion", status.get("portion_size"))
    started = status.get("batch_started_at")
    when = f"Batch started {views.ago(started)}" if started else "Batch 1 starts with the next fetch"
    st.caption(
        f"{when}; each batch is served for {status.get('batch_seconds')} s "
        f"({status.get('rows_per_batch')} rows per batch)."
    )

# -- what ingestion stored --------------------------------------------------------
st.subheader("Collection progress")
progress = collection.collection_progress(settings.raw_database_url, group)
if isinstance(progress, ServiceError):
    views.show_error(progress)
else:
    if progress.complete:
        st.success(
            f"All {settings.batch_count} batches collected; restart the collection above to collect again.",
            icon=":material/task_alt:",
        )
    if not progress.batches:
        st.info(f"No batch of group {group} has been stored yet in this cycle; trigger covertype_ingest above.")
    else:
        st.markdown(
            f"**Cycle {progress.cycle}**"
            + (" (earlier cycles: restarts of the collection)" if progress.cycle > 1 else "")
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "batch": b.batch_number,
                        "fetches": b.fetches,
                        "rows received": b.rows_received,
                        "new": b.rows_new,
                        "duplicates": b.rows_duplicate,
                        "rejected": b.rows_rejected,
                        "failed fetches": b.errors,
                        "last fetch (UTC)": b.last_fetch_at,
                    }
                    for b in progress.batches
                ]
            ),
            hide_index=True,
        )
    cycle_part = f"{progress.cycle_new:,} new in this cycle, " if progress.cycle > 1 else ""
    st.caption(f"{cycle_part}{progress.total_new:,} distinct rows stored so far.")
    with st.expander("Latest fetches"):
        st.dataframe(pd.DataFrame([vars(r) for r in progress.recent]), hide_index=True)

# -- Airflow -----------------------------------------------------------------------
st.subheader("Recent DAG runs")
login = services.airflow.token()
if isinstance(login, ServiceError):
    views.show_error(login)
for dag_id in PIPELINE_DAGS if not isinstance(login, ServiceError) else ():
    st.markdown(f"**{dag_id}**")
    runs = services.airflow.dag_runs(dag_id)
    if isinstance(runs, ServiceError):
        views.show_error(runs)
        continue
    dag = services.airflow.dag(dag_id)
    if not isinstance(dag, ServiceError) and dag.get("is_paused"):
        st.warning(f"{dag_id} is paused: triggered runs wait until it is unpaused in Airflow.")
    if not runs:
        st.caption("No runs yet.")
        continue
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run id": r.get("dag_run_id"),
                    "state": r.get("state"),
                    "type": r.get("run_type"),
                    "queued": r.get("queued_at"),
                    "started": r.get("start_date"),
                    "ended": r.get("end_date"),
                }
                for r in runs
            ]
        ),
        hide_index=True,
    )
