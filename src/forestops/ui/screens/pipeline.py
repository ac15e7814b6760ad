"""Watch and drive the pipeline: collection progress, DAG runs, triggers, restart."""

import pandas as pd
import streamlit as st

from forestops.ui import views
from forestops.ui.clients import collection
from forestops.ui.clients.airflow import PIPELINE_DAGS
from forestops.ui.clients.http import ServiceError

services = views.page("Pipeline", ":material/conveyor_belt:")
settings = services.settings
group = settings.group_number
st.button("Refresh")

# -- actions first, so their outcome shows above what they changed ------------
st.subheader("Actions")
buttons = st.columns(3)
for column, dag_id in zip(buttons, PIPELINE_DAGS, strict=False):
    if column.button(f"Trigger {dag_id}", key=f"trigger.{dag_id}"):
        result = services.airflow.trigger(dag_id)
        if isinstance(result, ServiceError):
            views.remember(
                "pipeline.action", ("error", f"Triggering {dag_id} failed: {result.problem}. {result.advice}")
            )
        else:
            views.remember(
                "pipeline.action",
                ("ok", f"Triggered {dag_id}: run `{result.get('dag_run_id')}` is {result.get('state')}."),
            )
confirm = buttons[2].checkbox(f"Confirm: restart group {group} from batch 1")
if buttons[2].button("Restart data collection", disabled=not confirm):
    result = services.datasource.restart(group)
    if isinstance(result, ServiceError):
        views.remember("pipeline.action", ("error", f"Restart failed: {result.problem}. {result.advice}"))
    else:
        views.remember("pipeline.action", ("ok", f"The data API restarted group {group}: {result}"))
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
    st.caption(
        f"Batch started {views.ago(status.get('batch_started_at'))}; each batch is served for "
        f"{status.get('batch_seconds')} s ({status.get('rows_per_batch')} rows per batch)."
    )

# -- what ingestion stored --------------------------------------------------------
st.subheader("Collection progress")
progress = collection.collection_progress(settings.raw_database_url, group)
if isinstance(progress, ServiceError):
    views.show_error(progress)
elif not progress.batches:
    st.info(f"No fetch of group {group} has been logged yet; trigger covertype_ingest above.")
else:
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
    st.caption(f"{progress.total_new:,} distinct rows stored so far.")
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
