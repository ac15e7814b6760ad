"""The Streamlit entry point: ``forestops ui`` runs ``streamlit run`` on this file."""

from pathlib import Path

import streamlit as st

# Not "pages/": Streamlit would also treat that folder as a legacy multipage app and bypass st.navigation.
PAGES = Path(__file__).parent / "screens"

navigation = st.navigation(
    {
        "Use the model": [
            st.Page(PAGES / "predict.py", title="Predict", icon=":material/forest:", default=True),
            st.Page(PAGES / "batch.py", title="Batch predict", icon=":material/upload_file:"),
        ],
        "Operate": [
            st.Page(PAGES / "pipeline.py", title="Pipeline", icon=":material/conveyor_belt:"),
            st.Page(PAGES / "models.py", title="Models", icon=":material/query_stats:"),
            st.Page(PAGES / "monitoring.py", title="Monitoring", icon=":material/monitoring:"),
            st.Page(PAGES / "console.py", title="API console", icon=":material/terminal:"),
            st.Page(PAGES / "health.py", title="Health", icon=":material/monitor_heart:"),
        ],
    }
)
navigation.run()
