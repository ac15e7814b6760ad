"""Real services for the UI's tests, started once per session (see services.py).

The data API, the inference API, Airflow's API server and the UI itself run
as real processes on free ports; MLflow is the session's real server, with a
model of our own (a unique name, so other areas' tests in the same server do
not mix in); the raw data database is a fresh MariaDB database filled by the
real ingestion.  A page under test reads the same ``FORESTOPS_*`` variables
as ``forestops ui`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import data
from tests.ui import services
from tests.ui.helpers import NOTHING_LISTENS, UI_PASSWORD, UI_USER


@pytest.fixture(scope="session")
def ui_rows() -> list[list[str]]:
    return data.sample_rows(3000)


@pytest.fixture(scope="session")
def ui_data_api(session_dir: Path, ui_rows) -> Iterator[str]:
    with services.data_api(session_dir / "ui-datasource", ui_rows) as url:
        yield url


@pytest.fixture(scope="session")
def ui_raw_database(database_factory, ui_data_api: str) -> dict:
    """A fresh database filled by two real ingestion runs against the data API (group 1)."""
    url = database_factory("fo_ui")
    outcomes = services.ingest(url, ui_data_api, runs=2, group_number=1)
    assert all(o.status == "stored" for o in outcomes), outcomes
    return {"url": url, "outcomes": outcomes}


@pytest.fixture(scope="session")
def ui_model(mlflow_server, ui_rows, session_dir: Path) -> services.TrainedModel:
    return services.train_and_register(mlflow_server.url, ui_rows, session_dir / "ui-model")


@pytest.fixture(scope="session")
def ui_inference(ui_model: services.TrainedModel, session_dir: Path) -> Iterator[str]:
    with services.inference_api(ui_model, session_dir / "ui-inference") as url:
        yield url


@pytest.fixture(scope="session")
def ui_airflow(session_dir: Path) -> Iterator[services.AirflowApi]:
    with services.airflow_api(session_dir / "ui-airflow") as api:
        yield api


@pytest.fixture
def ui_env(monkeypatch, tmp_path) -> Callable[..., None]:
    """Point the app at given services; anything not given points where nothing listens.

    The UI's sign-in is configured as in a deployment (``UI_USER`` / ``UI_PASSWORD``, see
    ``helpers.sign_in``); ``ui_password=None`` leaves the password unset.
    """

    def configure(**settings: str | None) -> None:
        defaults = {
            "datasource_url": NOTHING_LISTENS,
            "inference_url": NOTHING_LISTENS,
            "mlflow_tracking_uri": NOTHING_LISTENS,
            "airflow_url": NOTHING_LISTENS,
            "ui_username": UI_USER,
            "ui_password": UI_PASSWORD,
        }
        for name, value in {**defaults, **settings}.items():
            if value is None:
                monkeypatch.delenv(f"FORESTOPS_{name.upper()}", raising=False)
            else:
                monkeypatch.setenv(f"FORESTOPS_{name.upper()}", value)
        monkeypatch.setenv("FORESTOPS_HOME", str(tmp_path / "home"))

    return configure
