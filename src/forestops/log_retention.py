"""Log retention: Airflow's task logs and the local stack's service logs stay bounded over days.

Airflow writes one file per task attempt and never deletes any (the official
Helm chart runs a cleanup side-car; the Compose file and a local stack have
none).  At the demo's pace, an ingest run every few seconds, that is 10-16
MiB an hour for as long as the stack runs.  The retention DAG therefore
deletes task log files older than ``FORESTOPS_TASK_LOG_RETENTION_HOURS`` and
the folders they leave empty.

The local stack's services append their output to one file each
(``<home>/logs/<service>.log``), held open by the running process.  Such a
file is cut in place to its newest part once it passes
``FORESTOPS_SERVICE_LOG_MAX_MB``: the writer opened it for appending, so its
next write lands at the new end and nothing it writes later is lost.  (In
Compose the Docker log driver rotates container output; see ``x-logging``.)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from forestops.settings import Settings

log = logging.getLogger(__name__)

CUT_MARK = b"\n=== older lines removed by forestops log retention ===\n"


@dataclass
class LogRetentionReport:
    deleted_files: int = 0
    deleted_bytes: int = 0
    removed_folders: int = 0
    cut_files: list[str] = field(default_factory=list)
    cut_bytes: int = 0

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


def delete_old_files(folder: Path, older_than_seconds: float, report: LogRetentionReport, now: float) -> None:
    """Delete files under ``folder`` last written before the cut-off, then the folders left empty.

    A file still being written has a recent modification time, so a running
    task's log is never touched; the top folder itself is kept.
    """
    if not folder.is_dir():
        return
    cutoff = now - older_than_seconds
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(root, name)
            try:
                info = path.lstat()
                if info.st_mtime < cutoff:
                    path.unlink()
                    report.deleted_files += 1
                    report.deleted_bytes += info.st_size
            except FileNotFoundError:  # removed meanwhile (another retention run)
                continue
        for name in dirs:
            path = Path(root, name)
            try:
                path.rmdir()  # only succeeds when empty
                report.removed_folders += 1
            except OSError:
                continue


def cut_to_newest(path: Path, max_bytes: int, report: LogRetentionReport) -> None:
    """Keep the newest half of ``max_bytes`` of a log file that grew past ``max_bytes``, in place.

    The newest part is copied to the front and the file truncated after it;
    a writer holding the file open for appending goes on at the new end.
    Lines written during the few milliseconds of the cut may be lost, never
    the newest part.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size <= max_bytes:
        return
    keep = max_bytes // 2
    with path.open("r+b") as file:
        file.seek(size - keep)
        tail = file.read(keep)
        newline = tail.find(b"\n")
        tail = tail[newline + 1 :] if 0 <= newline < len(tail) - 1 else tail  # start on a whole line
        file.seek(0)
        file.write(CUT_MARK + tail)
        file.truncate()
    report.cut_files.append(path.name)
    report.cut_bytes += size - len(tail) - len(CUT_MARK)


def apply(
    task_log_folder: Path | None,
    service_log_folder: Path | None,
    settings: Settings,
    now: float | None = None,
) -> LogRetentionReport:
    """Delete old task logs and cut oversized service logs; either folder may be absent."""
    report = LogRetentionReport()
    now = time.time() if now is None else now
    if task_log_folder is not None:
        delete_old_files(task_log_folder, settings.task_log_retention_hours * 3600, report, now)
    if service_log_folder is not None and service_log_folder.is_dir():
        max_bytes = int(settings.service_log_max_mb * 1024 * 1024)
        for path in sorted(service_log_folder.glob("*.log")):
            cut_to_newest(path, max_bytes, report)
    log.info(
        "log retention: deleted %d task log files (%.1f MiB), %d empty folders; cut %d service logs (%.1f MiB)",
        report.deleted_files,
        report.deleted_bytes / 2**20,
        report.removed_folders,
        len(report.cut_files),
        report.cut_bytes / 2**20,
    )
    return report


def airflow_task_log_folder() -> Path | None:
    """Where this Airflow writes task logs (``[logging] base_log_folder``), when Airflow is configured."""
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - Airflow is a dependency of the package
        return None
    folder = conf.get("logging", "base_log_folder", fallback=None)
    return Path(folder) if folder else None


def log_retention_step(settings: Settings) -> dict[str, object]:
    """What the ``covertype_retention`` DAG runs: this Airflow's task logs, and the local stack's service logs."""
    service_logs = settings.home.resolve() / "logs"
    return apply(airflow_task_log_folder(), service_logs if service_logs.is_dir() else None, settings).as_dict()
