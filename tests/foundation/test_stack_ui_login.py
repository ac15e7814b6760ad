"""The local stack's UI sign-in: a password generated once into a private file, given to the UI process only."""

from __future__ import annotations

import stat

import pytest

from forestops.local import airflow, commands, services
from forestops.settings import load_settings

pytestmark = pytest.mark.unit


def test_a_password_is_generated_once_into_a_private_file(tmp_path):
    settings = load_settings(home=tmp_path / "home")
    first = services.ui_login(settings)
    path = services.ui_password_path(settings)
    assert path.read_text().strip() == first.password and len(first.password) >= 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.where == str(path) and first.username == "admin"
    again = services.ui_login(load_settings(home=tmp_path / "home"))
    assert again.password == first.password  # kept across restarts
    assert first.password not in repr(first)


def test_the_setting_wins_and_no_file_is_written(tmp_path):
    settings = load_settings(home=tmp_path / "home", ui_password="chosen-by-me-123", ui_username="ops")
    login = services.ui_login(settings)
    assert (login.username, login.password, login.where) == ("ops", "chosen-by-me-123", "FORESTOPS_UI_PASSWORD")
    assert not services.ui_password_path(settings).exists()


def test_only_the_ui_process_gets_the_password_and_the_banner_names_the_file_not_the_secret(tmp_path):
    settings = load_settings(home=tmp_path / "home")
    setup = airflow.prepare(settings, tmp_path / "logs")
    login = services.ui_login(settings)
    specs = {spec.name: spec for spec in services.plan(settings, setup, ui_password=login.password)}
    assert specs["ui"].env == {"FORESTOPS_UI_PASSWORD": login.password}
    assert all("FORESTOPS_UI_PASSWORD" not in spec.env for name, spec in specs.items() if name != "ui")
    shared = services.shared_environment(settings, setup, "sqlite:///x.db")
    assert login.password not in shared.values()

    line = commands.password_line(login.username, login.where)
    assert line == f"admin / password in {services.ui_password_path(settings)}"
    assert login.password not in line


def test_the_airflow_admin_password_is_in_a_private_file_that_the_banner_names(tmp_path):
    settings = load_settings(home=tmp_path / "home")
    setup = airflow.prepare(settings, tmp_path / "logs")
    assert setup.admin_password_file.read_text().strip() == setup.password
    assert stat.S_IMODE(setup.admin_password_file.stat().st_mode) == 0o600
    line = commands.password_line(airflow.ADMIN_USER, str(setup.admin_password_file))
    assert line == f"admin / password in {setup.admin_password_file}" and setup.password not in line
    again = airflow.prepare(load_settings(home=tmp_path / "home"), tmp_path / "logs")
    assert again.admin_password_file.read_text().strip() == setup.password  # kept across restarts
