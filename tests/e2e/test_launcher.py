"""The local-stack launcher's own promises, with real processes and sockets.

The whole stack runs in test_local_stack.py; these check the failure paths a
user meets (busy port, a service that dies or never answers, a second
``up``) and that stopping reaches exactly the recorded processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from forestops.local import demo, services, stack, supervise
from forestops.settings import load_settings
from tests.support.processes import forestops_argv, free_port


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORESTOPS_", "AIRFLOW"))}
    env.update(values)
    return env


def spec(name: str) -> services.ServiceSpec:
    """A service whose health URL nothing answers."""
    return services.ServiceSpec(name, f"test service {name}", [], None, None, f"http://127.0.0.1:{free_port()}/health")


def start_bash(tmp_path: Path, name: str, script: str) -> supervise.ServiceRecord:
    return supervise.start_detached(name, ["bash", "-c", script], tmp_path / f"{name}.log", os.environ, tmp_path)


@pytest.mark.integration
def test_busy_port_is_named_with_its_service_and_setting(tmp_path):
    ports = {name: free_port() for name in ("DATASOURCE", "MLFLOW", "AIRFLOW", "INFERENCE", "UI", "PROMETHEUS")}
    env = clean_env(FORESTOPS_HOME=str(tmp_path / "home"), **{f"FORESTOPS_{k}_PORT": str(v) for k, v in ports.items()})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["MLFLOW"]))
        busy.listen()
        result = subprocess.run(forestops_argv("stack", "up"), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"port {ports['MLFLOW']} (MLflow server) is already in use" in result.stderr
    assert "FORESTOPS_MLFLOW_PORT" in result.stderr
    assert not (tmp_path / "home" / "stack" / "state.json").exists()


@pytest.mark.integration
def test_a_service_that_exits_during_start_up_shows_its_log(tmp_path):
    record = start_bash(tmp_path, "dies", "echo cannot read FORESTOPS_DATA_PATH; exit 3")
    with pytest.raises(stack.StackError) as raised:
        stack.wait_healthy(spec("dies"), record, time.monotonic() + 30)
    assert "exited during start-up" in str(raised.value)
    assert "cannot read FORESTOPS_DATA_PATH" in str(raised.value)


@pytest.mark.integration
def test_a_service_that_never_answers_times_out_with_its_log(tmp_path):
    record = start_bash(tmp_path, "silent", "echo still loading the model; sleep 60")
    try:
        with pytest.raises(stack.StackError) as raised:
            stack.wait_healthy(spec("silent"), record, time.monotonic() + 2)
        assert "did not become healthy" in str(raised.value)
        assert "FORESTOPS_STACK_HEALTH_TIMEOUT" in str(raised.value)
        assert "still loading the model" in str(raised.value)
    finally:
        supervise.stop([record], timeout=5)


def _last_argument(process: psutil.Process) -> str:
    """The last word of a command line; empty for a process caught between fork and exec, or gone."""
    try:
        return (process.cmdline() or [""])[-1]
    except psutil.Error:
        return ""


@pytest.mark.integration
def test_stop_reaches_the_group_and_children_that_left_it(tmp_path):
    # One child stays in the group, one escapes into its own session, one ignores SIGTERM.
    script = "sleep 300 & setsid sleep 301 & bash -c 'trap \"\" TERM; sleep 302' & wait"
    record = start_bash(tmp_path, "family", script)
    deadline = time.monotonic() + 10
    wanted = {"300", "301", "302"}  # the TERM-ignoring bash execs its sleep, which keeps ignoring TERM
    while not wanted <= {_last_argument(p) for p in record.family()} and time.monotonic() < deadline:
        time.sleep(0.1)
    members = record.family()
    assert wanted <= {_last_argument(p) for p in members}, [_last_argument(p) for p in members]
    forced = supervise.stop([record], timeout=3)
    assert forced == ["family"]  # the TERM-ignoring child needed SIGKILL
    for process in members:
        assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    assert record.family() == []


@pytest.mark.integration
def test_a_reused_pid_is_never_signalled(tmp_path):
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        created = psutil.Process(bystander.pid).create_time()
        stale = supervise.ServiceRecord("old", bystander.pid, created - 1000, ["old"], str(tmp_path / "old.log"))
        assert stale.process() is None
        assert stale.family() == []
        supervise.stop([stale], timeout=1)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.integration
def test_a_second_up_is_refused_while_the_first_runs(tmp_path):
    home = tmp_path / "home"
    record = start_bash(tmp_path, "datasource", "sleep 60")
    try:
        state = supervise.StackState(path=home / "stack" / "state.json", started_at=time.time(), mode="test")
        state.services[record.name] = record
        state.save()
        with pytest.raises(stack.StackError, match="already running"):
            stack.up(load_settings(home=home))
        _, rows = stack.status(load_settings(home=home))
        assert [(row.name, row.state) for row in rows] == [("datasource", "healthy")]
        stopped, forced = stack.down(load_settings(home=home))
        assert (stopped, forced) == (["datasource"], [])
        assert not state.path.exists()
        assert record.process() is None
    finally:
        supervise.stop([record], timeout=2)


@pytest.mark.integration
def test_status_and_down_without_a_stack(tmp_path):
    env = clean_env(FORESTOPS_HOME=str(tmp_path / "home"))
    status = subprocess.run(forestops_argv("stack", "status"), env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "not running" in status.stdout
    down = subprocess.run(forestops_argv("stack", "down"), env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and "was not running" in down.stdout


@pytest.mark.unit
def test_demo_defaults_yield_to_the_environment():
    applied = demo.demo_environment({"FORESTOPS_BATCH_SECONDS": "120"})
    assert "FORESTOPS_BATCH_SECONDS" not in applied
    assert applied["FORESTOPS_INGEST_EVERY"] == demo.DEMO_DEFAULTS["FORESTOPS_INGEST_EVERY"]
    calls = demo.expected_calls_per_batch(40, 5)
    assert calls == 8
    assert demo.expected_coverage(calls, 0.1) == pytest.approx(1 - 0.9**8)


@pytest.mark.unit
def test_server_mode_gives_the_services_their_own_database_user(tmp_path):
    settings = load_settings(home=tmp_path, mysql_url="mysql+pymysql://root@127.0.0.1:3306", raw_database="fo_x")
    raw = stack.raw_database(settings, tmp_path)
    assert raw.admin_url == "mysql+pymysql://root@127.0.0.1:3306"
    assert raw.url.startswith("mysql+pymysql://forestops_") and raw.url.endswith("@127.0.0.1:3306/fo_x")
    assert stack.raw_database(settings, tmp_path) == raw  # the password is kept, not regenerated
    embedded = stack.raw_database(load_settings(home=tmp_path), tmp_path)
    assert embedded.url.startswith("sqlite:///") and embedded.admin_url is None


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
