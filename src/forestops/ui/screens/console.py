"""Run each API of the stack by hand and see the request and the response."""

import json

import pandas as pd
import streamlit as st

from forestops import schema
from forestops.ui import auth, views
from forestops.ui.clients.airflow import PIPELINE_DAGS

services = views.page("API console", ":material/terminal:")
settings = services.settings
access = auth.access(settings)
data_tab, predict_tab, airflow_tab = st.tabs(
    ["Data API: fetch a portion", "Inference API: predict", "Airflow: trigger a DAG"]
)

with data_tab:
    st.caption(
        f"`GET {settings.datasource_url}/data`. A fetch is a real call: for a group that has not started, it "
        "starts batch 1, like a collection run would."
    )
    group = st.number_input("group_number", min_value=1, value=settings.group_number, step=1, key="console.group")
    if not access.allowed:
        st.info(access.refusal, icon=":material/lock:")
    # Checked on the click too: a click can arrive for a button drawn disabled.
    if st.button("Send GET /data", key="console.fetch", disabled=not access.allowed):
        if access.allowed:
            st.session_state["console.fetch.result"] = services.datasource.fetch_exchange(int(group))
        else:
            st.error(f"Not sent: {access.refusal}")
    record = st.session_state.get("console.fetch.result")
    if record is not None:
        views.show_exchange(record)
        body = record.response_body
        if record.ok and isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
            st.markdown(f"Preview: batch {body.get('batch_number')}, {len(body['data'])} rows")
            rows = [r for r in body["data"] if isinstance(r, list) and len(r) == len(schema.RAW_COLUMNS)]
            st.dataframe(pd.DataFrame(rows, columns=list(schema.RAW_COLUMNS)).head(200), hide_index=True)

with predict_tab:
    st.caption(f"`POST {settings.inference_url}/predict` with any JSON body; edit it to see the API's answers.")
    default_body = json.dumps({"instances": [schema.example_features()]}, indent=2)
    text = st.text_area("Request body (JSON)", value=default_body, height=320, key="console.predict.body")
    if st.button("Send POST /predict", key="console.predict"):
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            st.session_state["console.predict.result"] = None
            st.error(f"The body is not valid JSON: line {error.lineno}, column {error.colno}: {error.msg}")
        else:
            st.session_state["console.predict.result"] = services.inference.predict_exchange(payload)
    record = st.session_state.get("console.predict.result")
    if record is not None:
        views.show_exchange(record)

with airflow_tab:
    st.caption(
        f"`POST {settings.airflow_url}/api/v2/dags/<dag_id>/dagRuns` with a token from `POST /auth/token` "
        f"(user {settings.airflow_username})."
    )
    dag_id = st.selectbox("DAG", PIPELINE_DAGS, key="console.dag")
    conf_text = st.text_area("conf (JSON object)", value="{}", key="console.conf")
    if not access.allowed:
        st.info(access.refusal, icon=":material/lock:")
    clicked = st.button("Send POST dagRuns", key="console.trigger", disabled=not access.allowed)
    if clicked and not access.allowed:
        st.error(f"Not sent: {access.refusal}")
    elif clicked:
        try:
            conf = json.loads(conf_text)
            if not isinstance(conf, dict):
                raise ValueError("conf must be a JSON object, like {}")
        except ValueError as error:
            st.session_state["console.trigger.result"] = None
            st.error(f"The conf is not a JSON object: {error}")
        else:
            st.session_state["console.trigger.result"] = services.airflow.trigger_exchange(dag_id, conf)
    record = st.session_state.get("console.trigger.result")
    if record is not None:
        views.show_exchange(record)
