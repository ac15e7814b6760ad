"""The API console: request and response of each API, shown as they are."""

import pytest

from tests.ui.helpers import button, page, shown, sign_in

pytestmark = pytest.mark.integration


def test_fetch_a_portion_and_preview_it(ui_env, ui_data_api):
    ui_env(datasource_url=ui_data_api)
    at = sign_in(page("console").run())
    at.number_input(key="console.group").set_value(4)
    at = button(at, "Send GET /data").click().run()
    assert not at.exception
    text = shown(at)
    assert "HTTP 200" in text and '"group_number": 4' in text
    preview = at.dataframe[0].value
    assert len(preview) > 0 and preview.columns[-1] == "Cover_Type"


def test_a_prediction_request_and_a_client_mistake(ui_env, ui_inference):
    ui_env(inference_url=ui_inference)
    at = page("console").run()
    at = button(at, "Send POST /predict").click().run()
    assert "HTTP 200" in shown(at) and "cover_type_name" in shown(at)

    at.text_area(key="console.predict.body").set_value('{"instances": [{"Elevation": "high"}]}')
    at = button(at, "Send POST /predict").click().run()
    assert "HTTP 422" in shown(at)

    at.text_area(key="console.predict.body").set_value("{not json")
    at = button(at, "Send POST /predict").click().run()
    assert any("not valid JSON: line 1, column 2" in e.value for e in at.error)


def test_triggering_a_dag_shows_the_error_it_got(ui_env):
    ui_env()
    at = sign_in(page("console").run())
    at = button(at, "Send POST dagRuns").click().run()
    assert not at.exception
    assert any("Airflow" in e.value and "/auth/token" in e.value for e in at.error)
