"""Every page against ports where nothing listens: a clear message with what to do, never a traceback."""

import pytest

from forestops.ui import views
from tests.ui.helpers import button, page, shown, sign_in

pytestmark = pytest.mark.unit

PAGES = ["predict", "batch", "pipeline", "models", "console", "health"]


@pytest.mark.parametrize("name", PAGES)
def test_a_page_renders_without_an_exception(ui_env, name):
    ui_env()
    at = page(name).run()
    assert not at.exception, [e.value for e in at.exception]


def test_predict_says_the_inference_api_is_down_and_how_to_start_it(ui_env):
    ui_env()
    at = page("predict").run()
    at = button(at, "Predict").click().run()
    assert not at.exception
    [error] = at.error
    assert "inference API" in error.value and "no answer" in error.value
    assert "forestops inference" in error.value


def test_models_says_mlflow_is_down(ui_env):
    ui_env()
    at = page("models").run()
    [error] = at.error
    assert "MLflow" in error.value and "FORESTOPS_MLFLOW_TRACKING_URI" in error.value


def test_pipeline_names_each_missing_source_once(ui_env):
    ui_env()
    at = page("pipeline").run()
    errors = [e.value for e in at.error]
    assert len([e for e in errors if e.startswith("**data API")]) == 1
    assert len([e for e in errors if e.startswith("**Airflow")]) == 1
    assert any("nothing has been collected yet" in e for e in errors)  # no raw database yet


def test_pipeline_actions_report_the_error_they_got(ui_env):
    ui_env()
    at = sign_in(page("pipeline").run())
    at = button(at, "Trigger covertype_ingest").click().run()
    assert any("Triggering covertype_ingest failed" in e.value for e in at.error)
    at.checkbox(key="pipeline.confirm_restart").check().run()
    at = button(at, "Restart data collection").click().run()
    assert any("Restart failed" in e.value and "forestops datasource" in e.value for e in at.error)


def test_health_lists_every_service_as_down_with_advice(ui_env):
    ui_env()
    at = page("health").run()
    text = shown(at)
    for service in ("Data API", "Inference API", "MLflow", "Airflow"):
        assert f"{views.DOWN} **{service}**" in text
    assert len(at.error) == 5  # the four services and the raw data database
    assert all("What to do:" in e.value for e in at.error)


def test_a_bad_setting_is_a_message_not_a_traceback(ui_env, monkeypatch):
    ui_env()
    monkeypatch.setenv("FORESTOPS_INFERENCE_URL", "localhost:8000")
    at = page("predict").run()
    assert not at.exception
    assert "FORESTOPS_INFERENCE_URL" in at.error[0].value
