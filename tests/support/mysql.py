"""A MySQL-protocol server for tests: the machine's, or a throwaway one.

``FORESTOPS_TEST_MYSQL_URL`` names the server (default: root without a
password on 127.0.0.1:3306).  When nothing answers there and ``mariadbd`` or
``mysqld`` is installed, a private server is started in a temporary folder;
otherwise the tests fail with a message that says how to provide one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from .processes import free_port

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306"
HOW_TO = (
    "Tests need a MySQL-protocol server. Start MariaDB or MySQL on 127.0.0.1:3306 (root, no password), "
    "or set FORESTOPS_TEST_MYSQL_URL=mysql+pymysql://USER:PASSWORD@HOST:PORT to a server where that user may "
    "CREATE and DROP databases and users, or install mariadb-server so the tests can start their own."
)


def answers(url: str) -> bool:
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    daemon = (
        shutil.which("mariadbd")
        or shutil.which("mysqld")
        or ("/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    )
    installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not daemon or not installer:
        raise RuntimeError(HOW_TO)
    folder = Path(tempfile.mkdtemp(prefix="forestops-mysql-"))
    port = free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [installer, f"--datadir={folder / 'data'}", "--auth-root-authentication-method=normal", *user],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [
            daemon,
            "--no-defaults",
            f"--datadir={folder / 'data'}",
            f"--socket={folder / 'sock'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-grant-tables=0",
            *user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "server.log").open("wb"),
    )
    url = f"mysql+pymysql://root@127.0.0.1:{port}"
    try:
        for _ in range(150):
            if answers(url):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the throwaway MariaDB did not start:\n" + (folder / "server.log").read_text()[-2000:])
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mysql_server() -> Iterator[str]:
    """Yield a server URL (no database) where we may create databases."""
    url = os.environ.get("FORESTOPS_TEST_MYSQL_URL", DEFAULT_URL).rstrip("/")
    if answers(url):
        yield url
        return
    with throwaway_server() as private_url:
        yield private_url


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def create_database(server_url: str, name: str) -> str:
    engine = sa.create_engine(server_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    engine.dispose()
    return f"{server_url}/{name}"


def drop_database(server_url: str, name: str) -> None:
    engine = sa.create_engine(server_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    engine.dispose()
