"""A MySQL-protocol server for tests, configured like the deployment's MySQL 8.4.

The suite starts its own MariaDB in a temporary folder (once per session)
rather than trusting whatever answers on 3306: the deployment's MySQL 8.4
has binary logging on and strict SQL mode by default, and ``docker-compose.yml``
adds its own server flags (read from the file here, so a change there is
tested here).  A server named by ``FORESTOPS_TEST_MYSQL_URL`` is used
instead only when it is configured the same way (checked, not assumed).
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

HOW_TO = (
    "Tests need a MySQL-protocol server configured like the deployment's: install mariadb-server so the tests "
    "start their own (mariadbd and mariadb-install-db on PATH or in /usr/sbin), or set "
    "FORESTOPS_TEST_MYSQL_URL=mysql+pymysql://USER:PASSWORD@HOST:PORT to a server with binary logging on, strict "
    "SQL mode and the flags docker-compose.yml gives MySQL, where that user may CREATE and DROP databases and users."
)
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"

# MySQL 8.4's defaults that MariaDB does not share: binary logging on (row
# format, as MySQL 8.4 logs) and its default sql_mode.
MYSQL_84_DEFAULTS: tuple[str, ...] = (
    "--log-bin=binlog",
    "--server-id=1",
    "--binlog-format=ROW",
    "--character-set-server=utf8mb4",
    "--sql-mode=ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
)


def compose_mysql_flags(compose_file: Path = COMPOSE_FILE) -> list[str]:
    """The server options ``docker-compose.yml`` passes to MySQL (its ``command`` after ``mysqld``)."""
    import yaml

    command = yaml.safe_load(compose_file.read_text())["services"]["mysql"].get("command") or []
    flags = [str(part) for part in command if str(part).startswith("--")]
    unresolved = [flag for flag in flags if "$" in flag]
    if unresolved:
        raise RuntimeError(f"the test server cannot resolve compose variables in MySQL flags: {unresolved}")
    return flags


def production_like(url: str) -> list[str]:
    """What differs from the deployment's server at ``url`` (empty when it is configured alike)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            log_bin, sql_mode = connection.execute(sa.text("SELECT @@log_bin, @@sql_mode")).one()
            problems = [] if int(log_bin) == 1 else ["binary logging is off"]
            problems += [f"sql_mode lacks {mode}" for mode in ("STRICT_TRANS_TABLES",) if mode not in sql_mode]
            for flag in compose_mysql_flags():
                name, _, wanted = flag.removeprefix("--").partition("=")
                variable = name.replace("-", "_")
                try:
                    value = connection.execute(sa.text(f"SELECT @@GLOBAL.{variable}")).scalar_one()
                except sa.exc.DBAPIError:
                    continue  # a startup-only option without a variable of that name
                if wanted and str(value).upper() not in {wanted.upper(), {"ON": "1", "OFF": "0"}.get(wanted.upper())}:
                    problems.append(f"{variable} is {value}, docker-compose.yml sets {wanted}")
            return problems
    finally:
        engine.dispose()


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


def _drop_anonymous_users(url: str) -> None:
    """mariadb-install-db creates anonymous accounts (MySQL 8.4 has none); for local connections they
    would shadow the services' ``user@'%'`` accounts, so the server would not be like the deployment's."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for (host,) in connection.execute(sa.text("SELECT Host FROM mysql.user WHERE User = ''")).all():
            connection.execute(sa.text("DROP USER ''@:host"), {"host": host})
    engine.dispose()


@contextlib.contextmanager
def throwaway_server(extra_flags: list[str] | None = None) -> Iterator[str]:
    """A private MariaDB in a temporary folder, started like MySQL 8.4 plus ``extra_flags``.

    ``extra_flags`` defaults to the flags docker-compose.yml gives MySQL.
    """
    flags = compose_mysql_flags() if extra_flags is None else extra_flags
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
        # --no-defaults first: the machine's my.cnf (user, datadir, port) must not apply.
        # --skip-test-db: no `test` database open to PUBLIC (MySQL 8.4 has none).
        [
            installer,
            "--no-defaults",
            f"--datadir={folder / 'data'}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user,
        ],
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
            *MYSQL_84_DEFAULTS,
            *flags,
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
        _drop_anonymous_users(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mysql_server() -> Iterator[str]:
    """Yield a server URL (no database) where we may create databases and users."""
    url = os.environ.get("FORESTOPS_TEST_MYSQL_URL", "").rstrip("/")
    if url:
        if not answers(url):
            raise RuntimeError(f"FORESTOPS_TEST_MYSQL_URL does not answer. {HOW_TO}")
        problems = production_like(url)
        if problems:
            raise RuntimeError(f"FORESTOPS_TEST_MYSQL_URL is not configured like the deployment: {problems}. {HOW_TO}")
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
