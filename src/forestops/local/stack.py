"""``forestops stack up | down | status``: the local stack's life cycle.

``up`` checks what it needs before starting anything (dependencies, free
ports), prepares storage (raw-data schema, Airflow metadata), starts every
service detached with its own log under ``<home>/logs``, records each pid in
``<home>/stack/state.json`` as soon as it exists, waits until each answers
its health check, unpauses the DAGs and returns the URLs.  If anything fails
it stops what it started and raises ``StackError`` with what to do.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from forestops.errors import ForestopsError
from forestops.local import airflow, mlflow_server, recorded, services, supervise
from forestops.ports import port_in_use
from forestops.private_files import write_private
from forestops.settings import Settings

log = logging.getLogger(__name__)


class StackError(ForestopsError):
    """The stack cannot start or stop cleanly; the message says what to do."""


@dataclass
class Paths:
    home: Path
    logs: Path
    state: Path

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        home = settings.home.resolve()
        return cls(home=home, logs=home / "logs", state=home / "stack" / "state.json")


@dataclass
class UpResult:
    mode: str
    urls: dict[str, str]
    login: tuple[str, str]  # Airflow's admin user, where its password is (a file or the setting)
    logs: Path
    ui_login: tuple[str, str] = ("", "")  # user name, where its password is (a file or the setting)
    seconds: float = 0.0


def check_ports(specs: list[services.ServiceSpec]) -> None:
    seen: dict[int, str] = {}
    problems = []
    for spec in specs:
        if spec.port is None:
            continue
        if spec.port in seen:
            problems.append(f"port {spec.port} is configured for both {seen[spec.port]} and {spec.title}")
        seen[spec.port] = spec.title
        if port_in_use(spec.port):
            problems.append(
                f"port {spec.port} ({spec.title}) is already in use: stop what listens there "
                f"(`ss -ltnp 'sport = :{spec.port}'` shows it) or set FORESTOPS_{spec.port_setting} to a free port"
            )
    if problems:
        raise StackError("cannot start the local stack:\n  " + "\n  ".join(problems))


def check_dependencies() -> None:
    missing = [name for name in ("airflow", "mlflow") if supervise.installed_command(name) is None]
    if missing:
        raise StackError(f"missing: {', '.join(missing)}; run `make install` (it creates .venv with everything)")
    try:
        airflow.dags_folder()
    except airflow.AirflowError as error:
        raise StackError(str(error)) from None


@dataclass(frozen=True)
class RawDatabase:
    url: str  # what the services use
    admin_url: str | None  # used once by db-init to create the database and the user


def raw_database(settings: Settings, home: Path) -> RawDatabase:
    """Where the raw rows live, and as whom the services connect.

    Server mode without an explicit ``FORESTOPS_DATABASE_URL``: the services
    get their own least-privileged MySQL user (made by ``db-init`` with the
    ``FORESTOPS_MYSQL_URL`` account), its password kept under ``<home>/stack``.
    """
    admin = settings.db_admin_url.get_secret_value() if settings.db_admin_url else None
    if settings.database_url:
        return RawDatabase(settings.database_url, admin)
    if not settings.mysql_url:
        return RawDatabase(settings.raw_database_url, None)
    from sqlalchemy.engine import make_url

    secrets_path = home / "stack" / "db-user.json"
    if secrets_path.exists():
        user = json.loads(secrets_path.read_text())
    else:
        user = {"name": f"forestops_{secrets.token_hex(3)}", "password": secrets.token_urlsafe(16)}
        write_private(secrets_path, json.dumps(user))
    server = make_url(settings.mysql_url)
    app = server.set(username=user["name"], password=user["password"], database=settings.raw_database)
    return RawDatabase(app.render_as_string(hide_password=False), admin or settings.mysql_url)


def prepare_raw_database(raw: RawDatabase, environment: dict[str, str], logs: Path) -> None:
    """Create the raw-data schema (and app user) before any DAG task needs it."""
    mysql_without_admin = not raw.url.startswith("sqlite") and raw.admin_url is None
    if not mysql_without_admin:
        if raw.admin_url:
            environment = {**environment, "FORESTOPS_DB_ADMIN_URL": raw.admin_url}
        log_path = logs / "db-init.log"
        with log_path.open("ab") as handle:
            handle.write(f"\n{supervise.START_MARK}{time.strftime('%Y-%m-%d %H:%M:%S')} starting: db-init\n".encode())
            handle.flush()
            result = subprocess.run(
                [services.forestops_executable(), "db-init"],
                env={**os.environ, **environment},
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=300,
            )
        if result.returncode != 0:
            raise StackError(f"`forestops db-init` failed (log {log_path}):\n{supervise.tail(log_path)}")
        return
    from forestops.storage.db import ensure_schema, make_engine

    engine = make_engine(raw.url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()


def wait_healthy(spec: services.ServiceSpec, record: supervise.ServiceRecord, deadline: float) -> None:
    while True:
        if record.process() is None:
            raise StackError(
                f"{spec.title} ({spec.name}) exited during start-up; last lines of {record.log}:\n"
                f"{supervise.tail(record.log)}"
            )
        if spec.healthy():
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"{spec.title} ({spec.name}) did not become healthy at {spec.health_url} in time "
                f"(FORESTOPS_STACK_HEALTH_TIMEOUT); last lines of {record.log}:\n{supervise.tail(record.log)}"
            )
        time.sleep(1)


def _unpause(client, setup: airflow.AirflowSetup, dag_id: str, timeout: float) -> None:
    """Unpause one DAG; an API server slow to answer (a busy machine) is asked again until ``timeout``."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.set_paused(dag_id, False)
            return
        except httpx.TransportError as error:
            if time.monotonic() > deadline:
                raise StackError(
                    f"the Airflow API server at {setup.url} did not answer while unpausing {dag_id} "
                    f"({type(error).__name__}) within {timeout:.0f}s; the machine may be overloaded: "
                    "retry `make demo`, or raise FORESTOPS_STACK_HEALTH_TIMEOUT"
                ) from None
            log.info("Airflow API server slow to answer (%s); asking again", type(error).__name__)
            time.sleep(2)


