"""Inference API throughput and latency against MLflow's own scoring server, driven by wrk.

Anchor: ``mlflow models serve -m models:/<name>/<version> --env-manager local
--workers 1`` (MLflow's FastAPI/uvicorn scoring server: pandas parsing,
signature enforcement, pyfunc ``predict``).  Subject: ``forestops inference``
with one worker serving the same registered version through the
``champion`` alias (validation from the schema, class ids plus all seven
probabilities in every answer).

The model, its throwaway MLflow server and ``forestops inference`` come from
``testkit.inference`` (shared with ``bench_load``): the LightGBM candidate
with its default parameters, the usual champion, trained with the package on
real rows when ../shared is there, else generated ones.

The load generator is wrk (C, one thread, loopback), with a Lua script that
cycles through prepared POST bodies and reports its own summary, so the
client is not the bottleneck (an asyncio client in Python was).  Rounds
alternate between the two servers: single-row requests at 8 connections
(requests/s, p50/p99) and 1,000-row requests at 2 connections (rows/s).  A
round with any socket error or non-2xx answer is reported as failed.  Last,
single-row throughput of the subject is measured while a CPU-bound LightGBM
fit (the training's work) runs next to it, once at normal priority and once
niced as the local stack runs Airflow (``FORESTOPS_STACK_TRAINING_NICENESS``),
against the idle figure.  The machine's load average is printed next to
every figure: on a shared machine the ratios, measured in the same run, are
what to compare.

wrk: ``apt-get install -y wrk`` (Debian); ``make bench`` installs it when run as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import orjson
import psutil
from testkit import inference
from testkit.processes import VENV_BIN, free_port, running

from forestops import schema

SINGLE_CONNECTIONS = 8
BATCH_CONNECTIONS = 2
BATCH_ROWS = 1_000
ROUND_SECONDS = float(os.environ.get("FORESTOPS_BENCH_ROUND_SECONDS", "8"))  # single-row rounds
BATCH_ROUND_SECONDS = float(os.environ.get("FORESTOPS_BENCH_BATCH_ROUND_SECONDS", "12"))
ROUNDS = int(os.environ.get("FORESTOPS_BENCH_ROUNDS", "2"))
TRAINING_NICENESS = 10
WORKERS_FOR_LATENCY = 2  # the p99 target's second measurement: one worker per core of a 2-core machine
WRK = shutil.which("wrk")

LUA = r"""
-- Cycles through the bodies in the file given after "--", one JSON body per line.
local bodies = {}
local index = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  index = math.random(#bodies) - 1
end
function request()
  index = index % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[index])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class RoundResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    load: float  # 1-minute load average at the end of the round
    cpu_seconds: float = 0.0  # CPU time the server (with its children) used in the round, drain included
    rows_per_request: int = 1

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.requests if self.requests else float("nan")

    @property
    def rows_per_second(self) -> float:
        return self.requests * self.rows_per_request / self.seconds


