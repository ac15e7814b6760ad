"""Fixtures for ingestion tests: the real data API process and an app-user database.

One data API process serves the whole session with a 1 s batch window; tests
that need their own batch cycle take their own group number, so they never
share state.  Databases are created by ``provision_mysql`` (the code under
test) and used through the least-privileged application user, never root.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from forestops.settings import Settings, load_settings
from forestops.storage.provision import drop_mysql_user, provision_mysql
from tests.support import data, mysql
from tests.support.processes import forestops_argv, free_port, running, settings_env

BATCH_SECONDS = 1.0
ROWS_IN_FILE = 1000  # 100 rows per batch
PORTION_FRACTION = 0.3
GROUPS = iter(range(1, 11))


@dataclass(frozen=True)
class DataApi:
    url: str
    batch_seconds: float
    rows: list[list[str]]

    def status(self, group: int) -> dict:
        return httpx.get(f"{self.url}/status", params={"group_number": group}, timeout=10).json()


@pytest.fixture(scope="session")
def data_api(session_dir: Path) -> Iterator[DataApi]:
    """The real ``forestops datasource`` process on a small file with a 1 s batch window."""
    folder = session_dir / "ingest-datasource"
    folder.mkdir()
    rows = data.sample_rows(ROWS_IN_FILE)
    data.write_csv(folder / "rows.csv", rows)
    port = free_port()
    env = {
        "FORESTOPS_DATA_PATH": str(folder / "rows.csv"),
        "FORESTOPS_STATE_DIR": str(folder / "state"),
        "FORESTOPS_HOME": str(folder),
        "FORESTOPS_BATCH_SECONDS": str(BATCH_SECONDS),
        "FORESTOPS_PORTION_FRACTION": str(PORTION_FRACTION),
        "FORESTOPS_HOLDOUT_FRACTION": "0",
    }
    url = f"http://127.0.0.1:{port}"
    argv = forestops_argv("datasource", "--host", "127.0.0.1", "--port", str(port))
    with running("data API", argv, folder / "datasource.log", f"{url}/health", env=env, timeout=90):
        yield DataApi(url, BATCH_SECONDS, rows)


@pytest.fixture
def fresh_group() -> int:
    """A group no other test of this session has touched (each has its own batch cycle)."""
    try:
        return next(GROUPS)
    except StopIteration:
        pytest.fail("more than 10 tests asked the session's data API for a fresh group")


@dataclass(frozen=True)
class AppDatabase:
    url: str  # as the application user
    admin_url: str
    name: str
    user: str


@pytest.fixture
def app_database(mysql_server_url: str) -> Iterator[AppDatabase]:
    """A new database with its own application user (created by the code under test); both dropped after."""
    name = mysql.unique_name("fo_ingest")
    user = f"fo_app_{secrets.token_hex(4)}"
    host = mysql_server_url.split("@", 1)[1]
    url = f"mysql+pymysql://{user}:{secrets.token_urlsafe(12)}@{host}/{name}"
    provision_mysql(mysql_server_url, url)
    try:
        yield AppDatabase(url, mysql_server_url, name, user)
    finally:
        drop_mysql_user(mysql_server_url, user)
        mysql.drop_database(mysql_server_url, name)


@pytest.fixture
def ingest_settings() -> Callable[..., Settings]:
    """Settings for a test, with quick retries; everything explicit, nothing from the user's environment."""

    def make(**overrides) -> Settings:
        values = {
            "http_timeout_seconds": 5,
            "http_retries": 4,
            "http_backoff_seconds": 0.05,
            **overrides,
        }
        return load_settings(**values)

    return make


# What an ingestion child process (the CLI, a DAG run) needs of a test's settings.
CHILD_SETTINGS = (
    "datasource_url",
    "group_number",
    "database_url",
    "http_timeout_seconds",
    "http_retries",
    "http_backoff_seconds",
    "restart_when_done",
    "label_base",
    "ingest_every",
)


def env_for(settings: Settings) -> dict[str, str]:
    """The FORESTOPS_* variables that reproduce ``settings`` in a child process."""
    return settings_env(settings, CHILD_SETTINGS)