def unpause_dags(setup: airflow.AirflowSetup, timeout: float) -> None:
    """Unpause the DAGs once the DAG processor has registered them."""
    client = airflow.LauncherAirflowApi(setup.url, airflow.ADMIN_USER, setup.password)
    found, missing = client.wait_for_dags(airflow.DAG_IDS, timeout)
    for dag_id in found:
        _unpause(client, setup, dag_id, timeout)
    if missing:
        errors = "; ".join(f"{e.get('filename')}: {str(e.get('stack_trace'))[-300:]}" for e in client.import_errors())
        raise StackError(
            f"Airflow did not register DAG(s) {', '.join(missing)} in {timeout:.0f}s"
            + (f"; import errors: {errors}" if errors else "; see the dag-processor log")
        )


def up(settings: Settings) -> UpResult:
    started = time.monotonic()
    paths = Paths.of(settings)
    state = supervise.StackState.load(paths.state)
    running = state.alive()
    if running:
        raise StackError(
            f"the local stack is already running ({', '.join(running)}); "
            "`forestops stack status` shows it, `forestops stack down` (make down) stops it"
        )
    check_dependencies()
    paths.logs.mkdir(parents=True, exist_ok=True)
    setup = airflow.prepare(settings, paths.logs)
    ui_login = services.ui_login(settings)
    specs = services.plan(settings, setup, ui_password=ui_login.password)
    check_ports(specs)

    raw = raw_database(settings, paths.home)
    environment = services.shared_environment(settings, setup, raw.url)
    try:
        mlflow_server.s3_environment(settings)
    except mlflow_server.MlflowConfigError as error:
        raise StackError(str(error)) from None
    prepare_raw_database(raw, environment, paths.logs)
    log.info("migrating Airflow's metadata database (first time: about a minute)")
    airflow.migrate(setup, {**os.environ, **environment}, paths.logs / "airflow-migrate.log")

    state = supervise.StackState(path=paths.state, started_at=time.time(), mode=services.describe_mode(settings))
    state.notes = {"airflow_home": str(setup.home)}
    # What commands typed by hand next to the stack adopt (forestops.local.recorded).
    state.notes[recorded.NOTE] = json.dumps(recorded.shareable({**os.environ, **environment}))
    records: dict[str, supervise.ServiceRecord] = {}
    try:
        for spec in specs:
            record = supervise.start_detached(
                spec.name,
                spec.argv,
                paths.logs / f"{spec.name}.log",
                services.child_environment(environment, spec),
                cwd=paths.home,
                url=spec.url,
                health_url=spec.health_url,
                health_component=spec.health_component,
                niceness=spec.niceness,
            )
            records[spec.name] = record
            state.services[spec.name] = record
            state.save()
        for spec in specs:
            log.info("waiting for %s", spec.title)
            wait_healthy(spec, records[spec.name], time.monotonic() + settings.stack_health_timeout)
        unpause_dags(setup, settings.stack_health_timeout)
    except BaseException:
        supervise.stop(list(reversed(records.values())))
        state.clear()
        raise
    urls = {spec.title: spec.url for spec in specs if spec.url}
    return UpResult(
        mode=state.mode,
        urls=urls,
        login=(
            airflow.ADMIN_USER,
            "FORESTOPS_AIRFLOW_PASSWORD" if settings.airflow_password else str(setup.admin_password_file),
        ),
        ui_login=(ui_login.username, ui_login.where),
        logs=paths.logs,
        seconds=time.monotonic() - started,
    )


@dataclass
class ServiceStatus:
    name: str
    pid: int
    state: str  # "healthy" | "running" (no answer yet) | "exited"
    url: str | None
    log: str


def status(settings: Settings) -> tuple[supervise.StackState, list[ServiceStatus]]:
    state = supervise.StackState.load(Paths.of(settings).state)
    rows = []
    for name, record in state.services.items():
        process = record.process()
        if process is None:
            rows.append(ServiceStatus(name, record.pid, "exited", record.url, record.log))
            continue
        healthy = record.health_url is None or services.service_healthy(record.health_url, record.health_component)
        rows.append(ServiceStatus(name, record.pid, "healthy" if healthy else "running", record.url, record.log))
    return state, rows


def down(settings: Settings, timeout: float = 30.0) -> tuple[list[str], list[str]]:
    """Stop the recorded services (last started first); returns (stopped, needed SIGKILL)."""
    state = supervise.StackState.load(Paths.of(settings).state)
    records = list(reversed(list(state.services.values())))
    stopped = [record.name for record in records if record.family()]
    # Two waves, each stopped at once: everything that talks to the Airflow API server (the scheduler's
    # running tasks report there) goes before it, the servers the others use go last.
    last = {"airflow-api-server", "mlflow", "datasource"}
    began = time.monotonic()
    forced = supervise.stop_together([r for r in records if r.name not in last], timeout=timeout)
    first_wave = time.monotonic() - began
    forced += supervise.stop_together([r for r in records if r.name in last], timeout=timeout)
    log.info("stack down: clients in %.1fs, then servers in %.1fs", first_wave, time.monotonic() - began - first_wave)
    leftovers = [record.name for record in records if record.family()]
    if leftovers:
        raise StackError(f"could not stop {', '.join(leftovers)}; pids are in {state.path}")
    state.clear()
    return stopped, forced