@dataclass
class Totals:
    rounds: list[RoundResult] = field(default_factory=list)

    def _mean(self, value: Callable[[RoundResult], float]) -> float:
        return sum(value(r) for r in self.rounds) / len(self.rounds)

    @property
    def requests_per_second(self) -> float:
        return sum(r.requests for r in self.rounds) / sum(r.seconds for r in self.rounds)

    @property
    def rows_per_second(self) -> float:
        return sum(r.requests * r.rows_per_request for r in self.rounds) / sum(r.seconds for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        return self._mean(lambda r: r.p50_ms)

    @property
    def p99_ms(self) -> float:
        return max(r.p99_ms for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)

    @property
    def load(self) -> float:
        return self._mean(lambda r: r.load)

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU per answered request: what a busy shared machine changes least."""
        requests = sum(r.requests for r in self.rounds)
        return 1000 * sum(r.cpu_seconds for r in self.rounds) / requests if requests else float("nan")


# -- request bodies: the same rows for both servers, each in its own format ---------------


def mlflow_body(rows: list[dict]) -> bytes:
    columns = list(schema.FEATURE_COLUMNS)
    return orjson.dumps({"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}})


def forestops_body(rows: list[dict]) -> bytes:
    return orjson.dumps({"instances": rows})


def require_wrk() -> str:
    if WRK is None:
        raise SystemExit(
            "bench_serving needs wrk as its load generator: apt-get install -y wrk "
            "(Debian/Ubuntu; `make bench` installs it when run as root)"
        )
    return WRK


def drain(url: str, bodies_file: Path) -> None:
    """Wait until the server has answered what wrk left in flight, so the next round starts on an idle server."""
    with bodies_file.open("rb") as handle:
        body = handle.readline().rstrip(b"\n")
    with contextlib.suppress(httpx.HTTPError):  # an error here is the server's; wrk counted those of the round
        httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=600)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (MLflow's scoring server runs uvicorn as a child)."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def run_wrk(
    url: str, bodies_file: Path, script: Path, connections: int, seconds: float, rows: int, pid: int
) -> RoundResult:
    """One bounded wrk run on loopback; its Lua ``done`` prints the summary parsed here."""
    cpu_before = cpu_seconds(pid)
    argv = [
        require_wrk(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
        "-s", str(script), url, "--", str(bodies_file),
    ]  # fmt: skip
    finished = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    line = next((x for x in finished.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if finished.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stdout[-800:]} {finished.stderr[-800:]}")
    summary = json.loads(line.removeprefix("WRK_RESULT "))
    drain(url, bodies_file)
    cpu_used = cpu_seconds(pid) - cpu_before
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return RoundResult(
        requests=summary["requests"] - summary["status"],  # wrk counts non-2xx answers as requests too
        seconds=summary["duration_us"] / 1e6,
        errors=errors,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        load=os.getloadavg()[0],
        rows_per_request=rows,
        cpu_seconds=cpu_used,
    )


def write_bodies(folder: Path, name: str, bodies: list[bytes]) -> Path:
    path = folder / f"{name}.bodies"
    path.write_bytes(b"\n".join(bodies) + b"\n")  # orjson writes no newline inside a body
    return path


@dataclass
class Target:
    name: str
    url: str
    single: Path
    batch: Path
    pid: int  # the server process, whose CPU time is counted


def measure(targets: list[Target], script: Path) -> dict[str, dict[str, Totals]]:
    results: dict[str, dict[str, Totals]] = {t.name: {"single": Totals(), "batch": Totals()} for t in targets}
    for target in targets:  # warm up both (first calls load lazily, allocate, ...)
        run_wrk(target.url, target.single, script, 2, 2, 1, target.pid)
        run_wrk(target.url, target.batch, script, 1, 3, BATCH_ROWS, target.pid)
    for round_number in range(ROUNDS):
        order = targets if round_number % 2 == 0 else list(reversed(targets))
        for target in order:
            outcome = run_wrk(target.url, target.single, script, SINGLE_CONNECTIONS, ROUND_SECONDS, 1, target.pid)
            results[target.name]["single"].rounds.append(outcome)
            print(
                f"  round {round_number + 1} single-row {target.name:9} {outcome.requests_per_second:8.1f} req/s "
                f"p50 {outcome.p50_ms:6.1f} ms p99 {outcome.p99_ms:6.1f} ms  failed {outcome.errors}  "
                f"load {outcome.load:.1f}",
                flush=True,
            )
        for target in order:
            outcome = run_wrk(
                target.url, target.batch, script, BATCH_CONNECTIONS, BATCH_ROUND_SECONDS, BATCH_ROWS, target.pid
            )
            results[target.name]["batch"].rounds.append(outcome)
            print(
                f"  round {round_number + 1} 1,000-row  {target.name:9} {outcome.rows_per_second:8.0f} rows/s "
                f"p50 {outcome.p50_ms:6.0f} ms  failed {outcome.errors}  load {outcome.load:.1f}",
                flush=True,
            )
    return results


TRAINING_LOAD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from testkit import data
from forestops import schema
from forestops.training.candidates import build_pipeline, fit_pipeline
rows = [schema.normalise_raw_row(r) for r in data.sample_rows(20_000)]
features, labels = schema.feature_frame(rows), [r[schema.LABEL] for r in rows]
print("training", flush=True)
while True:
    fit_pipeline(build_pipeline("lightgbm", {"n_estimators": 200}), features, labels)
"""


@contextlib.contextmanager
def training_next_door(folder: Path, niceness: int) -> Iterator[None]:
    """A LightGBM fit of the package's pipeline, in a loop, at the given niceness (what a DAG task does)."""
    log_path = folder / f"training-nice{niceness}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", TRAINING_LOAD, str(Path(__file__).resolve().parents[1])],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
        )
    try:
        deadline = time.monotonic() + 300
        while "training" not in log_path.read_text():  # fitting has started (imports and data read done)
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the training load did not start: {log_path.read_text()[-800:]}")
            time.sleep(0.2)
        time.sleep(2)
        yield
    finally:
        process.kill()
        process.wait()


