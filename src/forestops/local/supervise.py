"""Start detached service processes, remember them, and stop exactly those.

Why not honcho: honcho is a foreground supervisor.  It would have to stay
alive as a parent for ``stack down`` and ``stack status`` (run later, from
another shell) to reach the services, it keeps no record of pids across
invocations, it merges every log into one stream, and it stops all services
when one exits.  The local stack needs the opposite: services that outlive
the command that started them, one log file each, health-gated start-up, and
a state file that names each pid so ``down`` can stop those processes (and
their children) and nothing else.  That is what this module does, in a few
lines on top of ``subprocess`` and ``psutil``.

Identity: a pid alone can be reused by the system after a crash, so a
recorded process is only "ours" while its creation time still matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from forestops.errors import ForestopsError


class StateFileError(ForestopsError):
    """The stack's state file cannot be read, so the pids it should name are unknown."""


def installed_command(name: str) -> str | None:
    """A console script of this environment (the venv) first, else one on PATH; None when neither has it."""
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else shutil.which(name)


@dataclass
class ServiceRecord:
    name: str
    pid: int
    create_time: float
    argv: list[str]
    log: str
    url: str | None = None
    # Where `stack status` asks for health: declared on the service spec, recorded at start.
    health_url: str | None = None
    health_component: str | None = None

    def _is_ours(self) -> bool | None:
        """True: the recorded process (maybe a zombie); False: pid reused by another; None: gone."""
        try:
            return abs(psutil.Process(self.pid).create_time() - self.create_time) <= 0.5
        except psutil.NoSuchProcess:
            return None
        except psutil.AccessDenied:
            return False

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None (exited, or pid reused)."""
        if not self._is_ours():
            return None
        try:
            process = psutil.Process(self.pid)
            return None if process.status() == psutil.STATUS_ZOMBIE else process
        except psutil.NoSuchProcess:
            return None

    def family(self) -> list[psutil.Process]:
        """Every live process of this service: the leader, its descendants, and its process group.

        Group members count even when the leader is gone: a pid is not reused
        while a process group of that id still has members.  When the pid now
        belongs to an unrelated process, the old group was empty, so there is
        nothing of ours left to find.
        """
        ours = self._is_ours()
        if ours is False:
            return []
        if ours is None and self.create_time < psutil.boot_time():
            # Recorded before the machine restarted: nothing of ours survived it, and a process
            # group of this id now is someone else's (pids start over after a boot).
            return []
        members: dict[int, psutil.Process] = {}
        leader = self.process()
        if leader is not None:
            members[leader.pid] = leader
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, PermissionError):
                if (
                    os.getpgid(process.pid) == self.pid
                    and process.status() != psutil.STATUS_ZOMBIE
                    # A member of our group was started after our leader; anything older is not ours.
                    and process.create_time() >= self.create_time - 0.5
                ):
                    members[process.pid] = process
        for process in list(members.values()):
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in process.children(recursive=True):
                    members.setdefault(child.pid, child)
        return list(members.values())


@dataclass
class StackState:
    path: Path
    started_at: float = 0.0
    mode: str = ""
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> StackState:
        if not path.exists():
            return cls(path=path)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            services = {name: ServiceRecord(**record) for name, record in data.get("services", {}).items()}
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as error:
            raise StateFileError(
                f"the local stack's state file {path} is unreadable ({error}); it lists the pids `make down` stops. "
                f"Look for leftover services (`ps -ef | grep -e forestops -e airflow -e mlflow`) and stop them, "
                f"then delete the file (`rm {path}`) and start again"
            ) from None
        return cls(
            path=path,
            started_at=data.get("started_at", 0.0),
            mode=data.get("mode", ""),
            services=services,
            notes=data.get("notes", {}),
        )

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "started_at": self.started_at,
            "mode": self.mode,
            "services": {name: asdict(record) for name, record in self.services.items()},
            "notes": self.notes,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2))
        temporary.replace(self.path)

    def alive(self) -> dict[str, ServiceRecord]:
        return {name: record for name, record in self.services.items() if record.family()}

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def start_detached(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    url: str | None = None,
    health_url: str | None = None,
    health_component: str | None = None,
    niceness: int = 0,
) -> ServiceRecord:
    """Start ``argv`` in its own session (own process group), output appended to ``log_path``.

    ``niceness`` is added to its nice value (as ``nice -n``) before it runs,
    so what it forks (Airflow's task runners) inherits it.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            # In the child before exec, so everything it forks inherits it.
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
        )
    create_time = psutil.Process(process.pid).create_time()
    return ServiceRecord(name, process.pid, create_time, list(argv), str(log_path), url, health_url, health_component)


