"""The deployment's MySQL users, made by the compose init script itself.

``docker/mysql/10-forestops-users.sh`` is what creates the databases and one
user per service in the compose stack.  The suite runs that script (through
the ``mysql`` client, as root) against its production-like server with fresh
names, and the services under test then connect as those users: root is
used only to create databases and users.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from . import mysql

INIT_SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "mysql" / "10-forestops-users.sh"


@dataclass(frozen=True)
class DeploymentUsers:
    """The users and databases the init script made, as URLs (passwords included)."""

    server_url: str  # root, no database: only for creating databases and users
    app: URL  # owns the raw data database (ingestion, training, db-init's migrations)
    reader: URL  # reads the raw data (the UI)
    mlflow: URL  # owns MLflow's database
    names: dict[str, str]  # the script's environment names -> the fresh names used

    def grant_app_database(self, database: str) -> str:
        """Give the app user the script's grants on another (fresh) database; its URL as the app user."""
        from forestops.storage.provision import APP_GRANTS, table_grant_statements

        engine = sa.create_engine(self.server_url)
        with engine.begin() as connection:
            connection.execute(sa.text(f"GRANT {', '.join(APP_GRANTS)} ON `{database}`.* TO '{self.app.username}'@'%'"))
            # UPDATE/DELETE table by table, as the init script grants them (none on alias_history).
            for statement in table_grant_statements(database, self.app.username):
                connection.execute(sa.text(statement))
        engine.dispose()
        return self.app.set(database=database).render_as_string(hide_password=False)


def run_init_script(server_url: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    server = make_url(server_url)
    client = ["mysql", "--protocol=tcp", f"--host={server.host}", f"--port={server.port or 3306}"]
    client.append(f"--user={server.username}")
    full_env = {**os.environ, **env, "MYSQL_CLIENT": shlex.join(client)}
    if server.password:
        full_env["MYSQL_PWD"] = server.password
    return subprocess.run(
        ["bash", str(INIT_SCRIPT)], env=full_env, capture_output=True, text=True, timeout=60, check=False
    )


@contextlib.contextmanager
def provisioned_by_init_script(server_url: str) -> Iterator[DeploymentUsers]:
    """Run the init script twice (a restart must not fail) with fresh names; drop everything afterwards."""
    server = make_url(server_url)
    tag = mysql.unique_name("fo").removeprefix("fo_")[:10]
    names = {
        "FORESTOPS_RAW_DATABASE": f"fo_{tag}_raw",
        "FORESTOPS_MLFLOW_DATABASE": f"fo_{tag}_mlflow",
        "MYSQL_APP_USER": f"fo_{tag}_app",
        "MYSQL_READER_USER": f"fo_{tag}_ro",
        "MYSQL_MLFLOW_USER": f"fo_{tag}_ml",
    }
    passwords = {
        "MYSQL_APP_PASSWORD": secrets.token_urlsafe(16),
        "MYSQL_READER_PASSWORD": "it's a \\ quoted one",  # must survive SQL quoting
        "MYSQL_MLFLOW_PASSWORD": secrets.token_urlsafe(16),
    }
    try:
        for _ in range(2):
            result = run_init_script(server_url, {**names, **passwords})
            if result.returncode != 0:
                raise RuntimeError(f"the MySQL init script failed:\n{result.stderr}")

        def url(user_key: str, password_key: str, database_key: str) -> URL:
            return server.set(username=names[user_key], password=passwords[password_key], database=names[database_key])

        yield DeploymentUsers(
            server_url=server_url,
            app=url("MYSQL_APP_USER", "MYSQL_APP_PASSWORD", "FORESTOPS_RAW_DATABASE"),
            reader=url("MYSQL_READER_USER", "MYSQL_READER_PASSWORD", "FORESTOPS_RAW_DATABASE"),
            mlflow=url("MYSQL_MLFLOW_USER", "MYSQL_MLFLOW_PASSWORD", "FORESTOPS_MLFLOW_DATABASE"),
            names=names,
        )
    finally:
        admin = sa.create_engine(server)
        with admin.begin() as connection:
            for key in ("FORESTOPS_RAW_DATABASE", "FORESTOPS_MLFLOW_DATABASE"):
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{names[key]}`"))
            for key in ("MYSQL_APP_USER", "MYSQL_READER_USER", "MYSQL_MLFLOW_USER"):
                connection.execute(sa.text(f"DROP USER IF EXISTS '{names[key]}'@'%'"))
        admin.dispose()
