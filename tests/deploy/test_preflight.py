"""`make up`'s preflight (docker/host/preflight.sh): names what is missing and what to install.

No Docker engine runs here, so ``docker`` is a small script on PATH that
answers the version questions the way the real CLI does (a real process,
with the outputs its subcommands print).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy import compose

pytestmark = pytest.mark.unit

SCRIPT = compose.DOCKER_DIR / "host" / "preflight.sh"


def fake_docker(folder: Path, engine: str = "27.3.1", compose_version: str = "2.29.7", buildx: str = "v0.17.1") -> None:
    """``docker`` answering like Docker's CLI; an empty version stands for a missing daemon or plugin."""
    lines = ["#!/bin/sh", 'case "$1 $2" in']
    lines.append(f'  "version --format") [ -n "{engine}" ] && echo "{engine}" || exit 1 ;;')
    if compose_version:
        lines.append(f'  "compose version") echo "{compose_version}" ;;')
    if buildx:
        lines.append(f'  "buildx version") echo "github.com/docker/buildx {buildx} 0a1b2c3" ;;')
    lines.append(f'  "info --format") echo "{folder}" ;;')
    lines.append('  "compose -p") exit 0 ;;')  # no running stack
    lines.append('  *) echo "docker: unknown command $*" >&2; exit 1 ;;')
    lines.append("esac")
    path = folder / "docker"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def run(folder: Path, *ports: int, min_free_gb: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "PREFLIGHT_MIN_FREE_GB": str(min_free_gb)}
    argv = ["bash", str(SCRIPT), *map(str, ports)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_ready_machine_passes(tmp_path) -> None:
    fake_docker(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    result = run(tmp_path, free)
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in (
        "ok    Docker Engine 27.3.1",
        "ok    Compose 2.29.7",
        "ok    buildx 0.17.1",
        f"ports {free} are free",
    ):
        assert expected in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("versions", "problem", "fix"),
    [
        ({"compose_version": "2.20.2"}, "Compose 2.20.2 is older than 2.24", "docker-compose-plugin"),
        ({"compose_version": ""}, "the Compose plugin is missing", "docker-compose-plugin"),
        ({"buildx": "v0.12.1"}, "buildx 0.12.1 is older than 0.17", "docker-buildx-plugin"),
        ({"buildx": ""}, "the buildx plugin is missing", "docker-buildx-plugin"),
        ({"engine": "20.10.24"}, "Docker Engine 20.10.24 is older than 24.0", "docker-ce"),
        ({"engine": ""}, "the Docker daemon does not answer", "systemctl start docker"),
    ],
)
def test_each_missing_or_old_part_is_named_with_what_to_install(tmp_path, versions, problem, fix) -> None:
    fake_docker(tmp_path, **versions)
    result = run(tmp_path)
    assert result.returncode == 1
    assert f"FAIL  {problem}" in result.stdout, result.stdout
    assert fix in result.stdout.split(problem, 1)[1].splitlines()[1]
    assert "fix them, then run make up again" in result.stderr


def test_a_busy_port_and_a_full_disk_are_reported(tmp_path) -> None:
    fake_docker(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        result = run(tmp_path, busy, min_free_gb=10**6)
    assert result.returncode == 1
    assert f"FAIL  port {busy} is already in use" in result.stdout
    assert "GB free for Docker" in result.stdout and "docker system prune" in result.stdout


def test_without_docker_it_says_what_to_install(tmp_path) -> None:
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    if any((Path(folder) / "docker").exists() for folder in env["PATH"].split(":")):
        pytest.skip("this machine has a docker command")
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "docker is not installed" in result.stdout and "docker-buildx-plugin" in result.stdout


def test_make_up_runs_the_preflight_on_the_published_ports_first() -> None:
    result = subprocess.run(
        ["make", "-n", "up"], cwd=compose.REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "preflight.sh" in line)
    up = next(i for i, line in enumerate(lines) if " up -d " in line)
    assert first < up
    ports = {int(port) for port in lines[first].split("preflight.sh", 1)[1].split()}
    assert {8080, 8000, 8501, 5000, 3306, 9000, 9001, 8090} <= ports