def measure_under_training(target: Target, script: Path, folder: Path) -> dict[str, Totals]:
    """Single-row throughput idle, next to a training at normal priority, and next to a niced one."""
    results = {"idle": Totals(), "training": Totals(), "training niced": Totals()}

    def one(label: str) -> None:
        outcome = run_wrk(target.url, target.single, script, SINGLE_CONNECTIONS, ROUND_SECONDS, 1, target.pid)
        results[label].rounds.append(outcome)
        print(
            f"  {label:15} {target.name:9} {outcome.requests_per_second:8.1f} req/s p99 {outcome.p99_ms:6.1f} ms  "
            f"failed {outcome.errors}  load {outcome.load:.1f}",
            flush=True,
        )

    for _ in range(ROUNDS):
        one("idle")
        with training_next_door(folder, 0):
            one("training")
        with training_next_door(folder, TRAINING_NICENESS):
            one("training niced")
    return results


def measure_workers(target: Target, script: Path) -> Totals:
    """Single-row rounds against a server with a worker per core: the latency target's other lever."""
    run_wrk(target.url, target.single, script, 2, 2, 1, target.pid)  # every worker loads and warms up
    totals = Totals()
    for round_number in range(ROUNDS):
        outcome = run_wrk(target.url, target.single, script, SINGLE_CONNECTIONS, ROUND_SECONDS, 1, target.pid)
        totals.rounds.append(outcome)
        print(
            f"  round {round_number + 1} single-row {WORKERS_FOR_LATENCY} workers {outcome.requests_per_second:8.1f} "
            f"req/s p50 {outcome.p50_ms:6.1f} ms p99 {outcome.p99_ms:6.1f} ms  failed {outcome.errors}  "
            f"load {outcome.load:.1f}",
            flush=True,
        )
    return totals