def stop(records: Sequence[ServiceRecord], timeout: float = 20.0) -> list[str]:
    """Stop services one after the other, in the order given; returns those that needed SIGKILL.

    One at a time, because order matters: Airflow's scheduler must go before
    the API server its running tasks report to, or they hang retrying.
    """
    forced = []
    for record in records:
        if not stop_one(record, timeout):
            forced.append(record.name)
    return forced


def stop_one(record: ServiceRecord, timeout: float) -> bool:
    """SIGTERM the process group (and descendants that left it); SIGKILL after ``timeout``.

    Returns True when everything exited on SIGTERM.
    """
    family = record.family()
    if not family:
        return True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGTERM)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            if os.getpgid(process.pid) != record.pid:
                process.terminate()
    _, still_alive = psutil.wait_procs(family, timeout=timeout)
    # Processes started during shutdown are family too.
    late = [p for p in record.family() if p.pid not in {q.pid for q in family}]
    for process in [*still_alive, *late]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs([*still_alive, *late], timeout=5)
    return not still_alive


def _describe(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        words = " ".join(process.cmdline()[:6])
        return f"pid {process.pid} ({words[:100]})"
    return f"pid {process.pid}"


def _running(process: psutil.Process) -> bool:
    """Still running: a zombie has finished (its parent has not reaped it yet) and needs no signal."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_until_stopped(processes: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has ended (or is a zombie); returns those still running at ``timeout``.

    ``psutil.wait_procs`` counts a zombie as alive, so a task that ended while
    its parent was busy shutting down made every wait last its whole timeout
    and showed up as "needed SIGKILL".
    """
    deadline = time.monotonic() + timeout
    running = [process for process in processes if _running(process)]
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        running = [process for process in running if _running(process)]
    return running


def stop_together(records: Sequence[ServiceRecord], grace: float = 10.0, timeout: float = 20.0) -> list[str]:
    """Stop several services at once; returns what needed SIGKILL, each named.

    All leaders and their groups get SIGTERM together (so their waits
    overlap instead of adding up).  After ``grace`` seconds, descendants that
    still run (an Airflow task deep in a model fit does not reach Python's
    signal handler before the fit returns) are killed, so their leader (the
    scheduler, waiting for its tasks) can finish its own clean shutdown; the
    leaders themselves get until ``timeout``.
    """
    families = {record.name: record.family() for record in records}
    for record in records:
        if not families[record.name]:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, signal.SIGTERM)
        for process in families[record.name]:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if os.getpgid(process.pid) != record.pid:
                    process.terminate()
    everyone = [process for family in families.values() for process in family]
    alive = _wait_until_stopped(everyone, grace)
    forced: list[str] = []
    leaders = {record.pid for record in records}
    stragglers = [process for process in alive if process.pid not in leaders]
    for process in stragglers:
        forced.append(_describe(process))
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    _wait_until_stopped(alive, max(timeout - grace, 1.0))
    for record in records:
        rest = [p for p in record.family() if p.pid not in {q.pid for q in stragglers} and _running(p)]
        for process in rest:
            forced.append(f"{record.name} {_describe(process)}")
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        _wait_until_stopped(rest, 5)
    return forced


START_MARK = "=== "  # start_detached opens each attempt's part of a log with "=== <time> starting: ..."


def tail(path: Path | str, lines: int = 30) -> str:
    """The last ``lines`` of the latest attempt in a log (earlier starts' lines would mislead)."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log yet)"
    starts = [i for i, line in enumerate(text) if line.startswith(START_MARK) and " starting: " in line]
    if starts:
        text = text[starts[-1] :]
    return "\n".join(text[-lines:])
