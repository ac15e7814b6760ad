"""Memory of the inference worker under a stream of oversized requests.

Subject: ``forestops inference`` (one worker) with the default body limit
(FORESTOPS_MAX_REQUEST_BYTES, 8 MiB), sent a stream of 33 MB ``/predict``
bodies (100,000 rows, the size the finding measured), half with a
Content-Length, half chunked, a few at a time.
Anchor, measured in the same run: the same service and stream with the limit
raised to 1 GiB, i.e. what the worker did before the limit existed (read
the whole body, then parse it and refuse it for its row count).

Printed: the worker's RSS when idle, its peak during the stream (sampled
every 20 ms with psutil, children included), the answers' status codes, and
the ratio of the two peaks' growth.  No model is needed: the limit, and in
the anchor the 10,000-row check, answer before the registry matters.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import psutil
from testkit.data import sample_rows
from testkit.processes import ServiceProcess, forestops_argv, free_port

from forestops import schema

ROWS = 100_000
REQUESTS = 24
CONCURRENCY = 3


def _body() -> bytes:
    base = sample_rows(1000)
    instances = [dict(zip(schema.FEATURE_COLUMNS, base[i % len(base)][:12], strict=True)) for i in range(ROWS)]
    return orjson.dumps({"instances": instances})


def _tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


def _chunked(body: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def measure(limit: int | None, body: bytes, folder: Path) -> dict[str, object]:
    port = free_port()
    env = {
        "FORESTOPS_HOME": str(folder / "home"),
        "FORESTOPS_INFERENCE_PORT": str(port),
        "FORESTOPS_INFERENCE_WORKERS": "1",
        "FORESTOPS_MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "FORESTOPS_MODEL_POLL_SECONDS": "600",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    if limit is not None:
        env["FORESTOPS_MAX_REQUEST_BYTES"] = str(limit)
    url = f"http://127.0.0.1:{port}"
    log_path = folder / f"inference-{limit}.log"
    process = ServiceProcess("inference", forestops_argv("inference"), log_path, env, cwd=folder)
    with process:
        process.wait_http(f"{url}/health", timeout=120, expect=None)
        pid = process.process.pid
        time.sleep(1.0)
        idle = _tree_rss(pid)
        peak = idle
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_rss(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        statuses: dict[int, int] = {}

        def send(i: int) -> None:
            content = body if i % 2 == 0 else _chunked(body)
            try:
                status = httpx.post(f"{url}/predict", content=content, timeout=120).status_code
            except httpx.HTTPError:
                status = -1  # the server closed the connection before all was sent
            statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(send, range(REQUESTS)))
        elapsed = time.perf_counter() - started
        time.sleep(0.5)
        stop.set()
        sampler.join()
        after = _tree_rss(pid)
    return {"idle": idle, "peak": peak, "after": after, "statuses": statuses, "seconds": elapsed}


def main() -> None:
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    body = _body()
    print(f"body: {ROWS:,} rows, {len(body) / 1e6:.1f} MB; {REQUESTS} requests, {CONCURRENCY} at a time")
    with tempfile.TemporaryDirectory(prefix="bench-body-limit-") as tmp:
        folder = Path(tmp)
        anchor = measure(1024**3, body, folder)
        subject = measure(None, body, folder)
    mb = 1024 * 1024
    for name, result in (("no limit (anchor)", anchor), ("default limit", subject)):
        print(
            f"{name:18s} idle {result['idle'] / mb:6.0f} MB  peak {result['peak'] / mb:6.0f} MB  "
            f"after {result['after'] / mb:6.0f} MB  growth {(result['peak'] - result['idle']) / mb:6.0f} MB  "
            f"statuses {result['statuses']}  {result['seconds']:.1f} s"
        )
    growth_anchor = max(anchor["peak"] - anchor["idle"], 1)
    growth_subject = max(subject["peak"] - subject["idle"], 1)
    print(f"  peak growth, limit / no limit = {growth_subject / growth_anchor:.3f}")
