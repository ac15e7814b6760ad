"""The UI's sign-in: signed out, actions are refused and nothing changes; a wrong password shows nothing secret."""

from __future__ import annotations

import logging

import httpx
import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from forestops.settings import SettingsError, load_settings
from forestops.ui import auth
from tests.ui.helpers import UI_PASSWORD, UI_USER, button, page, shown, sign_in

pytestmark = pytest.mark.unit

ACTIONS = ["Trigger covertype_ingest", "Trigger covertype_train", "Restart data collection"]


@pytest.fixture
def bind(request):
    """Streamlit's server.address for one test (``forestops ui`` passes FORESTOPS_UI_HOST as it)."""
    before = config.get_option("server.address")

    def set_to(address: str | None) -> None:
        config.set_option("server.address", address)

    yield set_to
    config.set_option("server.address", before)


def everything(at: AppTest) -> str:
    """All text of the page, sidebar and widget values included."""
    parts = [shown(at)]
    for kind in ("markdown", "caption", "success", "info", "warning", "error", "code"):
        parts += [str(e.value) for e in getattr(at.sidebar, kind)]
    parts += [str(t.value) for t in at.text_input]
    parts += [str(e.value) for e in at.exception]
    return "\n".join(parts)


def test_signed_out_the_pipeline_actions_are_refused(ui_env):
    ui_env()
    at = page("pipeline").run()
    assert not at.exception
    for label in ACTIONS:
        assert button(at, label).disabled, label
    assert at.checkbox(key="pipeline.confirm_restart").disabled
    assert any("Sign in (in the sidebar)" in i.value for i in at.info)


def test_a_wrong_password_or_name_is_refused_and_nothing_secret_shows(ui_env, caplog):
    ui_env()
    caplog.set_level(logging.INFO)
    at = page("pipeline").run()
    typed = "guess-" + UI_PASSWORD[:8]
    at = sign_in(at, UI_USER, typed)
    assert [e.value for e in at.sidebar.error] == [auth.SIGN_IN_FAILED]
    at = sign_in(at, "admin", UI_PASSWORD)  # the right password under another name
    assert [e.value for e in at.sidebar.error] == [auth.SIGN_IN_FAILED]
    assert [b for b in at.sidebar.button if b.label == "Sign in"]  # still signed out
    assert all(button(at, label).disabled for label in ACTIONS)
    assert at.sidebar.text_input(key="auth.password").value == ""  # the form is emptied after each attempt
    text = everything(at) + "\n".join(r.getMessage() for r in caplog.records)
    assert UI_PASSWORD not in text and typed not in text
    assert any(r.getMessage() == "UI sign-in failed" for r in caplog.records)


def test_the_right_password_signs_in_and_sign_out_ends_it(ui_env):
    ui_env()
    at = sign_in(page("pipeline").run())
    assert not at.exception
    assert f"Signed in as **{UI_USER}**." in [c.value for c in at.sidebar.caption]
    assert not at.sidebar.error
    assert not button(at, "Trigger covertype_ingest").disabled
    assert not [i.value for i in at.info if "Sign in" in i.value]
    assert UI_PASSWORD not in everything(at)
    at = button(at, "Sign out").click().run()
    assert button(at, "Trigger covertype_ingest").disabled
    assert [b for b in at.sidebar.button if b.label == "Sign in"]


@pytest.mark.parametrize("address", [None, "0.0.0.0"])
def test_no_password_off_loopback_refuses_actions_naming_the_setting(ui_env, bind, address):
    ui_env(ui_password=None)
    bind(address)
    at = page("pipeline").run()
    assert not at.exception
    assert all(button(at, label).disabled for label in ACTIONS)
    [warning] = [w.value for w in at.sidebar.warning]
    assert "FORESTOPS_UI_PASSWORD" in warning and (address or "every interface") in warning
    assert any("FORESTOPS_UI_PASSWORD" in i.value for i in at.info)
    assert not [b for b in at.sidebar.button if b.label == "Sign in"]  # nothing to sign in with

    at = page("console").run()
    assert button(at, "Send GET /data").disabled and button(at, "Send POST dagRuns").disabled
    assert not button(at, "Send POST /predict").disabled  # predicting stays open


def test_no_password_on_loopback_leaves_the_actions_open_and_says_so(ui_env, bind):
    ui_env(ui_password=None)
    bind("127.0.0.1")
    at = page("pipeline").run()
    assert not any(button(at, label).disabled for label in ACTIONS[:2])
    assert any("only on this machine (127.0.0.1)" in c.value for c in at.sidebar.caption)


def test_a_password_is_needed_on_loopback_too_once_set(ui_env, bind):
    ui_env()
    bind("127.0.0.1")
    at = page("pipeline").run()
    assert all(button(at, label).disabled for label in ACTIONS)


def test_predicting_and_viewing_need_no_sign_in(ui_env):
    ui_env()
    for name in ("predict", "batch", "models", "monitoring", "health"):
        at = page(name).run()
        assert not at.exception, name
        assert not [i.value for i in at.info if "Sign in" in i.value], name
    at = page("predict").run()
    assert not button(at, "Predict").disabled


def test_an_empty_password_setting_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("FORESTOPS_UI_PASSWORD", "   ")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "FORESTOPS_UI_PASSWORD: Value error, must not be empty" in str(error.value)
    assert "value hidden: secret" in str(error.value)


def test_the_throttle_refuses_past_its_limit_until_the_window_frees_up():
    now = [1000.0]
    throttle = auth.Throttle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait_seconds() == 0
        throttle.failed()
        now[0] += 1
    assert throttle.wait_seconds() == pytest.approx(57)  # the first failure leaves the window at 1060
    now[0] = 1060.5
    assert throttle.wait_seconds() == 0


@pytest.mark.integration
def test_signed_out_the_console_cannot_start_a_group(ui_env, ui_data_api):
    group = 7
    ui_env(datasource_url=ui_data_api)
    at = page("console").run()
    at.number_input(key="console.group").set_value(group)
    at = at.run()
    assert button(at, "Send GET /data").disabled
    assert any("Sign in" in i.value for i in at.info)
    assert httpx.get(f"{ui_data_api}/status", params={"group_number": group}).json()["batch_number"] is None
    at = sign_in(at)
    at = button(at, "Send GET /data").click().run()
    assert "HTTP 200" in shown(at)
    assert httpx.get(f"{ui_data_api}/status", params={"group_number": group}).json()["batch_number"] == 1
