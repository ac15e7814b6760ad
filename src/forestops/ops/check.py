"""``forestops check``: is a running deployment working, end to end?

Each check is a small function that takes a :class:`Target` (where the parts
of the deployment are, as this process reaches them) and returns one or more
:class:`CheckResult` lines: ``ok``, ``FAIL`` with the fix, or ``skip`` with
the reason the check does not apply (for example grants on SQLite).  The same
checks serve the Compose deployment (run inside its network by ``make
check``) and the local stack (run on the machine, from its settings): they
only talk to the services' own interfaces, never to Docker or to processes.

Nothing here prints a secret: URLs are shown without their passwords.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from forestops import names, schema
from forestops.errors import ForestopsError
from forestops.settings import ENV_PREFIX, Settings

HTTP_TIMEOUT = 10.0


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, what was found, and what to do when it failed."""

    name: str
    outcome: Outcome
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.outcome is Outcome.SKIP:
            return f"{self.name}: not applicable ({self.detail})"
        text_ = f"{self.name}: {self.outcome.value} - {self.detail}"
        return f"{text_}\n    fix: {self.fix}" if self.outcome is Outcome.FAIL and self.fix else text_


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Outcome.OK, detail)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Outcome.FAIL, detail, fix)


def skip(name: str, reason: str) -> CheckResult:
    return CheckResult(name, Outcome.SKIP, reason)


@dataclass(frozen=True)
class DatabaseUser:
    """A MySQL account of the deployment, reached with its own URL, and the grants it must have."""

    role: str  # "application", "reader", "mlflow"
    url: str
    expected: dict[str, frozenset[str]]  # object (db.* or db.table) -> privileges
    setting: str = "its database URL"  # where ``url`` comes from, named when it cannot be checked


@dataclass(frozen=True)
class Target:
    """Where each part of a deployment is, as this process reaches it (from settings)."""

    datasource_url: str
    mlflow_url: str
    airflow_url: str
    airflow_username: str
    airflow_password: str | None
    inference_url: str
    ui_url: str
    raw_database_url: str
    mlflow_backend_uri: str | None
    mlflow_auth: tuple[str, str] | None = None
    experiment_name: str = "covertype"
    database_users: tuple[DatabaseUser, ...] = ()
    ingest_timeout: float = 180.0
    fixes: dict[str, str] = field(default_factory=dict)  # how to restart a service in this kind of deployment

    def restart_hint(self, service: str) -> str:
        return self.fixes.get(service, self.fixes.get("*", "restart it")).format(service=service)


# -- the checks ---------------------------------------------------------------------------


def _get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, timeout=HTTP_TIMEOUT, **kwargs)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def check_services(target: Target) -> list[CheckResult]:
    """Every service answers its health endpoint; Airflow's components report healthy through the API server."""
    results = []
    endpoints = {
        "batch data API": f"{target.datasource_url}/health",
        "MLflow": f"{target.mlflow_url}/health",
        "inference API": f"{target.inference_url}/health",
        "UI": f"{target.ui_url}/_stcore/health",
    }
    for title, url in endpoints.items():
        name = f"service {title}"
        try:
            response = _get(url)
        except httpx.HTTPError as error:
            results.append(fail(name, f"no answer at {url} ({_describe(error)})", target.restart_hint(title)))
            continue
        if response.status_code == 200:
            results.append(ok(name, f"healthy at {url}"))
        else:
            results.append(fail(name, f"{url} answered HTTP {response.status_code}", target.restart_hint(title)))
    url = f"{target.airflow_url}/api/v2/monitor/health"
    try:
        health = _get(url).json()
    except (httpx.HTTPError, ValueError) as error:
        return [
            *results,
            fail("service Airflow", f"no answer at {url} ({_describe(error)})", target.restart_hint("Airflow")),
        ]
    for component in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        status = (health.get(component) or {}).get("status")
        name = f"service Airflow {component.replace('_', '-')}"
        if status == "healthy":
            results.append(ok(name, "healthy"))
        else:
            hint = target.restart_hint(f"Airflow {component.replace('_', '-')}")
            results.append(fail(name, f"reported {status or 'nothing'} by {url}", hint))
    return results