def main() -> None:
    script_text = LUA
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="forestops-bench-serving-") as tmp:
        folder = Path(tmp)
        script = folder / "post.lua"
        script.write_text(script_text)
        with inference.registered_model(folder) as model:
            rows = inference.request_rows()
            scoring_port = free_port()  # just before use: training takes minutes
            batches = [rows[i : i + BATCH_ROWS] for i in range(0, len(rows) - BATCH_ROWS + 1, BATCH_ROWS)]
            scoring_argv = [
                str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{model.name}/{model.version}",
                "--env-manager", "local", "--workers", "1", "--host", "127.0.0.1", "--port", str(scoring_port),
            ]  # fmt: skip
            scoring_env = {
                "MLFLOW_TRACKING_URI": model.tracking_uri,
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "600",
            }
            scoring_url = f"http://127.0.0.1:{scoring_port}"
            with (
                running("mlflow-models-serve", scoring_argv, folder / "mlflow-models-serve.log", f"{scoring_url}/ping",
                        scoring_env, inference.START_TIMEOUT, cwd=folder) as scoring,
                inference.inference_server(folder, model) as ours,
            ):  # fmt: skip
                targets = [
                    Target(
                        name,
                        url,
                        write_bodies(folder, f"{name}-single", [make([r]) for r in rows]),
                        write_bodies(folder, f"{name}-batch", [make(b) for b in batches]),
                        pid,
                    )
                    for name, url, make, pid in (
                        ("mlflow", f"{scoring_url}/invocations", mlflow_body, scoring.pid),
                        ("forestops", f"{ours.url}/predict", forestops_body, ours.pid),
                    )
                ]
                served = httpx.get(f"{ours.url}/model", timeout=30).json()
                print(
                    f"model {model.name} v{model.version} (forestops predictor: {served.get('predictor')}); wrk, "
                    f"1 thread, {SINGLE_CONNECTIONS} connections (single-row), {BATCH_CONNECTIONS} (1,000-row); "
                    f"{ROUNDS} alternating rounds of {ROUND_SECONDS:g} s / {BATCH_ROUND_SECONDS:g} s; "
                    f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                results = measure(targets, script)
                print("single-row throughput next to a training (a LightGBM fit in a loop):", flush=True)
                contention = measure_under_training(targets[1], script, folder)
                print(f"single-row with FORESTOPS_INFERENCE_WORKERS={WORKERS_FOR_LATENCY} (a core each):", flush=True)
                with inference.inference_server(folder, model, workers=WORKERS_FOR_LATENCY) as several:
                    spread = replace(targets[1], url=f"{several.url}/predict", pid=several.pid)
                    workers = measure_workers(spread, script)
    report(results, contention, workers)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def report(results: dict[str, dict[str, Totals]], contention: dict[str, Totals], workers: Totals) -> None:
    anchor, subject = results["mlflow"], results["forestops"]
    print(f"\n{'':28}{'mlflow serve':>14}{'forestops':>12}{'ratio':>9}   load avg (mlflow / forestops)")
    rows = [
        (
            "single-row req/s",
            anchor["single"].requests_per_second,
            subject["single"].requests_per_second,
            True,
            "single",
        ),
        ("single-row p50 ms", anchor["single"].p50_ms, subject["single"].p50_ms, False, "single"),
        ("single-row p99 ms", anchor["single"].p99_ms, subject["single"].p99_ms, False, "single"),
        ("1,000-row rows/s", anchor["batch"].rows_per_second, subject["batch"].rows_per_second, True, "batch"),
        ("1,000-row p50 ms", anchor["batch"].p50_ms, subject["batch"].p50_ms, False, "batch"),
    ]
    rows.append(
        (
            "single-row CPU ms/request",
            anchor["single"].cpu_ms_per_request,
            subject["single"].cpu_ms_per_request,
            False,
            "single",
        )
    )
    rows.append(
        (
            "1,000-row CPU ms/request",
            anchor["batch"].cpu_ms_per_request,
            subject["batch"].cpu_ms_per_request,
            False,
            "batch",
        )
    )
    for label, a, s, higher_is_better, kind in rows:
        ratio = _ratio(s, a) if higher_is_better else _ratio(a, s)
        loads = f"{anchor[kind].load:.1f} / {subject[kind].load:.1f}"
        print(f"{label:28}{a:14.1f}{s:12.1f}{ratio:8.2f}x   {loads}")
    print(
        "(ratio: forestops over mlflow for throughput, mlflow over forestops for latency and server CPU per request; "
        ">1 is better. CPU per request is what another job on the machine changes least.)"
    )
    idle = contention["idle"].requests_per_second
    print(f"\n{'forestops single-row':22}{'req/s':>10}{'of idle':>9}{'p99 ms':>9}   load avg")
    for label, totals in contention.items():
        print(
            f"{label:22}{totals.requests_per_second:10.1f}{_ratio(totals.requests_per_second, idle):8.0%}"
            f"{totals.p99_ms:9.1f}   {totals.load:.1f}"
        )
    failed = {name: r["single"].errors + r["batch"].errors for name, r in results.items()}
    failed["forestops next to training"] = sum(t.errors for t in contention.values())
    failed[f"forestops, {WORKERS_FOR_LATENCY} workers"] = workers.errors
    print(
        f"forestops single-row with {WORKERS_FOR_LATENCY} workers: {workers.requests_per_second:.1f} req/s, "
        f"p50 {workers.p50_ms:.1f} ms, p99 {workers.p99_ms:.1f} ms, CPU {workers.cpu_ms_per_request:.2f} ms/request"
    )
    print(f"failed requests (socket errors + non-2xx): {failed}")
    single = _ratio(subject["single"].requests_per_second, anchor["single"].requests_per_second)
    batch = _ratio(subject["batch"].rows_per_second, anchor["batch"].rows_per_second)
    niced = _ratio(contention["training niced"].requests_per_second, idle)
    verdicts = [
        f"single-row >= 10x: {single:.2f}x ({'met' if single >= 10 else 'NOT met'})",
        f"1,000-row rows/s >= 3x: {batch:.2f}x ({'met' if batch >= 3 else 'NOT met'})",
        f"single-row p99 <= 10 ms: {subject['single'].p99_ms:.1f} ms with one worker, "
        f"{workers.p99_ms:.1f} ms with {WORKERS_FOR_LATENCY} "
        f"({'met' if min(subject['single'].p99_ms, workers.p99_ms) <= 10 else 'NOT met'}; "
        "the target is for an idle machine)",
        f"next to a niced training >= 50% of idle: {niced:.0%} ({'met' if niced >= 0.5 else 'NOT met'})",
        f"zero failed requests: {'met' if not any(failed.values()) else 'NOT met'}",
    ]
    print("targets: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
