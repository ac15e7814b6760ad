"""Benchmark: the batch data API's ``/data`` on the 180k-row file.

Subject: the real ``forestops datasource`` process serving
../shared/data/covertype.csv.gz (180,181 rows; generated rows of the same size
when the file is absent): p50 / p99 latency of 200 ``GET /data`` calls
(portions of 1,802 rows, keep-alive client), start-up time and peak RSS
(VmHWM, the kernel's high-water mark, so the load phase counts too).
Targets: p50 < 50 ms, RSS < 400 MB.

Anchors, measured in the same run:
- ``GET /health`` on the same process, in blocks alternating with ``/data``:
  the HTTP floor, so the ratio is the cost of the data work itself;
- the naive way to build one answer (the rows held as a pandas frame,
  ``sample`` + ``tolist`` + ``json.dumps`` per call) against ours (random
  indices + join of ready fragments), both in this process, with the memory
  each representation of the rows takes.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from testkit.data import SHARED_DATA, generate_rows, write_csv
from testkit.processes import forestops_argv, free_port, running

from forestops.datasource.app import render_portion
from forestops.datasource.batches import BatchSchedule
from forestops.datasource.dataset import load_raw_file

CALLS = 200
WARM_UP = 10
BLOCK = 25
FULL_SIZE = 180_181


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def data_file(folder: Path) -> Path:
    if SHARED_DATA.is_file():
        return SHARED_DATA
    print(f"{SHARED_DATA} is absent: generating {FULL_SIZE} rows", flush=True)
    return write_csv(folder / "generated.csv.gz", generate_rows(FULL_SIZE))


def peak_rss(pid: int) -> int:
    """VmHWM in bytes: the process's resident peak, including what it freed since."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return psutil.Process(pid).memory_info().rss


class RssSampler(threading.Thread):
    """Samples RSS every 20 ms, for systems without /proc's VmHWM."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return


def measure_service(path: Path, folder: Path) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "FORESTOPS_HOME": str(folder),
        "FORESTOPS_DATA_PATH": str(path),
        "FORESTOPS_STATE_DIR": str(folder / "state"),
        "FORESTOPS_BATCH_SECONDS": "3600",
        "FORESTOPS_HOLDOUT_FRACTION": "0",
    }
    started = time.perf_counter()
    argv = forestops_argv("datasource", "--port", str(port))
    with running("datasource", argv, folder / "datasource.log", f"{url}/health", env, timeout=300) as service:
        start_up = time.perf_counter() - started
        assert service.process is not None
        sampler = RssSampler(service.process.pid)
        sampler.start()
        timings: dict[str, list[float]] = {"/data": [], "/health": []}
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(WARM_UP):
                client.get("/data", params={"group_number": 1}).raise_for_status()
                client.get("/health").raise_for_status()
            rows = len(client.get("/data", params={"group_number": 1}).json()["data"])
            # Alternating blocks, so that both endpoints see the same machine
            # load, without the subject's tail spilling into each anchor call.
            for _ in range(CALLS // BLOCK):
                for path, params in (("/data", {"group_number": 1}), ("/health", {})):
                    for _ in range(BLOCK):
                        began = time.perf_counter()
                        client.get(path, params=params).raise_for_status()
                        timings[path].append((time.perf_counter() - began) * 1000)
        data_ms, health_ms = timings["/data"], timings["/health"]
        sampler.done.set()
        rss = max(peak_rss(service.process.pid), sampler.peak)
    return {
        "start_up_s": start_up,
        "rows_per_answer": rows,
        "data_p50": statistics.median(data_ms),
        "data_p99": percentile(data_ms, 0.99),
        "health_p50": statistics.median(health_ms),
        "health_p99": percentile(health_ms, 0.99),
        "rss_mb": rss / 2**20,
    }


def measure_in_process(path: Path, folder: Path) -> dict[str, float]:
    """Our answer building against the naive pandas one, on the same rows and portion size."""
    import pandas as pd

    me = psutil.Process()
    gc.collect()
    before = me.memory_info().rss
    dataset = load_raw_file(path)
    fragments_mb = (me.memory_info().rss - before) / 2**20
    schedule = BatchSchedule(folder / "in-process-state", dataset.row_count, batch_seconds=3600)

    gc.collect()
    before = me.memory_info().rss
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame_mb = (me.memory_info().rss - before) / 2**20
    start, stop = schedule.batch_bounds(1)
    size = schedule.portion_size(1)

    ours: list[float] = []
    naive: list[float] = []
    for _ in range(CALLS):
        began = time.perf_counter()
        render_portion(schedule.next_portion(1), dataset.fragments)
        ours.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        rows = frame.iloc[start:stop].sample(n=size).to_numpy().tolist()
        json.dumps({"group_number": 1, "batch_number": 1, "data": rows}).encode()
        naive.append((time.perf_counter() - began) * 1000)
    return {
        "ours_p50": statistics.median(ours),
        "naive_p50": statistics.median(naive),
        "fragments_mb": fragments_mb,
        "frame_mb": frame_mb,
    }


def main() -> None:
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-datasource-") as scratch:
        folder = Path(scratch)
        path = data_file(folder)
        service = measure_service(path, folder)
        local = measure_in_process(path, folder)
    print(f"data: {path} ({FULL_SIZE} rows expected), {service['rows_per_answer']} rows per /data answer")
    print(f"start-up (load + validate + serve): {service['start_up_s']:.1f} s")
    print(f"GET /data   p50 {service['data_p50']:7.2f} ms   p99 {service['data_p99']:7.2f} ms   ({CALLS} calls)")
    print(f"GET /health p50 {service['health_p50']:7.2f} ms   p99 {service['health_p99']:7.2f} ms   (anchor)")
    print(f"  /data p50 / /health p50 = {service['data_p50'] / service['health_p50']:.1f}x")
    print(f"peak RSS of the service: {service['rss_mb']:.0f} MB")
    print(f"in-process answer building, p50: ours {local['ours_p50']:.3f} ms, naive pandas {local['naive_p50']:.3f} ms")
    print(f"  naive / ours = {local['naive_p50'] / local['ours_p50']:.1f}x")
    print(f"rows in memory: fragments {local['fragments_mb']:.0f} MB, pandas str frame {local['frame_mb']:.0f} MB")
    print(f"target p50 < 50 ms: {'met' if service['data_p50'] < 50 else 'NOT met'}")
    print(f"target RSS < 400 MB: {'met' if service['rss_mb'] < 400 else 'NOT met'}")


if __name__ == "__main__":
    main()
