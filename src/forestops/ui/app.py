"""The Streamlit entry point: ``forestops ui`` runs ``streamlit run`` on this file."""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"

navigation = st.navigation(
    {
        "Use the model": [
            st.Page(PAGES / "predict.py", title="Predict", icon="🌲", default=True),
            st.Page(PAGES / "batch.py", title="Batch predict", icon="📄"),
        ],
        "Operate": [
            st.Page(PAGES / "pipeline.py", title="Pipeline", icon="🛠️"),
            st.Page(PAGES / "models.py", title="Models", icon="📈"),
            st.Page(PAGES / "console.py", title="API console", icon="🧪"),
            st.Page(PAGES / "health.py", title="Health", icon="🩺"),
        ],
    }
)
navigation.run()
