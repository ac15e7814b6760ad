"""Shared fixtures: real servers, fresh databases, test data.

Every test run uses its own database names (``fo_<random>``) and drops them
afterwards, so runs never see each other's rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import data, mysql, servers

# No usage telemetry from the suite or anything it starts (children inherit the environment).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    """URL of a MySQL-protocol server (no database) where tests may create databases."""
    try:
        with mysql.mysql_server() as url:
            yield url
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def database_factory(mysql_server_url: str) -> Iterator[Callable[[str], str]]:
    """Create fresh databases on demand; all are dropped at the end of the session."""
    created: list[str] = []

    def create(prefix: str = "fo") -> str:
        name = mysql.unique_name(prefix)
        created.append(name)
        return mysql.create_database(mysql_server_url, name)

    yield create
    for name in created:
        mysql.drop_database(mysql_server_url, name)


@pytest.fixture
def fresh_database_url(database_factory) -> str:
    """A SQLAlchemy URL of a new, empty MySQL database."""
    return database_factory("fo")


@pytest.fixture(scope="session")
def s3_endpoint(session_dir: Path) -> Iterator[servers.S3Endpoint]:
    with servers.moto_s3(session_dir) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def mlflow_server(session_dir: Path, database_factory, s3_endpoint) -> Iterator[servers.MlflowServer]:
    """One real MLflow server for the session: MariaDB backend, S3 artefacts."""
    backend = database_factory("fo_mlflow")
    with servers.mlflow_server(session_dir, backend, s3_endpoint) as server:
        yield server


@pytest.fixture(scope="session")
def raw_sample() -> list[list[str]]:
    """5,000 raw rows: real when ../shared is present, else generated."""
    return data.sample_rows(5000)


@pytest.fixture(scope="session")
def airflow_home(session_dir: Path) -> Path:
    """A migrated Airflow metadata database for ``dag.test()`` runs (see support/airflow.py)."""
    from tests.support.airflow import prepare_airflow_home

    return prepare_airflow_home(session_dir / "airflow")
