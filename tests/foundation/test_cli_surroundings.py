"""Every ``forestops`` subcommand in broken surroundings: one clear message, the documented exit code.

Broken surroundings are the expected failures of a newcomer's machine: a
home folder that cannot be used, servers that do not answer, a port that is
taken, a state file cut short.  Each case runs the installed console script
in a subprocess (as a user would) and checks that it exits with the code
docs/configuration.md documents (1: an operation failed, 2: configuration
that cannot work), that one line names the cause and the fix, and that no
traceback reaches the terminal.  Nothing here needs a server: every
"unreachable" address is a free local port, and HTTP retries are off.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import forestops_argv, free_port

# Arguments a subcommand needs to get past its own option parsing.
REQUIRED_ARGS = {"promote": ["1"], "pin": ["1"]}


def subcommands() -> list[list[str]]:
    """Every subcommand of the console script, groups expanded (new commands are covered by default)."""
    from forestops.cli import app

    found = []
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        found.append([name, *REQUIRED_ARGS.get(name, [])])
    for group in app.registered_groups:
        for command in group.typer_instance.registered_commands:
            name = command.name or command.callback.__name__.replace("_", "-")
            found.append([group.name, name])
    return found


def home_free() -> set[str]:
    """Commands that never read FORESTOPS_HOME (the compose deployment's helpers), as the CLI declares them."""
    from forestops.cli import _NO_HOME

    return set(_NO_HOME)


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """A child environment whose servers are all unreachable, with short timeouts."""
    base = {name: value for name, value in os.environ.items() if not name.startswith("FORESTOPS_")}
    return {
        **base,
        "FORESTOPS_HOME": str(tmp_path / "home"),
        "FORESTOPS_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "FORESTOPS_DATASOURCE_URL": f"http://127.0.0.1:{free_port()}",
        "FORESTOPS_INFERENCE_URL": f"http://127.0.0.1:{free_port()}",
        "FORESTOPS_AIRFLOW_URL": f"http://127.0.0.1:{free_port()}",
        "FORESTOPS_HTTP_RETRIES": "0",
        "FORESTOPS_HTTP_TIMEOUT_SECONDS": "3",
        "FORESTOPS_STACK_HEALTH_TIMEOUT": "5",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(forestops_argv(*argv), capture_output=True, text=True, env=env, timeout=300)


def assert_clear_failure(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """Exit ``code``; one ``error:`` message on stderr holding every word; no traceback anywhere.

    The message is its ``error:`` line and the indented lines under it (one per problem).
    """
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "╭─" not in output, output[-3000:]
    assert result.returncode == code, output[-3000:]
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(starts) == 1, result.stderr[-3000:]
    message = [lines[starts[0]]]
    for line in lines[starts[0] + 1 :]:
        if not line.startswith(" "):
            break
        message.append(line)
    text = "\n".join(message)
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("argv", [a for a in subcommands() if a[0] not in home_free()], ids=" ".join)
def test_a_home_that_is_a_file_is_refused_by_name(argv, environment, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    environment["FORESTOPS_HOME"] = str(blocker / "home")
    assert_clear_failure(run(argv, environment), 2, "FORESTOPS_HOME", str(blocker))


def test_a_missing_home_is_created_owner_only(environment, tmp_path):
    home = tmp_path / "new" / "nested" / "home"
    environment["FORESTOPS_HOME"] = str(home)
    result = run(["stack", "status"], environment)
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stdout
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_ingest_once_into_a_missing_home_stores_its_fetch_log_there(environment, tmp_path):
    """The traceback of issue 18 (``unable to open database file``) becomes a run against a new folder."""
    home = tmp_path / "fresh"
    environment["FORESTOPS_HOME"] = str(home)
    result = run(["ingest-once"], environment)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "FORESTOPS_DATASOURCE_URL" in result.stderr
    assert (home / "covertype.db").exists()


UNREACHABLE_MLFLOW = [["promote", "1"], ["rollback"], ["pin"], ["unpin"]]


@pytest.mark.parametrize("argv", UNREACHABLE_MLFLOW, ids=" ".join)
def test_unreachable_mlflow_names_the_setting(argv, environment):
    assert_clear_failure(run(argv, environment), 1, "not reachable", "FORESTOPS_MLFLOW_TRACKING_URI")


@pytest.mark.parametrize("argv", [["ingest-once"], ["train", "--force"]], ids=" ".join)
def test_unreachable_database_names_the_setting(argv, environment):
    environment["FORESTOPS_DATABASE_URL"] = f"mysql+pymysql://someone:secret-pw@127.0.0.1:{free_port()}/covertype"
    result = run(argv, environment)
    assert_clear_failure(result, 1, "not reachable", "FORESTOPS_DATABASE_URL")
    assert "secret-pw" not in result.stdout + result.stderr


def test_unreachable_data_api_names_the_setting(environment):
    result = run(["ingest-once"], environment)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert '"status": "error"' in result.stdout
    assert "FORESTOPS_DATASOURCE_URL" in result.stderr


SERVERS = [
    (["datasource"], "FORESTOPS_DATASOURCE_PORT"),
    (["inference"], "FORESTOPS_INFERENCE_PORT"),
    (["ui"], "FORESTOPS_UI_PORT"),
    (["mlflow-server"], "FORESTOPS_MLFLOW_PORT"),
]


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(("argv", "setting"), SERVERS, ids=[a[0][0] for a in SERVERS])
def test_a_server_on_a_busy_port_says_so_before_starting(argv, setting, environment, busy_port):
    environment[setting] = str(busy_port)
    assert_clear_failure(run(argv, environment), 1, f"port {busy_port}", "already in use", setting)


def test_stack_up_on_a_busy_port_names_the_setting(environment, busy_port):
    environment["FORESTOPS_DATASOURCE_PORT"] = str(busy_port)
    assert_clear_failure(run(["stack", "up"], environment), 1, "already in use", "FORESTOPS_DATASOURCE_PORT")


@pytest.mark.parametrize("action", ["up", "down", "status"])
def test_a_half_written_state_file_is_named_with_the_fix(action, environment, tmp_path):
    state = tmp_path / "home" / "stack" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"started_at": 1, "services": {"mlflow": {"name": "mlfl')
    assert_clear_failure(run(["stack", action], environment), 1, str(state), "rm ")
