"""The local stack's MLflow launcher puts no password on any command line or in its log.

``forestops mlflow-server`` with a MySQL URL that carries a password (a real
MariaDB user).  Its process tree is sampled through ``/proc/<pid>/cmdline``
(what ``ps`` shows every user) from the exec of ``mlflow server`` until it
answers or a minute has passed (on a loaded machine the workers appear only
after MLflow's migrations): the password must be in none of them.
"""

from __future__ import annotations

import contextlib
import time

import httpx
import psutil
import pytest
import sqlalchemy as sa

from tests.support import mysql
from tests.support.processes import ServiceProcess, forestops_argv, free_port

pytestmark = pytest.mark.integration

PASSWORD = "Mlfl0wArgvS3cret"
SAMPLE_SECONDS = 60


@pytest.fixture
def mysql_user_with_password(mysql_server_url):
    """A MariaDB user with a password, allowed to create and use one fresh database."""
    user = mysql.unique_name("fo_argv")
    database = mysql.unique_name("fo_argv_mlflow")
    hosts = ("%", "localhost")  # MariaDB matches a local connection to 'localhost' before '%'
    root = sa.create_engine(mysql_server_url)
    with root.begin() as connection:
        for host in hosts:
            connection.execute(sa.text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'"))
            connection.execute(sa.text(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{host}'"))
    url = sa.engine.make_url(mysql_server_url).set(username=user, password=PASSWORD)
    try:
        yield url.render_as_string(hide_password=False), database
    finally:
        with root.begin() as connection:
            for host in hosts:
                connection.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'{host}'"))
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
        root.dispose()


def _command_lines(pid: int) -> dict[int, str]:
    lines = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                lines[process.pid] = " ".join(process.cmdline())
    return lines


def test_mlflow_server_keeps_the_password_off_argv_and_log(tmp_path, mysql_user_with_password):
    mysql_url, database = mysql_user_with_password
    port = free_port()
    env = {
        "FORESTOPS_HOME": str(tmp_path / "home"),
        "FORESTOPS_MYSQL_URL": mysql_url,
        "FORESTOPS_MLFLOW_DATABASE": database,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    log_path = tmp_path / "mlflow.log"
    argv = forestops_argv("mlflow-server", "--port", str(port), "--workers", "2")
    seen: dict[int, str] = {}
    with ServiceProcess("mlflow server", argv, log_path, env, cwd=tmp_path) as process:
        deadline = time.monotonic() + SAMPLE_SECONDS
        while time.monotonic() < deadline and process.process.poll() is None:
            seen.update(_command_lines(process.process.pid))
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    seen.update(_command_lines(process.process.pid))
                    break
            time.sleep(0.1)
    # It got as far as MLflow's own server (exec'd, so it had the URI and had created the database).
    assert any("mlflow" in line and " server" in line for line in seen.values()), (seen, log_path.read_text())
    for pid, line in seen.items():
        assert PASSWORD not in line, f"pid {pid}: {line}"
    log_text = log_path.read_text(errors="replace")
    assert PASSWORD not in log_text, log_text[-3000:]
