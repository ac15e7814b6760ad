"""The state of each service, and what to do when one is down."""

import streamlit as st

from forestops.ui import views
from forestops.ui.clients import collection
from forestops.ui.clients.airflow import login_refused
from forestops.ui.clients.http import ServiceError

# Airflow answered but refused the UI's credentials: it is up, so not "down".
LOGIN_REFUSED = ":orange-badge[:material/lock: login refused]"

services = views.page("Health", ":material/monitor_heart:")
settings = services.settings
st.button("Check again")


def report(name: str, url: str, outcome, detail: str = "") -> None:
    with st.container(border=True):
        if isinstance(outcome, ServiceError):
            badge = LOGIN_REFUSED if login_refused(outcome) else views.DOWN
            st.markdown(f"{badge} **{name}** · `{url}`")
            st.error(f"{outcome.problem}\n\nWhat to do: {outcome.advice}")
        else:
            st.markdown(f"{views.UP} **{name}** · `{url}`")
            if detail:
                st.caption(detail)


report("Data API", settings.datasource_url, services.datasource.health())

inference = services.inference.health()
if isinstance(inference, ServiceError):
    report("Inference API", settings.inference_url, inference)
else:
    model = services.inference.model()
    if isinstance(model, ServiceError):
        report("Inference API", settings.inference_url, model)
    elif model.get("version") is None:
        with st.container(border=True):
            st.markdown(f"{views.NO_MODEL} **Inference API** · `{settings.inference_url}`")
            st.warning(f"The API runs but serves no model yet. {model.get('message') or ''}")
    else:
        report(
            "Inference API",
            settings.inference_url,
            model,
            f"Serving {model.get('name')} version {model.get('version')}, loaded {views.ago(model.get('loaded_at'))}.",
        )

report("MLflow", settings.mlflow_tracking_uri, services.mlflow.health())

airflow = services.airflow.health()
if isinstance(airflow, ServiceError):
    report("Airflow", settings.airflow_url, airflow)
else:
    components = {k: (v or {}).get("status") for k, v in airflow.items() if isinstance(v, dict)}
    unhealthy = [k for k, state in components.items() if state not in ("healthy", None)]
    if unhealthy:
        report(
            "Airflow",
            settings.airflow_url,
            ServiceError(
                "Airflow",
                "the API server answers, but these components are not healthy: " + ", ".join(unhealthy),
                "Start the missing Airflow processes (`airflow scheduler`, `airflow dag-processor`, "
                "`airflow triggerer`; `make demo` starts them).",
            ),
        )
    else:
        login = services.airflow.token()
        if isinstance(login, ServiceError):
            report("Airflow", settings.airflow_url, login)
        else:
            report("Airflow", settings.airflow_url, airflow, ", ".join(f"{k}: {v}" for k, v in components.items()))

progress = collection.collection_progress(settings.raw_database_url, settings.group_number, recent=1)
report(
    "Raw data database (read for collection progress)",
    collection.redact(settings.raw_database_url),
    progress,
    ""
    if isinstance(progress, ServiceError)
    else f"{progress.total_new:,} rows collected for group {settings.group_number}.",
)
