"""Start real service processes for tests and wait until they answer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class ServiceProcess:
    """A subprocess with its log in a file; stopped with its whole process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        """The started process's id (its process group's too)."""
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def wait_http(self, url: str, timeout: float = 60.0, expect: int | None = 200) -> None:
        """Wait until ``url`` answers (with ``expect`` if given), or fail with the log."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail(self.log_path)}")
            try:
                response = httpx.get(url, timeout=2.0)
                if expect is None or response.status_code == expect:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer {url} in {timeout}s ({last}):\n{tail(self.log_path)}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.process or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> ServiceProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    health_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(name, argv, log_path, env, cwd).start()
    try:
        service.wait_http(health_url, timeout=timeout)
        yield service
    finally:
        service.stop()


def forestops_argv(*args: str) -> list[str]:
    """The console script of this environment, so tests run the installed command."""
    return [str(VENV_BIN / "forestops"), *args]


def settings_env(settings: Any, names: Iterable[str]) -> dict[str, str]:
    """The ``FORESTOPS_*`` variables that reproduce these fields of ``settings`` in a child process.

    Fields that are ``None`` are left out, so the child falls back to its default too.
    """
    return {f"FORESTOPS_{name.upper()}": str(value) for name in names if (value := getattr(settings, name)) is not None}
