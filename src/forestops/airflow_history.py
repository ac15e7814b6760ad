"""Airflow's own run history stays bounded: ``airflow db clean`` on a schedule.

Every DAG run leaves rows in Airflow's metadata database (the run, its task
instances and their history, XComs, audit-log lines, asset events); Airflow
never deletes them.  At the demo's pace, an ingest run every few seconds,
that is about 6 MiB an hour for as long as the stack runs (measured by the
soak benchmark).  The retention DAG cannot trim it: Airflow 3 gives task code
no access to its metadata database, and the REST API deletes runs one by one
and leaves the asset events, audit log and job rows behind.  So a small
process next to the scheduler runs Airflow's own maintenance command, the
one its documentation recommends, every ``FORESTOPS_RETENTION_EVERY_MINUTES``:
rows older than ``FORESTOPS_AIRFLOW_HISTORY_HOURS`` go, without archive
tables (they would grow instead), in small batches so the scheduler is never
locked out for long.  Airflow keeps each DAG's latest scheduled run itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from forestops.errors import ForestopsError
from forestops.settings import Settings

log = logging.getLogger(__name__)

# The tables every DAG run adds rows to.  Not "dag" or "dag_version": those
# describe the DAGs themselves, which the scheduler and the runs still use.
RUN_HISTORY_TABLES = (
    "dag_run",
    "task_instance",
    "task_instance_history",
    "task_reschedule",
    "xcom",
    "asset_event",
    "log",
    "job",
)
BATCH_SIZE = 1000
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*:")
# One clean of days of demo history takes seconds; a minute more is a stuck database.
CLEAN_TIMEOUT_SECONDS = 900
FIRST_CLEAN_AFTER_SECONDS = 300


class AirflowHistoryError(ForestopsError):
    """``airflow db clean`` could not trim the metadata database."""


@dataclass(frozen=True)
class CleanResult:
    cutoff: datetime
    seconds: float


def airflow_executable() -> str:
    """The ``airflow`` beside this interpreter (the venv or the image), else the one on PATH."""
    beside = Path(sys.executable).parent / "airflow"
    if beside.exists():
        return str(beside)
    found = shutil.which("airflow")
    if found is None:
        raise AirflowHistoryError("the `airflow` command is not installed here: run `make install`")
    return found


def clean_argv(airflow: str, cutoff: datetime) -> list[str]:
    return [
        airflow,
        "db",
        "clean",
        "--clean-before-timestamp",
        cutoff.isoformat(timespec="seconds"),
        "--tables",
        ",".join(RUN_HISTORY_TABLES),
        "--batch-size",
        str(BATCH_SIZE),
        "--skip-archive",
        "--error-on-cleanup-failure",
        "--yes",
    ]


def clean_history(keep_hours: float, env: Mapping[str, str] | None = None, now: datetime | None = None) -> CleanResult:
    """Delete Airflow's run history older than ``keep_hours`` from the database ``env`` configures."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=keep_hours)
    started = time.monotonic()
    try:
        result = subprocess.run(
            clean_argv(airflow_executable(), cutoff),
            env=dict(os.environ if env is None else env),
            capture_output=True,
            text=True,
            timeout=CLEAN_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise AirflowHistoryError(
            f"`airflow db clean` did not finish in {CLEAN_TIMEOUT_SECONDS} s; is Airflow's database reachable?"
        ) from None
    if result.returncode != 0:
        from forestops.redaction import redact

        raise AirflowHistoryError(
            f"`airflow db clean` exited with {result.returncode}: {redact(error_line(result.stderr or result.stdout))}"
        )
    seconds = time.monotonic() - started
    log.info("Airflow run history before %s deleted in %.1f s", cutoff.isoformat(timespec="seconds"), seconds)
    return CleanResult(cutoff, seconds)


def error_line(output: str) -> str:
    """The line that names the error (``SomeError: ...``): the traceback above it helps nobody running the stack."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()] or ["(no output)"]
    named = [line for line in lines if _ERROR_LINE.match(line)]
    return (named or lines)[-1][:1000]


STATUS_FILE = "airflow-history.json"  # under FORESTOPS_HOME: the last clean's outcome, for health checks


def status_path(settings: Settings) -> Path:
    return settings.home / STATUS_FILE


def record_outcome(path: Path, error: str | None, result: CleanResult | None = None) -> None:
    outcome = {"ok": error is None, "at": time.time(), "error": error}
    if result is not None:
        outcome |= {"cutoff": result.cutoff.isoformat(timespec="seconds"), "seconds": round(result.seconds, 1)}
    path.write_text(json.dumps(outcome))


def check_recent(settings: Settings, now: float | None = None) -> str:
    """Why the cleaner is unhealthy, or "" when its last clean succeeded within two retention periods."""
    try:
        outcome = json.loads(status_path(settings).read_text())
    except (OSError, ValueError):
        return f"no clean recorded yet in {status_path(settings)}"
    age = (now or time.time()) - float(outcome.get("at", 0))
    if not outcome.get("ok"):
        return f"the last clean failed: {outcome.get('error')}"
    if age > 2 * settings.retention_every_minutes * 60 + CLEAN_TIMEOUT_SECONDS:
        return f"the last clean was {age / 60:.0f} minutes ago (every {settings.retention_every_minutes:g} expected)"
    return ""


def run_forever(settings: Settings, stop: threading.Event | None = None) -> None:
    """Clean five minutes after start, then every ``retention_every_minutes``; a failure is logged and recorded."""
    stop = stop or threading.Event()
    every = settings.retention_every_minutes * 60
    log.info(
        "keeping %g hours of Airflow run history; cleaning every %g minutes",
        settings.airflow_history_hours,
        settings.retention_every_minutes,
    )
    # Not at once: a starting stack has better uses for the CPU, and there is nothing old to delete yet.
    record_outcome(status_path(settings), None)
    stop.wait(min(every, FIRST_CLEAN_AFTER_SECONDS))
    while not stop.is_set():
        try:
            result = clean_history(settings.airflow_history_hours)
            record_outcome(status_path(settings), None, result)
        except AirflowHistoryError as error:
            log.warning("%s", error)
            record_outcome(status_path(settings), str(error))
        stop.wait(every)
