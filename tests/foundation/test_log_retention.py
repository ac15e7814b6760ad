"""Log retention on real files: old task logs go, running ones stay, a live service log is cut without a hole."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from forestops import log_retention
from forestops.settings import load_settings


def _write(path: Path, size: int, age_hours: float, now: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = now - age_hours * 3600
    os.utime(path, (stamp, stamp))


def test_task_logs_older_than_the_retention_go_with_their_empty_folders(tmp_path):
    tasks = tmp_path / "airflow-tasks"
    now = time.time()
    old_run = tasks / "dag_id=covertype_ingest" / "run_id=scheduled__1" / "task_id=fetch_batch"
    _write(old_run / "attempt=1.log", 1000, age_hours=50, now=now)
    _write(old_run / "attempt=2.log", 500, age_hours=49, now=now)
    mixed_run = tasks / "dag_id=covertype_train" / "run_id=manual__2" / "task_id=train"
    _write(mixed_run / "attempt=1.log", 300, age_hours=60, now=now)
    _write(mixed_run / "attempt=2.log", 200, age_hours=1, now=now)  # a retry still being written
    settings = load_settings(home=tmp_path / "home", task_log_retention_hours=48)

    report = log_retention.apply(tasks, None, settings, now=now)

    assert (report.deleted_files, report.deleted_bytes) == (3, 1800)
    assert not (tasks / "dag_id=covertype_ingest").exists()  # run, task and DAG folders left empty
    assert sorted(p.name for p in tasks.rglob("*.log")) == ["attempt=2.log"]
    assert tasks.is_dir() and report.removed_folders == 3
    assert log_retention.apply(tmp_path / "missing", None, settings, now=now).deleted_files == 0


WRITER = r"""
import sys, time
with open(sys.argv[1], "ab", buffering=0) as log:   # what a service's redirected output is
    for number in range(int(sys.argv[2])):
        log.write(b"line %06d %s\n" % (number, b"." * 80))
        if number % 200 == 0:
            time.sleep(0.01)
print("done", flush=True)
"""


def test_a_service_log_written_meanwhile_is_cut_to_its_newest_part_and_writing_goes_on(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    service_log = logs / "mlflow.log"
    untouched = logs / "datasource.log"
    untouched.write_bytes(b"short\n")
    lines = 40_000  # about 3.6 MB
    settings = load_settings(home=tmp_path / "home", service_log_max_mb=0.5)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(service_log), str(lines)], stdout=subprocess.PIPE)
    cuts = 0
    while writer.poll() is None:
        cuts += len(log_retention.apply(None, logs, settings).cut_files)
        time.sleep(0.05)
    assert writer.wait() == 0
    cuts += len(log_retention.apply(None, logs, settings).cut_files)

    assert cuts >= 2  # it was cut while being written, more than once
    assert untouched.read_bytes() == b"short\n"
    content = service_log.read_bytes()
    assert len(content) <= 0.5 * 2**20
    assert content.startswith(log_retention.CUT_MARK)
    kept = content.removeprefix(log_retention.CUT_MARK).decode().splitlines()
    assert all(re.fullmatch(r"line \d{6} \.{80}", line) for line in kept), "a line was torn by the cut"
    numbers = [int(line.split()[1]) for line in kept]
    assert numbers[-1] == lines - 1 and numbers == sorted(numbers)  # the newest part, in order


def test_the_task_log_folder_is_the_one_airflow_is_configured_with(tmp_path):
    folder = tmp_path / "task-logs"
    code = "from forestops.log_retention import airflow_task_log_folder; print(airflow_task_log_folder())"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(folder)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(folder)
