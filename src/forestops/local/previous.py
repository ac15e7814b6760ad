"""What a second ``make demo`` resumes, and ``make reset``: a fresh start.

The local stack keeps everything under ``FORESTOPS_HOME``: the collected
rows, the MLflow registry, Airflow's runs, the data API's progress through
the batches.  A second ``make demo`` resumes all of it, which is right for
a restart but baffling for someone expecting a new demo (the old champion
is served at once, and a finished collection only records "complete").  So
``stack up`` first says what it resumes, and ``stack reset`` removes exactly
the stack's own files there (never the downloaded data cache, never a
MySQL database) once the stack is down and the user agreed.

Everything is read straight from the embedded files (SQLite, the data API's
JSON state), because nothing is running yet when this is asked.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from forestops.errors import ForestopsError
from forestops.settings import Settings

# The stack's own entries under FORESTOPS_HOME; ``cache`` (the UCI download) is kept on purpose.
OWN_FILES = ("covertype.db", "covertype.db-wal", "covertype.db-shm", "mlflow.db", "mlflow.db-wal", "mlflow.db-shm")
OWN_FOLDERS = ("mlartifacts", "airflow", "datasource", "logs", "training", "prometheus")
STATE_FILE = Path("stack") / "state.json"


class ResetRefused(ForestopsError):
    """Reset while the stack still runs: its files are open."""


@dataclass
class Previous:
    rows: int | None = None
    versions: list[int] = field(default_factory=list)
    champion: int | None = None
    batch_number: int | None = None
    finished: bool = False

    @property
    def empty(self) -> bool:
        return not self.rows and not self.versions and self.batch_number is None


def _query(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as connection:
            return connection.execute(sql, params).fetchall()
    except sqlite3.Error:
        return []  # not created yet, or another schema: nothing to report


def inspect(settings: Settings) -> Previous:
    """The state a start would resume (embedded files only)."""
    home = settings.home.resolve()
    found = Previous()
    if settings.raw_database_url.startswith("sqlite"):
        counted = _query(home / "covertype.db", "SELECT COUNT(*) FROM raw_rows")
        found.rows = counted[0][0] if counted else None
    mlflow_db = home / "mlflow.db"
    found.versions = sorted(
        int(v)
        for (v,) in _query(mlflow_db, "SELECT version FROM model_versions WHERE name = ?", (settings.model_name,))
    )
    champion = _query(
        mlflow_db,
        "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = 'champion'",
        (settings.model_name,),
    )
    found.champion = int(champion[0][0]) if champion else None
    group_file = settings.resolved_state_dir.resolve() / f"group-{settings.group_number}.json"
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError, AttributeError):
        group = json.loads(group_file.read_text())
        found.batch_number = int(group["batch_number"]) if group.get("batch_number") is not None else None
        found.finished = bool(group.get("finished"))
    return found


def describe(previous: Previous, settings: Settings) -> list[str]:
    """Lines for the start-up output; nothing when there is nothing to resume."""
    if previous.empty:
        return []
    parts = []
    if previous.rows:
        parts.append(f"{previous.rows:,} rows collected")
    if previous.versions:
        champion = f", champion v{previous.champion}" if previous.champion else ""
        first, last = previous.versions[0], previous.versions[-1]
        span = f"v{first}-v{last}" if last != first else f"v{first}"
        parts.append(f"model {settings.model_name!r} {span} registered{champion} (served at once)")
    if previous.batch_number is not None:
        where = "all batches served" if previous.finished else f"at batch {previous.batch_number}"
        parts.append(f"data API group {settings.group_number} {where} of {settings.batch_count}")
    lines = [f"resuming the previous state under {settings.home.resolve()}: " + "; ".join(parts)]
    if previous.finished:
        lines.append(
            f"the collection is complete: all {settings.batch_count} batches of group {settings.group_number} were "
            "served, so ingest runs only record 'complete'. Restart it from the Pipeline page (Restart collection) "
            "to collect again into the same store"
        )
    lines.append("for a fresh start: `make down`, then `make reset` (asks first) or `make demo FRESH=1`")
    return lines


def targets(settings: Settings) -> list[Path]:
    """The stack's own files and folders under FORESTOPS_HOME that exist (what reset removes)."""
    home = settings.home.resolve()
    found = [home / name for name in (*OWN_FILES, *OWN_FOLDERS)]
    state_dir = settings.resolved_state_dir.resolve()
    if state_dir.is_relative_to(home):
        found.append(state_dir)
    found.append(home / STATE_FILE)
    return [path for path in dict.fromkeys(found) if path.exists()]


def reset(settings: Settings) -> list[Path]:
    """Remove :func:`targets` (the stack must be down); returns what was removed."""
    from forestops.local import supervise

    state = supervise.StackState.load(settings.home.resolve() / STATE_FILE)
    running = state.alive()
    if running:
        raise ResetRefused(
            f"the local stack is running ({', '.join(running)}): stop it with `make down` first, then reset"
        )
    removed = []
    for path in targets(settings):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed
