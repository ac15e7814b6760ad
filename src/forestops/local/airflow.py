"""Airflow 3 for the local stack: its home, configuration, login and DAG switches.

All configuration goes through ``AIRFLOW__*`` environment variables given to
each component, so the user's own ``airflow.cfg`` (if any) is never edited.
Secrets (the JWT key every component must share, the admin password) are made
once and kept under ``<home>/airflow`` so a restart keeps the same login.

Executor: Airflow 3.3 accepts the LocalExecutor on a SQLite metadata database
(task processes talk to the API server, not to the database, and ``airflow
standalone`` does the same).  SQLite allows one writer at a time, so the
embedded stack keeps parallelism low; ``FORESTOPS_AIRFLOW_DATABASE_URL``
points Airflow at PostgreSQL instead (Airflow does not support MariaDB).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from forestops import names
from forestops.errors import ForestopsError
from forestops.local.supervise import installed_command
from forestops.private_files import private_dir, write_private
from forestops.settings import Settings

# The DAGs `stack up` waits for and unpauses (every file in dags/ that defines one).
DAG_IDS = (names.DAG_INGEST, names.DAG_TRAIN, names.DAG_MONITOR, names.DAG_SHADOW, names.DAG_RETENTION)
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
# The account the UI acts with: SimpleAuthManager's roles are viewer < user < op < admin, and
# "user" is the least that may trigger DAG runs (viewer only reads; op adds connections,
# variables and pools, admin everything).  It cannot be narrowed to two DAGs with this manager.
UI_USER = "forestops_ui"
UI_ROLE = "user"


class AirflowError(ForestopsError):
    """Airflow could not be prepared or driven; the message says what to do."""


def airflow_executable() -> str:
    command = installed_command("airflow")
    if command is None:
        raise AirflowError("the `airflow` command is not installed: run `make install`")
    return command


def dags_folder() -> Path:
    """The repository's ``dags/`` (the package is installed in editable mode)."""
    import forestops

    folder = Path(forestops.__file__).resolve().parents[2] / "dags"
    if not folder.is_dir():
        raise AirflowError(f"no dags folder at {folder}: run the stack from a clone of the repository")
    return folder


@dataclass(frozen=True)
class AirflowSetup:
    home: Path
    port: int
    password: str
    jwt_secret: str
    database_url: str
    logs: Path
    ui_password: str = ""
    # Internal servers that hand task logs to the API server; Airflow's fixed
    # defaults (8793, 8794) would clash between two stacks on one machine.
    worker_log_port: int = 8793
    trigger_log_port: int = 8794

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_password_file(self) -> Path:
        """The admin's password alone, for a person to read (0600)."""
        return self.home / "admin-password"

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def environment(self) -> dict[str, str]:
        sqlite = self.database_url.startswith("sqlite")
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2" if sqlite else "4",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin,{UI_USER}:{UI_ROLE}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            # New or edited DAG files show up within seconds, not minutes.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        }


def prepare(settings: Settings, logs: Path) -> AirflowSetup:
    """Make the Airflow home, its lasting secrets and the admin password file."""
    home = private_dir((settings.home / "airflow").resolve())
    secrets_path = home / "forestops-secrets.json"
    kept = json.loads(secrets_path.read_text()) if secrets_path.exists() else {}
    if not {"jwt_secret", "password", "ui_password"} <= kept.keys():  # new, or from before the UI user
        kept = {
            "jwt_secret": secrets.token_urlsafe(32),
            "password": secrets.token_urlsafe(12),
            "ui_password": secrets.token_urlsafe(12),
            **kept,
        }
        write_private(secrets_path, json.dumps(kept))
    password = settings.airflow_password.get_secret_value() if settings.airflow_password else kept["password"]
    setup = AirflowSetup(
        home=home,
        port=settings.airflow_port,
        password=password,
        jwt_secret=kept["jwt_secret"],
        ui_password=kept["ui_password"],
        database_url=settings.airflow_database_url or f"sqlite:///{home / 'airflow.db'}",
        logs=(logs / "airflow-tasks").resolve(),
        worker_log_port=_free_port(),
        trigger_log_port=_free_port(),
    )
    # The simple auth manager only generates a password for users missing from
    # this file, so writing ours first makes the login predictable and printable.
    write_private(setup.password_file, json.dumps({ADMIN_USER: password, UI_USER: kept["ui_password"]}) + "\n")
    # The banner names this file instead of printing the password (terminals and CI logs keep what they show).
    write_private(setup.admin_password_file, password + "\n")
    return setup


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrate(setup: AirflowSetup, environment: dict[str, str], log_path: Path, timeout: float = 600) -> None:
    """Create or upgrade the metadata database (idempotent)."""
    with log_path.open("ab") as log:
        result = subprocess.run(
            [airflow_executable(), "db", "migrate"],
            env={**environment, **setup.environment()},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise AirflowError(f"`airflow db migrate` failed (log {log_path}):\n{tail}")


def argv(component: str) -> list[str]:
    return [airflow_executable(), component]


class LauncherAirflowApi:
    """The few REST API v2 calls the launcher needs, with the simple auth manager's login."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = httpx.post(
                f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=10
            )
            if response.status_code not in (200, 201):
                raise AirflowError(f"Airflow login as {self.username!r} failed: HTTP {response.status_code}")
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def health(self) -> dict:
        response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5)
        response.raise_for_status()
        return response.json()

    def get_dag(self, dag_id: str) -> dict | None:
        response = httpx.get(f"{self.url}/api/v2/dags/{dag_id}", headers=self._headers(), timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def import_errors(self) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v2/importErrors", headers=self._headers(), timeout=10)
        response.raise_for_status()
        return response.json().get("import_errors", [])

    def set_paused(self, dag_id: str, paused: bool) -> None:
        response = httpx.patch(
            f"{self.url}/api/v2/dags/{dag_id}", json={"is_paused": paused}, headers=self._headers(), timeout=10
        )
        response.raise_for_status()

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float) -> tuple[list[str], list[str]]:
        """Wait until the DAG processor has registered the DAGs; returns (found, missing)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [dag_id for dag_id in dag_ids if self.get_dag(dag_id) is not None]
            if len(found) == len(dag_ids) or time.monotonic() > deadline:
                return found, [dag_id for dag_id in dag_ids if dag_id not in found]
            time.sleep(2)


def component_healthy(health: dict, component: str) -> bool:
    """Read one component's state from the API server's ``/monitor/health``."""
    key = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}[component]
    entry = health.get(key) or {}
    return entry.get("status") == "healthy"
