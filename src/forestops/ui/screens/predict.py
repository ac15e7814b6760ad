"""Predict one row: a form bounded by the data contract, answered by the inference API."""

import pandas as pd
import streamlit as st

from forestops import schema
from forestops.ui import predict_form, views
from forestops.ui.clients.http import ServiceError

services = views.page("Predict", ":material/forest:")
predict_form.initialise()

st.caption(f"Answers come from the inference API at {services.settings.inference_url}.")
st.button(
    "Fill with an example row",
    on_click=predict_form.fill_example,
    args=(services.settings.raw_database_url,),
    help="A random row collected so far (with its true class), else a fixed real row of the data set.",
)

with st.form("predict"):
    columns = st.columns(3)
    for index, feature in enumerate(schema.NUMERIC_FEATURES):
        with columns[index % 3]:
            predict_form.numeric_input(feature)
    predict_form.category_inputs()
    submitted = st.form_submit_button("Predict", type="primary")

if submitted:
    st.session_state["predict.reply"] = services.inference.predict([predict_form.features()])
    st.session_state["predict.truth"] = predict_form.true_class_of(predict_form.features())

reply = st.session_state.get("predict.reply")
if isinstance(reply, ServiceError):
    views.show_error(reply, "No prediction")
elif reply is not None:
    prediction = reply.predictions[0]
    st.success(f"Predicted cover type: **{prediction.cover_type_name}** (class {prediction.cover_type})")
    truth = st.session_state.get("predict.truth")
    if truth is not None:
        verdict = "right" if truth == prediction.cover_type else "wrong"
        st.info(
            f"True class of this collected row: **{schema.COVER_TYPES[truth]}** (class {truth}): "
            f"the model is {verdict}."
        )
    st.caption(f"Answered by model {reply.model_label}.")
    if prediction.probabilities:
        chart = pd.DataFrame(
            {"cover type": list(prediction.probabilities), "probability": list(prediction.probabilities.values())}
        )
        st.bar_chart(chart, x="cover type", y="probability", horizontal=True, sort="-probability")
