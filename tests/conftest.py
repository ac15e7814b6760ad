"""Shared fixtures: real servers, fresh databases, test data.

Every test run uses its own database names (``fo_<random>``) and drops them
afterwards, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import data, deployment, mysql, servers

# No usage telemetry from the suite or anything it starts (children inherit the environment).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    """Root URL (no database) of the suite's private server, configured like the deployment's MySQL 8.4.

    Root only creates databases and users; the services connect as ``deployment_users``.
    """
    try:
        with mysql.mysql_server() as url:
            yield url
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def deployment_users(mysql_server_url: str) -> Iterator[deployment.DeploymentUsers]:
    """The compose init script's databases and users (fresh names), made once per session."""
    try:
        with deployment.provisioned_by_init_script(mysql_server_url) as users:
            yield users
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def database_factory(mysql_server_url: str, deployment_users) -> Iterator[Callable[[str], str]]:
    """Create fresh databases on demand, each with the app user's grants; all are dropped at the end.

    Returns the database's URL as the init script's app user (what ingestion and training use).
    """
    created: list[str] = []

    def create(prefix: str = "fo") -> str:
        name = mysql.unique_name(prefix)
        created.append(name)
        mysql.create_database(mysql_server_url, name)
        return deployment_users.grant_app_database(name)

    yield create
    for name in created:
        mysql.drop_database(mysql_server_url, name)


@pytest.fixture
def fresh_database_url(database_factory) -> str:
    """A SQLAlchemy URL of a new, empty MySQL database, as the deployment's app user."""
    return database_factory("fo")


@pytest.fixture(scope="session")
def s3_endpoint(session_dir: Path) -> Iterator[servers.S3Endpoint]:
    with servers.moto_s3(session_dir) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def mlflow_server(session_dir: Path, deployment_users, s3_endpoint) -> Iterator[servers.MlflowServer]:
    """One real MLflow server for the session, as deployed: its database migrated by the compose's
    one-shot job and then served, both as the init script's ``mlflow`` user; S3 artefacts; MLflow's
    basic-auth app (docker/mlflow/basic_auth.ini).  Clients use ``server.env()`` (set for the session)."""
    backend = deployment_users.mlflow.render_as_string(hide_password=False)
    migrated = servers.migrate_mlflow_database(backend, session_dir / "mlflow-migrate.log")
    auth = servers.MlflowAuth(
        admin_username="admin",
        admin_password=secrets.token_urlsafe(16),
        database_uri=f"sqlite:///{session_dir / 'mlflow-auth.db'}",
    )
    # A generous start-up limit: a loaded machine takes minutes to import MLflow and its auth app.
    with servers.mlflow_server(session_dir, backend, s3_endpoint, timeout=480, migrated=migrated, auth=auth) as server:
        # Every client the tests run (in this process or started from it) signs in through MLflow's
        # own variables, as the deployment's clients do; tests of per-client users override them.
        os.environ.update(server.env())
        try:
            yield server
        finally:
            for name in server.env():
                os.environ.pop(name, None)


@pytest.fixture(scope="session")
def raw_sample() -> list[list[str]]:
    """5,000 raw rows: real when ../shared is present, else generated."""
    return data.sample_rows(5000)


@pytest.fixture(scope="session")
def airflow_home(session_dir: Path) -> Path:
    """A migrated Airflow metadata database for ``dag.test()`` runs (see support/airflow.py)."""
    from tests.support.airflow import prepare_airflow_home

    return prepare_airflow_home(session_dir / "airflow")
