"""A second `make demo` says what it resumes; `stack reset` removes exactly the stack's own state."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forestops.local import previous, supervise
from forestops.settings import load_settings
from tests.support.processes import forestops_argv

pytestmark = pytest.mark.unit


def _previous_run(home: Path) -> None:
    """What one finished demo cycle leaves behind (the tables the summary reads, with MLflow's names)."""
    home.mkdir(parents=True)
    with sqlite3.connect(home / "covertype.db") as db:
        db.execute("CREATE TABLE raw_rows (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO raw_rows (id) VALUES (?)", [(i,) for i in range(1, 1235)])
    with sqlite3.connect(home / "mlflow.db") as db:
        db.execute("CREATE TABLE model_versions (name TEXT, version INTEGER)")
        db.execute("CREATE TABLE registered_model_aliases (alias TEXT, version INTEGER, name TEXT)")
        db.executemany("INSERT INTO model_versions VALUES ('covertype', ?)", [(v,) for v in range(1, 5)])
        db.execute("INSERT INTO registered_model_aliases VALUES ('champion', 4, 'covertype')")
    (home / "datasource").mkdir()
    (home / "datasource" / "group-1.json").write_text(json.dumps({"batch_number": 10, "finished": True}))
    for folder in ("mlartifacts/1", "airflow", "logs", "cache", "stack"):
        (home / folder).mkdir(parents=True)
    (home / "cache" / "covtype.data.gz").write_text("downloaded once")


def _env(home: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FORESTOPS_")}, "FORESTOPS_HOME": str(home)}


def test_the_start_says_what_it_resumes_and_how_to_start_fresh(tmp_path):
    home = tmp_path / "home"
    _previous_run(home)
    settings = load_settings(home=home)
    lines = previous.describe(previous.inspect(settings), settings)
    assert "1,234 rows collected" in lines[0]
    assert "model 'covertype' v1-v4 registered, champion v4" in lines[0]
    assert "data API group 1 all batches served of 10" in lines[0]
    assert "the collection is complete: all 10 batches" in lines[1] and "Restart collection" in lines[1]
    assert "make reset" in lines[2] and "make demo FRESH=1" in lines[2]
    assert previous.describe(previous.inspect(load_settings(home=tmp_path / "empty")), settings) == []


def test_reset_asks_then_removes_only_the_stacks_own_files(tmp_path):
    home = tmp_path / "home"
    _previous_run(home)
    (home / "my-notes.txt").write_text("not the stack's")

    declined = subprocess.run(
        forestops_argv("stack", "reset"), input="n\n", capture_output=True, text=True, env=_env(home), timeout=120
    )
    assert declined.returncode == 1 and "nothing removed" in declined.stdout
    assert (home / "covertype.db").exists()

    agreed = subprocess.run(
        forestops_argv("stack", "reset"), input="y\n", capture_output=True, text=True, env=_env(home), timeout=120
    )
    assert agreed.returncode == 0, agreed.stderr
    assert sorted(p.name for p in home.iterdir()) == ["cache", "my-notes.txt", "stack"]
    assert (home / "cache" / "covtype.data.gz").exists()


def test_reset_is_refused_while_the_stack_runs(tmp_path):
    home = tmp_path / "home"
    _previous_run(home)
    record = supervise.start_detached(
        "mlflow", [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "s.log", os.environ, cwd=tmp_path
    )
    try:
        state = supervise.StackState(path=home / "stack" / "state.json", started_at=time.time(), mode="embedded")
        state.services = {"mlflow": record}
        state.save()
        result = subprocess.run(
            forestops_argv("stack", "reset", "--yes"), capture_output=True, text=True, env=_env(home), timeout=120
        )
    finally:
        supervise.stop([record], timeout=5)
    assert result.returncode == 1
    assert "running (mlflow)" in result.stderr and "make down" in result.stderr
    assert (home / "covertype.db").exists()