def check_mlflow_schema(target: Target) -> CheckResult:
    """MLflow's database is at the head revision of the MLflow installed here (the server's own version)."""
    name = "MLflow schema"
    if not target.mlflow_backend_uri:
        return skip(name, "MLflow's database URL is not known here: set FORESTOPS_MLFLOW_BACKEND_STORE_URI")
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    url = make_url(target.mlflow_backend_uri)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return fail(name, f"{shown} does not exist", "start the MLflow server once: it creates its database")
    head = ScriptDirectory.from_config(_get_alembic_config(target.mlflow_backend_uri)).get_current_head()
    engine = create_engine(target.mlflow_backend_uri)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as error:
        return fail(name, f"cannot read {shown}: {_describe(error).splitlines()[0]}", "start MySQL and check the URL")
    finally:
        engine.dispose()
    if current == head:
        return ok(name, f"at head {head}")
    if current is None:
        return fail(name, f"{shown} has no MLflow schema", "run MLflow's migration: `mlflow db upgrade <URL>`")
    return fail(
        name, f"at {current}, the installed MLflow's head is {head}", "run `mlflow db upgrade <URL>` as MLflow's user"
    )


def check_bucket(target: Target) -> CheckResult:
    """An object written through MLflow's artefact proxy can be read back (and is removed again when allowed)."""
    name = "artefact store"
    auth = target.mlflow_auth
    try:
        experiment = _get(
            f"{target.mlflow_url}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": target.experiment_name},
            auth=auth,
        )
        experiment_id = experiment.json()["experiment"]["experiment_id"] if experiment.status_code == 200 else "0"
        path = f"{experiment_id}/forestops-check/{uuid.uuid4().hex}.txt"
        url = f"{target.mlflow_url}/api/2.0/mlflow-artifacts/artifacts/{path}"
        payload = b"forestops check\n"
        written = httpx.put(url, content=payload, auth=auth, timeout=HTTP_TIMEOUT)
        if written.status_code != 200:
            return fail(
                name,
                f"writing {path} through MLflow answered HTTP {written.status_code}: {written.text[:200]}",
                "the bucket is missing or MLflow's S3 user lacks write access: re-run the bucket set-up "
                "(Compose: `docker compose run --rm minio-init`, then `docker compose up -d mlflow`)",
            )
        read = _get(url, auth=auth)
        httpx.delete(url, auth=auth, timeout=HTTP_TIMEOUT)  # best effort: a read-write user may not delete
    except (httpx.HTTPError, ValueError, KeyError) as error:
        return fail(name, f"MLflow at {target.mlflow_url} did not answer ({_describe(error)})", "start MLflow first")
    if read.status_code != 200 or read.content != payload:
        return fail(name, f"reading {path} back answered HTTP {read.status_code}", "check MLflow's log for S3 errors")
    return ok(name, f"wrote and read back {path} through MLflow's artefact proxy")


# A GRANT line: privileges, the object, the account.
_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<object>\S+) TO ", re.IGNORECASE)


def parse_grants(lines: Iterable[str]) -> dict[str, frozenset[str]]:
    """SHOW GRANTS (or GRANT statements) as object -> privileges; USAGE on *.* (a login, no rights) is left out."""
    found: dict[str, set[str]] = {}
    for line in lines:
        match = _GRANT.match(line.strip())
        if not match:
            continue
        target_object = match["object"].replace("`", "").replace("'", "").replace('"', "")
        privileges = {p.strip().upper() for p in match["privileges"].split(",") if p.strip()}
        privileges = {"ALL PRIVILEGES" if p == "ALL" else p for p in privileges}
        if privileges == {"USAGE"} and target_object == "*.*":
            continue
        found.setdefault(target_object, set()).update(privileges)
    return {key: frozenset(value) for key, value in found.items()}


def grant_differences(actual: dict[str, frozenset[str]], expected: dict[str, frozenset[str]]) -> list[str]:
    problems = []
    for target_object in sorted(set(actual) | set(expected)):
        has, wants = actual.get(target_object, frozenset()), expected.get(target_object, frozenset())
        if has - wants:
            problems.append(f"extra {', '.join(sorted(has - wants))} on {target_object}")
        if wants - has:
            problems.append(f"missing {', '.join(sorted(wants - has))} on {target_object}")
    return problems


