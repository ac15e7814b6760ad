"""Load test of the inference API with Locust: throughput and latency percentiles of a mixed scenario.

Locust (pinned in the dev extra) runs headless as its own process against a
real ``forestops inference`` on 127.0.0.1, for a bounded time with a bounded
number of users (FORESTOPS_BENCH_LOAD_USERS, FORESTOPS_BENCH_LOAD_SECONDS).
The scenario (``benchmarks/locustfile.py``): single-row predictions (8 in
10), 100-row batches (1 in 10), ``GET /model`` (1 in 10), no think time.

Anchor, measured in the same run against the same server: the same users
hitting ``/health`` only.  Locust is Python, so on a small machine the load
generator itself is often the ceiling; the ratio (scenario / health) says
how much of that ceiling the model's work takes, where the absolute figures
mostly say how loaded the machine was.  ``bench_serving`` (wrk, C) gives the
server's own ceiling next to MLflow's scoring server.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import tempfile
from pathlib import Path

from testkit import inference
from testkit.processes import VENV_BIN

USERS = int(os.environ.get("FORESTOPS_BENCH_LOAD_USERS", "16"))
SECONDS = int(os.environ.get("FORESTOPS_BENCH_LOAD_SECONDS", "20"))
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def run_locust(url: str, user_class: str, folder: Path, rows_file: Path) -> dict[str, float]:
    """One headless Locust run; returns the aggregated figures from its stats CSV."""
    prefix = folder / user_class
    argv = [
        str(VENV_BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(USERS), "-r", str(USERS), "-t", f"{SECONDS}s", "--stop-timeout", "5",
        "--host", url, "--csv", str(prefix), "--loglevel", "WARNING", user_class,
    ]  # fmt: skip
    env = {**os.environ, "FORESTOPS_BENCH_ROWS_FILE": str(rows_file), "DO_NOT_TRACK": "1"}
    finished = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=SECONDS + 120)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"locust wrote no statistics (exit {finished.returncode}): {finished.stderr[-1500:]}")
    with stats.open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    result = {
        "requests": float(total["Request Count"]),
        "failures": float(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50": float(total["50%"]),
        "p95": float(total["95%"]),
        "p99": float(total["99%"]),
        "load": os.getloadavg()[0],
    }
    for name, row in rows.items():
        if name != "Aggregated":
            count, rate, failures = int(row["Request Count"]), float(row["Requests/s"]), row["Failure Count"]
            print(
                f"  {user_class:<11} {name:<22} {count:>7} req {rate:>7.1f}/s  p50 {row['50%']:>5} ms  "
                f"p95 {row['95%']:>5} ms  p99 {row['99%']:>5} ms  failures {failures}"
            )
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="forestops-bench-load-") as tmp:
        folder = Path(tmp)
        with inference.registered_model(folder) as model:
            rows_file = folder / "rows.json"
            rows_file.write_text(json.dumps(inference.request_rows()))
            with inference.inference_server(folder, model) as server:
                print(
                    f"model {model.name} v{model.version}; locust, {USERS} users, {SECONDS} s per run, "
                    f"1 inference worker, {os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                anchor = run_locust(server.url, "HealthUser", folder, rows_file)
                subject = run_locust(server.url, "PredictUser", folder, rows_file)
    print(f"\n{'':24}{'/health (anchor)':>18}{'scenario':>12}{'ratio':>8}")
    print(f"{'requests/s':24}{anchor['rps']:>18.1f}{subject['rps']:>12.1f}{subject['rps'] / anchor['rps']:>8.2f}")
    for key in ("p50", "p95", "p99"):
        ratio = subject[key] / anchor[key] if anchor[key] else float("nan")
        print(f"{key + ' ms':24}{anchor[key]:>18.0f}{subject[key]:>12.0f}{ratio:>8.2f}")
    print(f"{'failures':24}{anchor['failures']:>18.0f}{subject['failures']:>12.0f}")
    print(f"{'load average at end':24}{anchor['load']:>18.1f}{subject['load']:>12.1f}")
