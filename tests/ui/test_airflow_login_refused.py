"""An Airflow that answers but refuses the UI's login is "login refused", never "down".

A small real HTTP server stands in for Airflow's API server: its health
endpoint answers, and ``/auth/token`` refuses as Airflow 3's SimpleAuthManager
does (403 for the no-password token of a non-open Airflow, 401 for a wrong
password); a second mode answers 401 to everything, as a proxy asking for a
login in front of Airflow would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from forestops.ui import views
from tests.ui.helpers import page, shown

pytestmark = pytest.mark.unit

WRONG_PASSWORD = "not-the-airflow-password-42"
HEALTHY = {name: {"status": "healthy"} for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")}


class RefusingAirflow(BaseHTTPRequestHandler):
    behind_login_proxy = False

    def _answer(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.behind_login_proxy:
            self._answer(401, {"detail": "Not authenticated"})
        elif self.path == "/api/v2/monitor/health":
            self._answer(200, HEALTHY)
        elif self.path == "/auth/token":
            detail = "This method is only allowed if ``[core] simple_auth_manager_all_admins`` is True"
            self._answer(403, {"detail": detail})
        else:
            self._answer(401, {"detail": "Not authenticated"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer(401, {"detail": "Invalid credentials"})

    def log_message(self, format: str, *args) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def refusing_airflow() -> Iterator[str]:
    yield from _serve(RefusingAirflow)


@pytest.fixture
def proxied_airflow() -> Iterator[str]:
    yield from _serve(type("ProxiedAirflow", (RefusingAirflow,), {"behind_login_proxy": True}))


def _airflow_error(at) -> str:
    [error] = [e.value for e in at.error if "Airflow" in e.value or "login refused" in e.value]
    return error


def test_without_a_password_health_says_login_refused_and_names_the_setting(ui_env, refusing_airflow, monkeypatch):
    ui_env(airflow_url=refusing_airflow)
    monkeypatch.delenv("FORESTOPS_AIRFLOW_PASSWORD", raising=False)
    at = page("health").run()
    assert not at.exception
    text = shown(at)
    assert f"{views.DOWN} **Airflow**" not in text
    assert ":material/lock: login refused] **Airflow**" in text
    error = _airflow_error(at)
    assert error.startswith("login refused: HTTP 403")
    assert "no Airflow password" in error and "FORESTOPS_AIRFLOW_PASSWORD" in error


def test_a_wrong_password_is_login_refused_without_showing_it(ui_env, refusing_airflow):
    ui_env(airflow_url=refusing_airflow, airflow_password=WRONG_PASSWORD)
    at = page("health").run()
    text = shown(at)
    assert f"{views.DOWN} **Airflow**" not in text
    assert ":material/lock: login refused] **Airflow**" in text
    error = _airflow_error(at)
    assert error.startswith("login refused: HTTP 401") and "FORESTOPS_AIRFLOW_PASSWORD" in error
    assert WRONG_PASSWORD not in text


def test_an_airflow_behind_a_login_is_login_refused_not_down(ui_env, proxied_airflow):
    ui_env(airflow_url=proxied_airflow, airflow_password=WRONG_PASSWORD)
    at = page("health").run()
    text = shown(at)
    assert f"{views.DOWN} **Airflow**" not in text
    assert ":material/lock: login refused] **Airflow**" in text
    assert _airflow_error(at).startswith("login refused: HTTP 401")


def test_the_pipeline_page_says_login_refused_and_which_setting(ui_env, refusing_airflow, monkeypatch):
    ui_env(airflow_url=refusing_airflow)
    monkeypatch.delenv("FORESTOPS_AIRFLOW_PASSWORD", raising=False)
    at = page("pipeline").run()
    assert not at.exception
    [error] = [e.value for e in at.error if e.value.startswith("**Airflow")]
    assert "login refused" in error and "no Airflow password" in error and "FORESTOPS_AIRFLOW_PASSWORD" in error