def check_grants(target: Target) -> list[CheckResult]:
    """Each MySQL account has exactly the grants the deployment gives it: no more, no less."""
    if make_url(target.raw_database_url).get_backend_name() == "sqlite":
        return [skip("grants", "SQLite")]
    if not target.database_users:
        return [skip("grants", "no database account configured to check")]
    results = []
    for user in target.database_users:
        name = f"grants {user.role}"
        url = make_url(user.url)
        if not url.username:  # the driver would log in as its default (the OS user), or check an account 'None'
            results.append(
                fail(
                    name,
                    f"{user.setting} names no user, so there is no {user.role} account to check",
                    f"put the account in {user.setting}: mysql+pymysql://<user>:<password>@<host>:<port>/...",
                )
            )
            continue
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                lines = connection.execute(text("SHOW GRANTS FOR CURRENT_USER()")).scalars().all()
        except Exception as error:
            results.append(
                fail(
                    name,
                    f"cannot log in as {url.username}: {_describe(error).splitlines()[0]}",
                    "check the password in .env",
                )
            )
            continue
        finally:
            engine.dispose()
        problems = grant_differences(parse_grants(lines), user.expected)
        if problems:
            results.append(
                fail(
                    name,
                    f"{url.username}: {'; '.join(problems)}",
                    "re-run the provisioning (Compose: `docker compose run --rm db-init`) and REVOKE what is extra, "
                    f"e.g. REVOKE <privilege> ON <object> FROM '{url.username}'@'%' as MySQL's root",
                )
            )
        else:
            shown = "; ".join(f"{', '.join(sorted(p))} on {o}" for o, p in sorted(user.expected.items()))
            results.append(ok(name, f"{url.username} has exactly {shown}"))
    return results


def _airflow_token(target: Target) -> str:
    response = httpx.post(
        f"{target.airflow_url}/auth/token",
        json={"username": target.airflow_username, "password": target.airflow_password},
        timeout=HTTP_TIMEOUT,
    )
    if response.status_code not in (200, 201):
        raise PermissionError(f"Airflow login as {target.airflow_username!r} answered HTTP {response.status_code}")
    return response.json()["access_token"]


def check_ingest(target: Target, sleep: Callable[[float], None] = time.sleep) -> CheckResult:
    """A run of the ingest DAG triggered through Airflow's REST API succeeds and records its fetch in fetch_log."""
    name = "ingest run"
    if not target.airflow_password:
        return skip(name, "no Airflow password here: set FORESTOPS_AIRFLOW_PASSWORD")
    dag_url = f"{target.airflow_url}/api/v2/dags/{names.DAG_INGEST}"
    try:
        headers = {"Authorization": f"Bearer {_airflow_token(target)}"}
        dag = _get(dag_url, headers=headers)
        if dag.status_code != 200:
            return fail(
                name, f"{dag_url} answered HTTP {dag.status_code}", "check the dag-processor's log for import errors"
            )
        if dag.json().get("is_paused"):
            return fail(
                name,
                f"DAG {names.DAG_INGEST} is paused",
                "unpause it in the Airflow UI (toggle) and run the check again",
            )
        triggered_at = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as fetch_log holds time
        started = httpx.post(f"{dag_url}/dagRuns", json={"logical_date": None}, headers=headers, timeout=HTTP_TIMEOUT)
        if started.status_code not in (200, 201):
            return fail(
                name,
                f"triggering answered HTTP {started.status_code}: {started.text[:200]}",
                "see the API server's log",
            )
        run_id = started.json()["dag_run_id"]
        deadline = time.monotonic() + target.ingest_timeout
        state = "queued"
        while state not in ("success", "failed"):
            if time.monotonic() > deadline:
                return fail(
                    name,
                    f"run {run_id} still {state} after {target.ingest_timeout:.0f}s",
                    "is the scheduler healthy and a worker free? (`make ps-docker`, the scheduler's log)",
                )
            sleep(2)
            state = _get(f"{dag_url}/dagRuns/{run_id}", headers=headers).json().get("state", "unknown")
    except (httpx.HTTPError, ValueError, KeyError, PermissionError) as error:
        return fail(name, f"Airflow at {target.airflow_url}: {_describe(error)}", "check Airflow's URL and login")
    if state == "failed":
        return fail(
            name, f"run {run_id} failed", f"open the run in the Airflow UI ({target.airflow_url}) for the task's log"
        )
    return _fetch_of_run(name, target.raw_database_url, run_id, triggered_at)


