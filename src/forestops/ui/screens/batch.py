"""Predict a CSV file in the raw format; every row is checked before anything is sent.

A file with some bad rows lists them (line, column, problem) and offers to
predict the valid rows only; their results keep their line numbers in the file.
"""

import pandas as pd
import streamlit as st

from forestops import schema
from forestops.ui import csv_batch, views
from forestops.ui.clients.http import ServiceError

services = views.page("Batch predict", ":material/upload_file:")
st.markdown(
    "Upload a CSV in the raw format: the columns "
    f"`{', '.join(schema.FEATURE_COLUMNS)}` and optionally `{schema.LABEL}` (then the page shows how many "
    "predictions match it). A header line is optional; without one, the columns are in that order. "
    f"Up to {csv_batch.MAX_ROWS:,} rows."
)
upload = st.file_uploader("CSV file", type=["csv"])
if upload is None:
    st.stop()

parsed = csv_batch.parse_csv(upload.getvalue())
partial = isinstance(parsed, csv_batch.CsvRejected)  # some rows left out: results carry their line numbers
if isinstance(parsed, csv_batch.CsvRejected):
    (st.error if parsed.valid is None else st.warning)(parsed.summary)
    st.dataframe(
        pd.DataFrame([{"line": p.line, "column": p.column, "problem": p.message} for p in parsed.problems]),
        hide_index=True,
    )
    if parsed.valid is None:
        st.stop()
    batch = parsed.valid
    st.info(
        f"{len(batch.records):,} rows are valid. You can fix the lines above and upload the file again, or "
        "predict the valid rows only: the results keep each row's line number in the file."
    )
    label = f"Predict the {len(batch.records):,} valid rows"
else:
    batch = parsed
    st.info(f"{len(batch.records):,} valid rows.")
    label = f"Predict {len(batch.records):,} rows"
if st.button(label, type="primary"):
    st.session_state["batch.reply"] = (upload.file_id, services.inference.predict(batch.records))

stored = st.session_state.get("batch.reply")
if stored is None or stored[0] != upload.file_id:
    st.stop()
reply = stored[1]
if isinstance(reply, ServiceError):
    views.show_error(reply, "No predictions")
    st.stop()

rows = [
    {
        "predicted_cover_type": p.cover_type,
        "predicted_cover_type_name": p.cover_type_name,
        "probability": round(p.probabilities.get(p.cover_type_name, float("nan")), 4),
        "model_version": reply.model_version,
    }
    for p in reply.predictions
]
left_out = f" ({parsed.bad_lines:,} lines with problems left out)" if isinstance(parsed, csv_batch.CsvRejected) else ""
st.success(f"{len(rows):,} predictions by model {reply.model_label}{left_out}.")
if batch.labels is not None:
    matches = sum(p.cover_type == truth for p, truth in zip(reply.predictions, batch.labels, strict=True))
    st.metric("Predictions matching Cover_Type", f"{matches / len(rows):.1%}", help=f"{matches} of {len(rows)}")
table = pd.concat([pd.DataFrame(batch.records), pd.DataFrame(rows)], axis=1)
if partial:
    table.insert(0, "line", batch.lines)
st.dataframe(table.head(1000), hide_index=True)
if len(table) > 1000:
    st.caption(f"Showing the first 1,000 of {len(table):,} rows; the download has them all.")
st.download_button(
    "Download predictions (CSV)",
    csv_batch.predictions_csv(batch.records, rows, batch.lines if partial else None),
    file_name="predictions.csv",
    mime="text/csv",
)
