"""Soak: the local stack at demo settings for a bounded time, watching what grows.

Subject: ``forestops stack up --demo`` (embedded mode: SQLite, local
artefacts) running two collection cycles with a full restart between them:
cycle 1 runs until the data API reports the collection complete (plus a
quiet spell in that state, where the ingest DAG keeps asking), then
``stack down`` / ``stack up`` on the same home, the bench asks the data API
to restart the collection, and cycle 2 runs until the time is up.

Every ``--interval`` seconds it records into a CSV: the resident memory
(RSS, whole process tree) of every service, the size of the covertype and
MLflow databases, fetch_log rows (and how many say "complete"), registered
model versions and the artefact store's size.  At the end it draws one PNG
(matplotlib) and prints growth per hour over the second half of each cycle,
which is what must level off.

Anchor (same run): the figures at the first sample after the first
champion, so growth is read as a ratio of that state.

Options (``make bench BENCH_ARGS=soak`` uses the defaults; the module can
also run alone: ``python -m benchmarks.bench_soak --minutes 60``):
``--minutes`` (60), ``--interval`` (30), ``--home`` (a temp folder),
``--port-base`` (free ports when unset), ``--out`` (CSV path; the PNG goes
next to it unless ``--png`` is given).  Needs ../shared/data/covertype.csv.gz.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from testkit.data import SHARED_DATA
from testkit.stack import forestops, stack_environment, stack_settings

SERVICES = ("datasource", "mlflow", "airflow", "inference", "ui")
QUIET_AFTER_COMPLETE_SECONDS = 300


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def service_pids(home: Path) -> dict[str, int]:
    import json

    state = home / "stack" / "state.json"
    if not state.exists():
        return {}
    services = json.loads(state.read_text()).get("services", {})
    return {name: int(record["pid"]) for name, record in services.items() if "pid" in record}


def folder_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def sqlite_mb(path: Path) -> float:
    """A SQLite database with its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()) / 2**20


def query(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        connection.close()


def sample(home: Path, started: float, phase: str) -> dict[str, object]:
    raw_db = home / "covertype.db"
    mlflow_db = home / "mlflow.db"
    pids = service_pids(home)
    row: dict[str, object] = {
        "utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": round((time.monotonic() - started) / 60, 2),
        "phase": phase,
    }
    for name in SERVICES:  # Airflow is several services (airflow-scheduler, airflow-api-server, ...)
        members = [pid for service, pid in pids.items() if service == name or service.startswith(f"{name}-")]
        row[f"rss_mb_{name}"] = round(sum(tree_rss_mb(pid) for pid in members), 1)
    row.update(
        raw_db_mb=round(sqlite_mb(raw_db), 2),
        mlflow_db_mb=round(sqlite_mb(mlflow_db), 2),
        airflow_db_mb=round(sqlite_mb(home / "airflow" / "airflow.db"), 2),
        artefacts_mb=round(folder_mb(home / "mlartifacts"), 2),
        logs_mb=round(folder_mb(home / "logs") + folder_mb(home / "airflow" / "logs"), 2),
        task_logs_mb=round(folder_mb(home / "logs" / "airflow-tasks"), 2),
        home_mb=round(folder_mb(home), 1),
        raw_rows=query(raw_db, "SELECT COUNT(*) FROM raw_rows"),
        fetch_log_rows=query(raw_db, "SELECT COUNT(*) FROM fetch_log"),
        fetch_log_complete=query(raw_db, "SELECT COUNT(*) FROM fetch_log WHERE status = 'complete'"),
        trainings=query(raw_db, "SELECT COUNT(*) FROM training_log WHERE status = 'trained'"),
        model_versions=query(mlflow_db, "SELECT COUNT(*) FROM model_versions"),
        runs=query(mlflow_db, "SELECT COUNT(*) FROM runs"),
    )
    return row


def restart_collection(env: dict[str, str]) -> str:
    from forestops.ingest.client import DataApiClient

    with DataApiClient(stack_settings(env)) as client:
        return str(client.restart())


def plot(rows: list[dict[str, object]], png: Path, restarts: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [float(r["minutes"]) for r in rows]
    figure, (memory, storage, counts) = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    for name in SERVICES:
        memory.plot(minutes, [float(r[f"rss_mb_{name}"]) for r in rows], label=name)
    memory.set_ylabel("RSS (MiB)")
    memory.legend(loc="upper left", fontsize="small", ncol=3)
    for key in ("raw_db_mb", "mlflow_db_mb", "airflow_db_mb", "artefacts_mb", "logs_mb", "task_logs_mb"):
        storage.plot(minutes, [float(r[key]) for r in rows], label=key.removesuffix("_mb"))
    storage.set_ylabel("size (MiB)")
    storage.legend(loc="upper left", fontsize="small", ncol=3)
    for key in ("fetch_log_rows", "fetch_log_complete", "model_versions", "runs"):
        counts.plot(minutes, [float(r[key]) for r in rows], label=key)
    counts.set_ylabel("rows")
    counts.set_xlabel("minutes since the first `stack up`")
    counts.legend(loc="upper left", fontsize="small", ncol=2)
    for axis in (memory, storage, counts):
        for at in restarts:
            axis.axvline(at, color="grey", linestyle="--", linewidth=0.8)
    figure.suptitle("forestops soak at demo settings (dashed: stack restart)")
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=80)
    plt.close(figure)


def growth_per_hour(rows: list[dict[str, object]], key: str) -> float | None:
    """Slope of ``key`` over the second half of the samples (what is still growing at the end)."""
    tail = rows[len(rows) // 2 :]
    if len(tail) < 2 or float(tail[-1]["minutes"]) <= float(tail[0]["minutes"]):
        return None
    span_hours = (float(tail[-1]["minutes"]) - float(tail[0]["minutes"])) / 60
    return (float(tail[-1][key]) - float(tail[0][key])) / span_hours


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("BENCH_SOAK_MINUTES", 60)))
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-base", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--png", type=Path, default=None)
    return parser.parse_args(argv)