def _fetch_of_run(name: str, database_url: str, run_id: str, triggered_at: datetime) -> CheckResult:
    """The fetch the run recorded.

    Once the collection is complete, a run confirms the newest "complete" row
    (its ``run_id`` and ``finished_at``) instead of adding one, so a scheduled
    run that confirms it after ours replaces our run id: a "complete" row
    confirmed since the trigger counts as our run's fetch.
    """
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = (
                connection.execute(
                    text(
                        "SELECT status, rows_new, rows_duplicate, error FROM fetch_log"
                        " WHERE run_id = :run ORDER BY id DESC"
                    ),
                    {"run": run_id},
                )
                .mappings()
                .first()
            )
            if row is None:
                row = (
                    connection.execute(
                        text(
                            "SELECT status, rows_new, rows_duplicate, error FROM fetch_log"
                            " WHERE status = :complete AND finished_at >= :since ORDER BY id DESC"
                        ),
                        {"complete": names.FetchStatus.COMPLETE.value, "since": triggered_at},
                    )
                    .mappings()
                    .first()
                )
            total = connection.execute(text("SELECT COUNT(*) FROM raw_rows")).scalar_one()
    finally:
        engine.dispose()
    if row is None:
        return fail(
            name,
            f"run {run_id} succeeded but fetch_log has no fetch for it",
            "the DAG writes to another database than FORESTOPS_DATABASE_URL: make them the same",
        )
    if row["status"] == names.FetchStatus.ERROR:
        return fail(name, f"run {run_id} recorded an error: {row['error']}", "see the task's log in the Airflow UI")
    if row["status"] == names.FetchStatus.COMPLETE:
        return ok(name, f"run {run_id} succeeded; the data API has served every batch ({total} rows stored)")
    return ok(
        name, f"run {run_id} stored {row['rows_new']} new rows ({row['rows_duplicate']} already stored; {total} in all)"
    )


def check_predict(target: Target) -> CheckResult:
    """``/predict`` answers one example row, or the check says why it cannot."""
    name = "predict"
    url = f"{target.inference_url}/predict"
    try:
        response = httpx.post(url, json={"instances": [schema.example_features()]}, timeout=30)
    except httpx.HTTPError as error:
        return fail(name, f"no answer at {url} ({_describe(error)})", target.restart_hint("inference API"))
    if response.status_code == 200:
        body = response.json()
        model = body.get("model", {})
        label = body["predictions"][0].get("label", body["predictions"][0].get("cover_type"))
        return ok(name, f"model {model.get('name')} version {model.get('version')} answered {label}")
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:200]
    if response.status_code == 503:
        return fail(
            name,
            f"no model is served yet: {detail}",
            f"wait for the training DAG ({names.DAG_TRAIN}) to register a champion, or run `forestops train`",
        )
    return fail(name, f"HTTP {response.status_code}: {detail}", "see the inference API's log")


CHECKS: tuple[Callable[[Target], CheckResult | list[CheckResult]], ...] = (
    check_services,
    check_mlflow_schema,
    check_bucket,
    check_grants,
    check_ingest,
    check_predict,
)


def run_checks(target: Target, checks=CHECKS) -> list[CheckResult]:
    results: list[CheckResult] = []
    for check in checks:
        found = check(target)
        results.extend(found if isinstance(found, list) else [found])
    return results


# -- the target from settings ---------------------------------------------------------------


def expected_application_grants(database: str, user: str) -> dict[str, frozenset[str]]:
    """What ``forestops db-init`` grants (its own GRANT statements, parsed): the one source of truth."""
    from forestops.storage import provision

    statements = [provision.grant_statement(database, user)]
    statements += list(getattr(provision, "table_grant_statements", lambda *_: [])(database, user))
    return parse_grants(statements)


# What docker/mysql/10-forestops-users.sh grants the UI's reader and MLflow's
# user; tests/deploy run that script on a real server and then this check, so
# the two cannot drift apart unnoticed.
READER_PRIVILEGES = frozenset({"SELECT"})
MLFLOW_PRIVILEGES = frozenset({"ALL PRIVILEGES"})


def database_users(settings: Settings, raw_url: str, mlflow_uri: str | None) -> tuple[DatabaseUser, ...]:
    """The accounts to check, each with the setting its URL comes from (``check_grants`` names it when it has no user).

    The application's expected grants are derived only from a URL that names a user.
    """
    raw = make_url(raw_url)
    if raw.get_backend_name() != "mysql":
        return ()
    database = raw.database or settings.raw_database
    expected = expected_application_grants(database, raw.username) if raw.username else {}
    raw_setting = f"{ENV_PREFIX}DATABASE_URL" if settings.database_url else f"{ENV_PREFIX}MYSQL_URL"
    users = [DatabaseUser("application", raw_url, expected, raw_setting)]
    if settings.reader_database_url:
        reader = settings.reader_database_url.get_secret_value()
        reader_grants = {f"{make_url(reader).database}.*": READER_PRIVILEGES}
        users.append(DatabaseUser("reader", reader, reader_grants, f"{ENV_PREFIX}READER_DATABASE_URL"))
    if settings.mlflow_backend_store_uri and mlflow_uri:
        mlflow_grants = {f"{make_url(mlflow_uri).database}.*": MLFLOW_PRIVILEGES}
        users.append(DatabaseUser("mlflow", mlflow_uri, mlflow_grants, f"{ENV_PREFIX}MLFLOW_BACKEND_STORE_URI"))
    return tuple(users)


