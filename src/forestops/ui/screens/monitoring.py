"""How the champion did on each batch before training on it: accuracy, macro-F1 and drift over time."""

import altair as alt
import pandas as pd
import streamlit as st

from forestops.ui import views
from forestops.ui.clients import monitoring
from forestops.ui.clients.http import ServiceError

services = views.page("Monitoring", ":material/monitoring:")
settings = services.settings
st.button("Refresh")
st.caption(
    "covertype_monitor scores every newly collected batch with the model that was champion when it arrived, "
    "before any training on those rows, and measures the drift of its features against the champion's "
    f"training rows. Alerts: accuracy {settings.alert_accuracy_drop:g} below the champion's evaluation accuracy, "
    f"or {settings.alert_drift_share:.0%} of the columns drifted."
)

rows = monitoring.batch_results(settings.raw_database_url)
if isinstance(rows, ServiceError):
    views.show_error(rows)
elif not rows:
    st.info(f"No batch monitored yet. {monitoring.NOTHING_YET}")
else:
    frame = pd.DataFrame(rows)
    frame["batch"] = frame["group_number"].astype(str) + "/" + frame["batch_number"].astype(str)
    frame["version"] = "v" + frame["model_version"].astype(str)
    latest = frame.iloc[-1]
    cells = st.columns(4)
    cells[0].metric("Batches monitored", len(frame))
    cells[1].metric("Latest accuracy", f"{latest['accuracy']:.3f}")
    cells[2].metric("Latest macro-F1", f"{latest['macro_f1']:.3f}")
    drift = latest["drift_share"]
    cells[3].metric("Latest drift share", "—" if pd.isna(drift) else f"{drift:.0%}")

    order = list(frame["batch"])
    quality = frame.melt(
        id_vars=["batch", "version", "rows_scored"],
        value_vars=["accuracy", "macro_f1"],
        var_name="metric",
        value_name="value",
    )
    base = alt.Chart(quality).encode(
        x=alt.X("batch:N", sort=order, title="group / batch"),
        y=alt.Y("value:Q", title="score", scale=alt.Scale(zero=False)),
        color=alt.Color("metric:N", title=None),
        tooltip=["batch", "version", "metric", alt.Tooltip("value:Q", format=".4f"), "rows_scored"],
    )
    labels = base.mark_text(dy=-10, fontSize=11).encode(text="version:N")
    st.subheader("Accuracy and macro-F1 per batch (label: the version that scored it)")
    st.altair_chart((base.mark_line(point=True) + labels).properties(height=280), use_container_width=True)

    drift_frame = frame.dropna(subset=["drift_share"])
    st.subheader("Drift share per batch")
    if drift_frame.empty:
        st.info("No drift measured yet (see the detail column below).")
    else:
        bars = (
            alt.Chart(drift_frame)
            .mark_bar()
            .encode(
                x=alt.X("batch:N", sort=order, title="group / batch"),
                y=alt.Y("drift_share:Q", title="share of feature columns drifted", scale=alt.Scale(domain=[0, 1])),
                color=alt.condition(
                    alt.datum.drift_share >= settings.alert_drift_share, alt.value("#d62728"), alt.value("#4c78a8")
                ),
                tooltip=["batch", "version", alt.Tooltip("drift_share:Q", format=".0%"), "drifted_columns"],
            )
        )
        rule = alt.Chart(pd.DataFrame({"y": [settings.alert_drift_share]})).mark_rule(strokeDash=[4, 4]).encode(y="y")
        st.altair_chart((bars + rule).properties(height=220), use_container_width=True)

    st.subheader("Batches")
    table = frame.assign(
        drifted=frame["drifted_columns"].map(lambda c: ", ".join(c) if isinstance(c, list) else "—"),
        report=frame["monitoring_run_id"].map(lambda r: monitoring.report_link(settings.mlflow_tracking_uri, r)),
    )
    st.dataframe(
        table[
            ["batch", "version", "rows_scored", "accuracy", "macro_f1", "drift_share", "drifted", "report", "scored_at"]
        ],
        hide_index=True,
        use_container_width=True,
        column_config={
            "accuracy": st.column_config.NumberColumn(format="%.4f"),
            "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.4f"),
            "drift_share": st.column_config.NumberColumn("drift share", format="%.2f"),
            "report": st.column_config.LinkColumn("drift report", display_text="open"),
        },
    )
