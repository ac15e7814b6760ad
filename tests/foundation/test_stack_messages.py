"""What `forestops stack up` says about a stack that already runs, and which log lines a failed start shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from forestops.local import supervise
from tests.support.processes import forestops_argv

pytestmark = pytest.mark.unit


@pytest.fixture
def sleeper(tmp_path):
    """A live process of ours standing in for a service of the stack."""
    record = supervise.start_detached(
        "ui",
        [sys.executable, "-c", "import time; time.sleep(120)"],
        tmp_path / "logs" / "ui.log",
        os.environ,
        cwd=tmp_path,
        url="http://127.0.0.1:28551",
    )
    yield record
    supervise.stop([record], timeout=5)


def _state(home, *records) -> None:
    state = supervise.StackState(path=home / "stack" / "state.json", started_at=time.time(), mode="embedded")
    state.services = {record.name: record for record in records}
    state.save()


def _up(home) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FORESTOPS_")}, "FORESTOPS_HOME": str(home)}
    return subprocess.run(forestops_argv("stack", "up"), capture_output=True, text=True, env=env, timeout=120)


def test_up_on_a_running_stack_prints_its_urls_and_succeeds(sleeper, tmp_path):
    home = tmp_path / "home"
    _state(home, sleeper)
    result = _up(home)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout and "http://127.0.0.1:28551" in result.stdout
    assert "Traceback" not in result.stderr


def test_up_on_a_partly_running_stack_says_what_exited(sleeper, tmp_path):
    home = tmp_path / "home"
    gone = supervise.ServiceRecord("mlflow", 2**22 - 7, 1.0, ["mlflow"], str(tmp_path / "mlflow.log"))
    _state(home, sleeper, gone)
    result = _up(home)
    assert result.returncode == 1
    assert "partly running (exited: mlflow)" in result.stderr and "make down" in result.stderr


def test_a_failed_start_shows_only_this_attempts_log_lines(tmp_path):
    log = tmp_path / "svc.log"
    log.write_text(
        "=== 2026-01-01 10:00:00 starting: svc\nold failure\n=== 2026-01-01 11:00:00 starting: svc\nnew line\n"
    )
    shown = supervise.tail(log)
    assert "new line" in shown and "old failure" not in shown


def test_commands_by_hand_adopt_the_running_stacks_settings_and_say_so(sleeper, tmp_path):
    from forestops.local import recorded

    home = tmp_path / "home"
    state = supervise.StackState(path=home / "stack" / "state.json", started_at=time.time(), mode="embedded")
    state.services = {sleeper.name: sleeper}
    started_with = {
        "FORESTOPS_SEARCH_SECONDS": "30",
        "FORESTOPS_TRAINING_CANDIDATES": "lightgbm,baseline",
        "FORESTOPS_AIRFLOW_PASSWORD": "never-kept",
        "FORESTOPS_MYSQL_URL": "mysql+pymysql://user:never-kept@db:3306",
    }
    state.notes = {recorded.NOTE: json.dumps(recorded.shareable(started_with))}
    state.save()
    assert "never-kept" not in state.path.read_text()

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FORESTOPS_")},
        "FORESTOPS_HOME": str(home),
        "FORESTOPS_TRAINING_CANDIDATES": "baseline",  # the shell's own value wins
    }
    result = subprocess.run(forestops_argv("history"), capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "using the running local stack's settings" in result.stderr
    assert "SEARCH_SECONDS=30" in result.stderr and "TRAINING_CANDIDATES" not in result.stderr


def test_the_banner_promises_the_fetches_a_two_core_machine_manages(tmp_path):
    from forestops.local import demo
    from forestops.local.commands import collection_line
    from forestops.settings import load_settings

    values = {k.removeprefix("FORESTOPS_").lower(): v for k, v in demo.DEMO_DEFAULTS.items()}
    line = collection_line(load_settings(home=tmp_path, **values))
    # 45 s batches asked every 5 s, but one ingest run takes ~11 s: about 4 land (3 to 6 measured), not 9.
    assert "about 4 per batch land" in line, line and "10 batches x 45s" in line
    assert "~94% of each batch" in line  # 50% portions: 1 - 0.5 ** 4.1


LEADER = """
import signal, subprocess, sys
task = subprocess.Popen([sys.executable, "-c",
    "stuck_fit = 1; import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(300)"],
    stdout=subprocess.PIPE, text=True)
task.stdout.readline()
def finish(*_):  # like Airflow's scheduler: wait for the running task, then leave cleanly
    task.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, finish)
print("leader ready", flush=True)
signal.pause()
"""


def _start_leader(tmp_path, code: str) -> supervise.ServiceRecord:
    """Start ``code`` the way `stack up` starts the scheduler, and wait until it says it is ready."""
    log = tmp_path / "scheduler.log"
    record = supervise.start_detached("airflow-scheduler", [sys.executable, "-c", code], log, os.environ, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while "leader ready" not in log.read_text().splitlines() and time.monotonic() < deadline:
        time.sleep(0.1)
    return record


def test_down_kills_only_a_task_that_ignores_sigterm_and_names_it(tmp_path):
    """A task stuck in a fit must not make the scheduler need SIGKILL: the task is killed, by name."""
    record = _start_leader(tmp_path, LEADER)
    assert len(record.family()) == 2
    forced = supervise.stop_together([record], grace=2, timeout=20)
    assert not record.family()
    assert len(forced) == 1 and "stuck_fit" in forced[0] and "airflow-scheduler" not in forced[0]


def test_status_says_the_promotion_state_is_unknown_when_the_stacks_mlflow_does_not_answer(sleeper, tmp_path):
    from forestops.local import recorded

    home = tmp_path / "home"
    state = supervise.StackState(path=home / "stack" / "state.json", started_at=time.time(), mode="embedded")
    state.services = {sleeper.name: sleeper}
    state.notes = {recorded.NOTE: json.dumps({"FORESTOPS_MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})}
    state.save()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FORESTOPS_")}, "FORESTOPS_HOME": str(home)}
    result = subprocess.run(forestops_argv("stack", "status"), capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("promotion:")]
    assert line.startswith("promotion: unknown (no answer from http://127.0.0.1:9/"), line


SLOW_LEADER = """
import signal, subprocess, sys, time
finished = subprocess.Popen([sys.executable, "-c", "pass"])  # ends at once; never reaped: a zombie
def finish(*_):  # a scheduler finishing its own shutdown, a little longer than the grace
    time.sleep(3)
    sys.exit(0)
signal.signal(signal.SIGTERM, finish)
print("leader ready", flush=True)
signal.pause()
"""


def test_a_finished_child_waiting_to_be_reaped_is_not_reported_as_killed(tmp_path):
    """A zombie has ended: it needs no SIGKILL and must not be named as one."""
    record = _start_leader(tmp_path, SLOW_LEADER)
    leader = psutil.Process(record.pid)
    deadline = time.monotonic() + 30
    while not any(c.status() == psutil.STATUS_ZOMBIE for c in leader.children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(child.status() == psutil.STATUS_ZOMBIE for child in leader.children())
    forced = supervise.stop_together([record], grace=1, timeout=20)
    assert forced == [] and not record.family()