def _local_stack_password(settings: Settings) -> str | None:
    kept = settings.home / "airflow" / "forestops-secrets.json"
    return json.loads(kept.read_text()).get("password") if kept.exists() else None


def local_stack_urls(settings: Settings) -> dict[str, str]:
    """Service name -> URL of a running local stack (empty when none runs under FORESTOPS_HOME)."""
    from forestops.local.supervise import StackState

    state = StackState.load(settings.home.resolve() / "stack" / "state.json")
    return {name: record.url for name, record in state.services.items() if record.url}


def local_stack_raw_url(settings: Settings) -> str | None:
    """The least-privileged URL the local stack gave its services (server mode keeps it under <home>/stack)."""
    user_file = settings.home.resolve() / "stack" / "db-user.json"
    if settings.database_url or not settings.mysql_url or not user_file.exists():
        return None
    user = json.loads(user_file.read_text())
    server = make_url(settings.mysql_url)
    app = server.set(username=user["name"], password=user["password"], database=settings.raw_database)
    return app.render_as_string(hide_password=False)


COMPOSE_FIX = "`docker compose up -d` starts it again; `make logs SERVICE=<name>` shows why it stopped"
LOCAL_FIX = "`forestops stack status` shows it and its log; `forestops stack down` then `stack up` restarts the stack"
OTHER_FIX = "start the deployment: `make up` (Compose; then run this as `make check`) or `make demo` (local stack)"


def target_from_settings(settings: Settings, environ: dict[str, str] | None = None) -> Target:
    """The deployment the settings describe: Compose (run inside its network) or the local stack.

    A running local stack under ``FORESTOPS_HOME`` supplies its own URLs, its
    generated Airflow password and its application account; MLflow's basic-auth
    login comes from MLflow's own ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``.
    """
    import os

    from forestops.local import mlflow_server

    environ = dict(os.environ if environ is None else environ)
    local = local_stack_urls(settings)
    raw_url = local_stack_raw_url(settings) or settings.raw_database_url
    explicit_mlflow = (
        settings.mlflow_backend_store_uri.get_secret_value() if settings.mlflow_backend_store_uri else None
    )
    password = settings.airflow_password.get_secret_value() if settings.airflow_password else None
    username, secret = environ.get("MLFLOW_TRACKING_USERNAME"), environ.get("MLFLOW_TRACKING_PASSWORD")
    return Target(
        datasource_url=local.get("datasource", settings.datasource_url),
        mlflow_url=local.get("mlflow", settings.mlflow_tracking_uri),
        airflow_url=local.get("airflow-api-server", settings.airflow_url),
        airflow_username=settings.airflow_username,
        airflow_password=password or _local_stack_password(settings),
        inference_url=local.get("inference", settings.inference_url),
        ui_url=local.get("ui", (settings.ui_url or f"http://127.0.0.1:{settings.ui_port}").rstrip("/")),
        raw_database_url=raw_url,
        mlflow_backend_uri=explicit_mlflow or mlflow_server.backend_store_uri(settings),
        mlflow_auth=(username, secret) if username and secret else None,
        experiment_name=settings.experiment_name,
        database_users=database_users(settings, raw_url, explicit_mlflow),
        ingest_timeout=settings.check_ingest_timeout,
        fixes={"*": LOCAL_FIX if local else COMPOSE_FIX if explicit_mlflow else OTHER_FIX},
    )


class ChecksFailed(ForestopsError):
    """At least one check failed; each failing line above says how to fix it."""


def summary(results: list[CheckResult]) -> str:
    """The closing line; raises :class:`ChecksFailed` (exit 1) when any check failed."""
    failed = [result.name for result in results if result.outcome is Outcome.FAIL]
    skipped = sum(result.outcome is Outcome.SKIP for result in results)
    if failed:
        raise ChecksFailed(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}")
    return f"all {len(results) - skipped} checks passed ({skipped} not applicable)"
