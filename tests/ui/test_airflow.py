"""Pages that drive Airflow, against a real ``airflow api-server`` (REST API v2, token login)."""

import httpx
import pytest

from forestops.ui import views
from tests.ui.helpers import button, page, shown, sign_in

pytestmark = pytest.mark.integration


def airflow_settings(ui_airflow, password=None) -> dict[str, str]:
    return {
        "airflow_url": ui_airflow.url,
        "airflow_username": ui_airflow.username,
        "airflow_password": password or ui_airflow.password,
    }


def api_get(ui_airflow, path: str) -> dict:
    token = httpx.post(
        f"{ui_airflow.url}/auth/token", json={"username": ui_airflow.username, "password": ui_airflow.password}
    ).json()["access_token"]
    response = httpx.get(f"{ui_airflow.url}/api/v2{path}", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()


def test_trigger_a_dag_and_see_its_run(ui_env, ui_airflow):
    ui_env(**airflow_settings(ui_airflow))
    at = sign_in(page("pipeline").run())
    assert not [e.value for e in at.error if e.value.startswith("**Airflow")]
    at = button(at, "Trigger covertype_ingest").click().run()
    assert not at.exception
    [message] = [s.value for s in at.success if "Triggered covertype_ingest" in s.value]

    runs = api_get(ui_airflow, "/dags/covertype_ingest/dagRuns?order_by=-id&limit=1")["dag_runs"]
    run_id = runs[0]["dag_run_id"]
    assert f"run `{run_id}` is {runs[0]['state']}" in message
    run_tables = [d.value for d in at.dataframe if "run id" in d.value.columns]
    [ingest_table] = [t for t in run_tables if run_id in t["run id"].tolist()]
    assert ingest_table.iloc[0]["run id"] == run_id  # newest first
    assert ingest_table.iloc[0]["type"] == "manual"
    if api_get(ui_airflow, "/dags/covertype_ingest")["is_paused"]:
        assert any("covertype_ingest is paused" in w.value for w in at.warning)


def test_the_console_shows_the_trigger_request_without_the_token(ui_env, ui_airflow):
    ui_env(**airflow_settings(ui_airflow))
    at = sign_in(page("console").run())
    at.selectbox(key="console.dag").select("covertype_train")
    at.text_area(key="console.conf").set_value('{"reason": "ui test"}')
    at = button(at, "Send POST dagRuns").click().run()
    text = shown(at)
    assert "HTTP 200" in text
    assert '"reason": "ui test"' in text and '"Authorization": "***"' in text
    runs = api_get(ui_airflow, "/dags/covertype_train/dagRuns?order_by=-id&limit=1")["dag_runs"]
    assert runs[0]["conf"] == {"reason": "ui test"} and runs[0]["dag_run_id"] in text


def test_a_wrong_password_is_a_login_error_naming_the_settings(ui_env, ui_airflow):
    ui_env(**airflow_settings(ui_airflow, password="not-the-password"))
    at = page("pipeline").run()
    [error] = [e.value for e in at.error if e.value.startswith("**Airflow")]
    assert "login refused" in error and "FORESTOPS_AIRFLOW_PASSWORD" in error


def test_health_reports_a_missing_scheduler(ui_env, ui_airflow):
    ui_env(**airflow_settings(ui_airflow))
    at = page("health").run()
    health = httpx.get(f"{ui_airflow.url}/api/v2/monitor/health").json()
    airflow_error = [e.value for e in at.error if "Airflow" in e.value]
    if health["scheduler"]["status"] == "unhealthy":  # no scheduler runs in this test
        assert airflow_error and "scheduler" in airflow_error[0] and "airflow scheduler" in airflow_error[0]
    else:
        assert f"{views.UP} **Airflow**" in shown(at)