# Ports from --port-base: the base plus these offsets (a service not named here gets a free port).
PORT_OFFSETS = {"DATASOURCE": 90, "MLFLOW": 50, "INFERENCE": 80, "UI": 51, "AIRFLOW": 81}


def environment(home: Path, port_base: int | None) -> dict[str, str]:
    ports = {name: port_base + offset for name, offset in PORT_OFFSETS.items()} if port_base else None
    return stack_environment(
        home,
        ports,
        # A loaded shared machine parses DAG files slowly: give the start-up room instead of failing it.
        FORESTOPS_STACK_HEALTH_TIMEOUT=os.environ.get("FORESTOPS_STACK_HEALTH_TIMEOUT", "900"),
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="300",
        AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT="600",
        # Retention at a pace one hour can show: every 10 minutes, task logs and Airflow's run history
        # kept 15 minutes, service logs cut at 5 MB (defaults: hourly, 48 hours, 50 MB; the bound
        # scales with them).
        FORESTOPS_RETENTION_EVERY_MINUTES=os.environ.get("FORESTOPS_RETENTION_EVERY_MINUTES", "10"),
        FORESTOPS_TASK_LOG_RETENTION_HOURS=os.environ.get("FORESTOPS_TASK_LOG_RETENTION_HOURS", "0.25"),
        FORESTOPS_SERVICE_LOG_MAX_MB=os.environ.get("FORESTOPS_SERVICE_LOG_MAX_MB", "5"),
        FORESTOPS_AIRFLOW_HISTORY_HOURS=os.environ.get("FORESTOPS_AIRFLOW_HISTORY_HOURS", "0.25"),
    )


def main(argv: list[str] | None = None) -> None:
    args = parse([] if argv is None else argv)  # `make bench` passes none: BENCH_SOAK_MINUTES sets the length
    if not SHARED_DATA.is_file():
        print(f"skipped: needs the full data set at {SHARED_DATA}")
        return
    temporary = args.home is None
    home = (args.home or Path(tempfile.mkdtemp(prefix="bench-soak-")) / "home").resolve()
    out = args.out or home.parent / "soak.csv"
    png = args.png or out.with_suffix(".png")
    env = environment(home, args.port_base)
    print(
        f"soak: {args.minutes:g} min, a sample every {args.interval:g} s, home {home}, "
        f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: list[dict[str, object]] = []
    restarts: list[float] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60
    phase = "cycle 1"
    complete_since = None
    try:
        up = forestops(env, "stack", "up", timeout=1800)
        if up.returncode != 0:
            raise RuntimeError(f"stack up failed: {up.stdout[-2000:]} {up.stderr[-2000:]}")
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as handle:
            writer = None
            while time.monotonic() < deadline:
                row = sample(home, started, phase)
                rows.append(row)
                if writer is None:
                    writer = csv.DictWriter(handle, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                handle.flush()
                print(
                    f"{row['minutes']:7.1f} min {phase}: rss "
                    + " ".join(f"{n}={row[f'rss_mb_{n}']:.0f}" for n in SERVICES)
                    + f" MiB; fetch_log {row['fetch_log_rows']} ({row['fetch_log_complete']} complete), "
                    f"raw {row['raw_rows']}, versions {row['model_versions']}, artefacts {row['artefacts_mb']} MiB",
                    flush=True,
                )
                if phase == "cycle 1" and int(row["fetch_log_complete"]) > 0:
                    complete_since = complete_since or time.monotonic()
                    if time.monotonic() - complete_since >= min(QUIET_AFTER_COMPLETE_SECONDS, args.minutes * 6):
                        restarts.append(float(row["minutes"]))
                        down = forestops(env, "stack", "down", timeout=300)
                        print(f"restart: {down.stdout.strip()}", flush=True)
                        up = forestops(env, "stack", "up", timeout=1800)
                        if up.returncode != 0:
                            raise RuntimeError(f"stack up after the restart failed: {up.stderr[-2000:]}")
                        print(f"collection restarted: {restart_collection(env)}", flush=True)
                        phase = "cycle 2"
                time.sleep(max(0.0, min(args.interval, deadline - time.monotonic())))
    finally:
        down = forestops(env, "stack", "down", timeout=300)
        print(down.stdout.strip(), flush=True)
    elapsed = (time.monotonic() - started) / 60
    if rows:
        plot(rows, png, restarts)
        print(f"ran {elapsed:.1f} min, {len(rows)} samples; CSV {out}; plot {png}")
        last = rows[-1]
        for key in [f"rss_mb_{n}" for n in SERVICES] + [
            "raw_db_mb",
            "mlflow_db_mb",
            "airflow_db_mb",
            "artefacts_mb",
            "logs_mb",
            "task_logs_mb",
            "fetch_log_rows",
            "fetch_log_complete",
            "model_versions",
        ]:
            slope = growth_per_hour(rows, key)
            print(f"  {key:<20} end {float(last[key]):10.1f}   growth over the last half: {slope or 0:+9.1f} /h")
    if temporary:
        shutil.rmtree(home.parent, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
