"""The health page with the data API, MLflow and the inference API up and Airflow down."""

import pytest

from forestops.ui import views
from tests.ui.helpers import page, shown

pytestmark = pytest.mark.integration


def test_up_and_down_services(ui_env, ui_data_api, ui_inference, ui_model, ui_raw_database):
    ui_env(
        datasource_url=ui_data_api,
        inference_url=ui_inference,
        mlflow_tracking_uri=ui_model.tracking_uri,
        database_url=ui_raw_database["url"],
    )
    at = page("health").run()
    assert not at.exception
    text = shown(at)
    for service in ("Data API", "Inference API", "MLflow", "Raw data database"):
        assert f"{views.UP} **{service}" in text
    assert f"{views.DOWN} **Airflow**" in text
    assert f"Serving {ui_model.name} version {ui_model.champion}" in text
    [error] = at.error
    assert "airflow" in error.value.lower() and "What to do:" in error.value
