"""The UI acts in Airflow as a dedicated least-privileged user, not as the admin.

The local stack declares ``forestops_ui`` with SimpleAuthManager's "user"
role (the least that may trigger DAG runs) and hands the services that
account; Airflow's own authorisation code then decides what the role may do:
trigger and read DAG runs, but not edit connections or variables.
"""

from __future__ import annotations

import json

import pytest
from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails, DagDetails, VariableDetails
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

from forestops import names
from forestops.local import airflow, services
from forestops.settings import load_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def setup(tmp_path):
    return airflow.prepare(load_settings(home=tmp_path / "home"), tmp_path / "logs")


def test_the_stack_declares_the_ui_user_and_gives_services_that_account(setup):
    users = dict(
        entry.split(":") for entry in setup.environment()["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
    )
    assert users == {airflow.ADMIN_USER: "admin", airflow.UI_USER: "user"}
    passwords = json.loads(setup.password_file.read_text())
    assert passwords[airflow.UI_USER] == setup.ui_password and setup.ui_password != setup.password
    environment = services.shared_environment(load_settings(home=setup.home.parent), setup, "sqlite:///x.db")
    assert environment["FORESTOPS_AIRFLOW_USERNAME"] == airflow.UI_USER
    assert environment["FORESTOPS_AIRFLOW_PASSWORD"] == setup.ui_password
    assert setup.password not in environment.values()


def test_the_ui_password_is_kept_across_restarts(setup, tmp_path):
    again = airflow.prepare(load_settings(home=tmp_path / "home"), tmp_path / "logs")
    assert again.ui_password == setup.ui_password and again.password == setup.password


@pytest.mark.parametrize("dag_id", [names.DAG_INGEST, names.DAG_TRAIN])
def test_the_ui_role_may_trigger_and_read_but_not_administer(dag_id):
    manager = SimpleAuthManager()
    user = SimpleAuthManagerUser(username=airflow.UI_USER, role=airflow.UI_ROLE)
    assert manager.is_authorized_dag(method="POST", details=DagDetails(id=dag_id), user=user)
    assert manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user)
    assert not manager.is_authorized_connection(method="POST", details=ConnectionDetails(conn_id="x"), user=user)
    assert not manager.is_authorized_variable(method="PUT", details=VariableDetails(key="x"), user=user)
    # And it is the least role that may trigger: the one below cannot.
    viewer = SimpleAuthManagerUser(username="v", role="viewer")
    assert not manager.is_authorized_dag(method="POST", details=DagDetails(id=dag_id), user=viewer)
