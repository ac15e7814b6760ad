"""Compare the registered model versions; roll back or promote (confirmed); the promotion history."""

import altair as alt
import pandas as pd
import streamlit as st

from forestops import names
from forestops.ui import release, views
from forestops.ui.clients.http import ServiceError
from forestops.ui.clients.mlflow_registry import promotion_cells


def _short(value: str | None) -> str | None:
    """Scores are stored as full-precision strings; four decimals read better in a table."""
    try:
        return f"{float(value):.4f}" if value else value
    except ValueError:
        return value


services = views.page("Models", ":material/query_stats:")
settings = services.settings
mlflow = services.mlflow
st.caption(f"Registered model `{settings.model_name}` in MLflow at {settings.mlflow_tracking_uri}.")

versions = mlflow.versions()
if isinstance(versions, ServiceError):
    views.show_error(versions)
    st.stop()
if not versions:
    st.info(
        f"No version of `{settings.model_name}` is registered yet. Trigger `covertype_train` on the Pipeline page "
        "(or run `forestops train`) once some data has been collected."
    )
    st.stop()

champion = next((v for v in versions if names.ALIAS_CHAMPION in v.aliases), None)
challenger = next((v for v in versions if names.ALIAS_CHALLENGER in v.aliases), None)
cells = st.columns(3)
cells[0].metric("Versions", len(versions))
cells[1].metric("@champion", f"v{champion.version}" if champion else "none")
cells[2].metric("@challenger", f"v{challenger.version}" if challenger else "none")

metric_names = sorted({name for v in versions for name in v.metrics})
primary = settings.primary_metric
shown_metrics = [m for m in (primary, "accuracy", "f1_macro") if m in metric_names]
shown_metrics = list(dict.fromkeys(shown_metrics))
table = pd.DataFrame(
    [
        {
            "version": v.version,
            "aliases": ", ".join(f"@{a}" for a in v.aliases),
            **{m: v.metrics.get(m) for m in shown_metrics},
            **{tag: _short(cell) for tag, cell in promotion_cells(v.tags).items()},
            "registered (UTC)": v.created_at,
            "run": mlflow.run_url(v.experiment_id, v.run_id) if v.run_id and v.experiment_id else None,
        }
        for v in versions
    ]
)
st.dataframe(
    table,
    hide_index=True,
    column_config={"run": st.column_config.LinkColumn("MLflow run", display_text="open run")},
)
st.caption(
    f"**candidate_score**: the version's {primary} on the evaluation rows of the training that made it. "
    f"**champion_score**: the champion of that moment scored on those same rows, so the two compare like for like "
    f"(a version becomes champion when candidate_score exceeds champion_score by FORESTOPS_PROMOTION_MARGIN, "
    f"{settings.promotion_margin:g}). 'no previous champion': there was none to compare with."
)
pin = mlflow.promotion_pin()
if isinstance(pin, ServiceError):
    views.show_error(pin)
elif pin is not None:
    st.warning(
        f"Pinned: {pin.describe()}. Trainings still register and score new versions, as challengers only; "
        "`forestops unpin` resumes automatic promotion.",
        icon=":material/push_pin:",
    )
else:
    st.caption("Automatic promotion is on: `forestops pin` pauses it (the champion stays until `forestops unpin`).")

release.show_controls(settings, versions, champion)
release.show_history(settings)

if primary in metric_names:
    st.subheader(f"{primary} over versions")
    history = pd.DataFrame(
        [{"version": v.version, primary: v.metrics[primary]} for v in versions if primary in v.metrics]
    ).sort_values("version")
    chart = (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(x=alt.X("version:O", title="version"), y=alt.Y(f"{primary}:Q", scale=alt.Scale(zero=False)))
    )
    st.altair_chart(chart)
else:
    st.caption(f"No version has a `{primary}` metric yet.")

curve = pd.DataFrame(
    [
        {"version": f"v{v.version}", "training rows": v.metrics["training_rows"], "metric": m, "score": v.metrics[m]}
        for v in versions
        if "training_rows" in v.metrics
        for m in ("accuracy", "f1_macro")
        if m in v.metrics
    ]
)
if not curve.empty:
    st.subheader("Learning curve")
    st.altair_chart(
        alt.Chart(curve)
        .mark_line(point=True)
        .encode(
            x=alt.X("training rows:Q", title="training rows"),
            y=alt.Y("score:Q", scale=alt.Scale(zero=False)),
            color=alt.Color("metric:N"),
            tooltip=["version", "training rows", "metric", "score"],
        )
    )
    st.caption(
        "Each version's scores on the evaluation rows of the training that made it, against the rows it was "
        "trained on: what more data bought. Every training also logs this curve on its MLflow run "
        "(learning_curve.png)."
    )

st.subheader("One version")
labels = {v.version: f"v{v.version} {' '.join('@' + a for a in v.aliases)}".strip() for v in versions}
default = champion.version if champion else versions[0].version
chosen_number = st.selectbox("Version", list(labels), index=list(labels).index(default), format_func=labels.__getitem__)
chosen = next(v for v in versions if v.version == chosen_number)
links = st.columns(2)
links[0].link_button("Model version in MLflow", mlflow.version_url(chosen.version))
if chosen.run_id and chosen.experiment_id:
    links[1].link_button("Training run in MLflow", mlflow.run_url(chosen.experiment_id, chosen.run_id))
details, picture = st.columns([1, 2])
with details:
    st.markdown("**Metrics**")
    st.dataframe(pd.Series(chosen.metrics, name="value").sort_index())
    if chosen.tags:
        st.markdown("**Tags**")
        st.json(chosen.tags)
with picture:
    if chosen.run_id is None:
        st.info("This version was not logged by a run, so it has no confusion matrix.")
    else:
        image = mlflow.artifact(chosen.run_id)
        if isinstance(image, ServiceError):
            views.show_error(image)
        else:
            st.image(image, caption=f"Confusion matrix of v{chosen.version} on its evaluation rows")
