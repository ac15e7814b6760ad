"""Inference API throughput and latency against MLflow's own scoring server.

Anchor: ``mlflow models serve -m models:/<name>/<version> --env-manager local
--workers 1`` (MLflow's FastAPI/uvicorn scoring server: pandas parsing,
signature enforcement, pyfunc ``predict``).  Subject: ``forestops inference``
with one worker serving the same registered version through the
``champion`` alias (validation from the schema, class ids plus all seven
probabilities in every answer).

The model is trained with the package (``forestops.training``: the LightGBM
candidate with its default parameters, the usual champion) on real rows when
../shared is there, else generated ones, logged and registered with the
package's ``log_and_register`` in a throwaway MLflow server (SQLite backend,
local artefacts).  One load generator (httpx, asyncio, fixed concurrency,
loopback) drives both servers with the same rows, in alternating rounds:
single-row requests (requests/s, p50/p99 latency) and 1,000-row requests
(rows/s).  Client, servers and MLflow share the machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from tests.support import data
from tests.support.processes import VENV_BIN, ServiceProcess, forestops_argv, free_port

from forestops import schema

MODEL_NAME = "covertype-bench"
TRAIN_ROWS = 20_000
REQUEST_ROWS = 3_000  # distinct rows cycled through by the load generator
SINGLE_CONCURRENCY = 16
BATCH_CONCURRENCY = 4
BATCH_ROWS = 1_000
ROUND_SECONDS = float(os.environ.get("FORESTOPS_BENCH_ROUND_SECONDS", "6"))  # single-row rounds
BATCH_REQUESTS = int(os.environ.get("FORESTOPS_BENCH_BATCH_REQUESTS", "8"))  # 1,000-row requests per round
ROUNDS = int(os.environ.get("FORESTOPS_BENCH_ROUNDS", "2"))


@dataclass
class RoundResult:
    requests: int = 0
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)


@dataclass
class Totals:
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        return sum(r.requests for r in self.rounds) / sum(r.seconds for r in self.rounds)

    @property
    def rows_per_second(self) -> float:
        return sum(r.rows for r in self.rounds) / sum(r.seconds for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)

    def percentile(self, q: float) -> float:
        latencies = sorted(x for r in self.rounds for x in r.latencies)
        return statistics.quantiles(latencies, n=1000)[int(q * 10) - 1] * 1000


# -- request bodies: the same rows for both servers, each in its own format ---------------


def mlflow_body(rows: list[dict]) -> bytes:
    columns = list(schema.FEATURE_COLUMNS)
    return orjson.dumps({"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}})


def forestops_body(rows: list[dict]) -> bytes:
    return orjson.dumps({"instances": rows})


async def run_round(
    url: str, bodies: list[bytes], rows_per_body: int, concurrency: int, count: int | None = None
) -> RoundResult:
    """Post bodies with ``concurrency`` clients for ROUND_SECONDS, or until ``count`` requests were sent.

    Counting suits the slow 1,000-row requests: a time limit would cut a
    round in the middle of a few long requests and make the figure noisy.
    """
    result = RoundResult()
    deadline = time.perf_counter() + (ROUND_SECONDS if count is None else 3600)
    remaining = [count if count is not None else -1]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker(offset: int) -> None:
            index = offset
            while time.perf_counter() < deadline and remaining[0] != 0:
                remaining[0] -= 1
                body = bodies[index % len(bodies)]
                index += concurrency
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                result.latencies.append(time.perf_counter() - started)
                if ok:
                    result.requests += 1
                    result.rows += rows_per_body
                else:
                    result.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


# -- the servers -----------------------------------------------------------------------


@contextlib.contextmanager
def process(name: str, argv: list[str], folder: Path, ready_url: str, env: dict[str, str]) -> Iterator[None]:
    service = ServiceProcess(name, argv, folder / f"{name}.log", env, cwd=folder).start()
    try:
        service.wait_http(ready_url, timeout=240)
        yield
    finally:
        service.stop()


def train_and_register(tracking_uri: str) -> str:
    import mlflow

    from forestops.training.candidates import build_pipeline, fit_pipeline
    from forestops.training.registry import log_and_register

    rows = [schema.normalise_raw_row(r) for r in data.sample_rows(TRAIN_ROWS)]
    features = schema.feature_frame(rows)
    labels = [r[schema.LABEL] for r in rows]
    started = time.perf_counter()
    pipeline = fit_pipeline(build_pipeline("lightgbm"), features, labels)
    print(f"trained lightgbm (package defaults) on {len(rows):,} rows in {time.perf_counter() - started:.1f} s")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench-serving")
    version = log_and_register(pipeline, features, MODEL_NAME)
    mlflow.MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(MODEL_NAME, "champion", version)
    return version


def request_rows() -> list[dict]:
    raw = data.sample_rows(TRAIN_ROWS + REQUEST_ROWS)[TRAIN_ROWS:]
    return [schema.normalise_features(dict(zip(schema.FEATURE_COLUMNS, r[:12], strict=True))) for r in raw]


def measure(
    servers: dict[str, str], make_bodies: dict[str, Callable[[list[dict]], bytes]], rows: list[dict]
) -> dict[str, dict[str, Totals]]:
    single = {name: [make_bodies[name]([r]) for r in rows] for name in servers}
    batches = [rows[i : i + BATCH_ROWS] for i in range(0, len(rows) - BATCH_ROWS + 1, BATCH_ROWS)]
    batched = {name: [make_bodies[name](b) for b in batches] for name in servers}
    results: dict[str, dict[str, Totals]] = {name: {"single": Totals(), "batch": Totals()} for name in servers}
    for name, url in servers.items():  # warm up both (first calls load lazily, JIT caches, ...)
        asyncio.run(_warm(url, single[name][:50], batched[name][:2]))
    for round_number in range(ROUNDS):
        order = list(servers) if round_number % 2 == 0 else list(reversed(servers))
        for name in order:
            outcome = asyncio.run(run_round(servers[name], single[name], 1, SINGLE_CONCURRENCY))
            results[name]["single"].rounds.append(outcome)
            print(f"  round {round_number + 1} single-row  {name:9} {outcome.requests / outcome.seconds:8.1f} req/s")
        for name in order:
            outcome = asyncio.run(
                run_round(servers[name], batched[name], BATCH_ROWS, BATCH_CONCURRENCY, count=BATCH_REQUESTS)
            )
            results[name]["batch"].rounds.append(outcome)
            print(f"  round {round_number + 1} 1,000-row   {name:9} {outcome.rows / outcome.seconds:8.0f} rows/s")
    return results


async def _warm(url: str, singles: list[bytes], batches: list[bytes]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for body in singles + batches:
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
            response.raise_for_status()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="forestops-bench-serving-") as tmp:
        folder = Path(tmp)
        mlflow_port, scoring_port, ours_port = free_port(), free_port(), free_port()
        tracking_uri = f"http://127.0.0.1:{mlflow_port}"
        mlflow_argv = [
            str(VENV_BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
            "--serve-artifacts", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        ]  # fmt: skip
        with process("mlflow-server", mlflow_argv, folder, f"{tracking_uri}/health", {}):
            version = train_and_register(tracking_uri)
            rows = request_rows()
            scoring_argv = [
                str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL_NAME}/{version}",
                "--env-manager", "local", "--workers", "1", "--host", "127.0.0.1", "--port", str(scoring_port),
            ]  # fmt: skip
            ours_env = {
                "FORESTOPS_MLFLOW_TRACKING_URI": tracking_uri,
                "FORESTOPS_MODEL_NAME": MODEL_NAME,
                "FORESTOPS_INFERENCE_WORKERS": "1",
                "FORESTOPS_INFERENCE_HOST": "127.0.0.1",
                "FORESTOPS_INFERENCE_PORT": str(ours_port),
                "FORESTOPS_HOME": str(folder / "home"),
            }
            scoring_url = f"http://127.0.0.1:{scoring_port}"
            ours_url = f"http://127.0.0.1:{ours_port}"
            with (
                process("mlflow-models-serve", scoring_argv, folder, f"{scoring_url}/ping",
                        {"MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}),
                process("forestops-inference", forestops_argv("inference"), folder, f"{ours_url}/ready", ours_env),
            ):  # fmt: skip
                print(
                    f"model {MODEL_NAME} v{version}; concurrency {SINGLE_CONCURRENCY} (single-row), "
                    f"{BATCH_CONCURRENCY} (1,000-row); {ROUNDS} alternating rounds of {ROUND_SECONDS:g} s (single-row) "
                    f"and {BATCH_REQUESTS} requests (1,000-row); "
                    f"{os.cpu_count()} CPUs"
                )
                results = measure(
                    {"mlflow": f"{scoring_url}/invocations", "forestops": f"{ours_url}/predict"},
                    {"mlflow": mlflow_body, "forestops": forestops_body},
                    rows,
                )
    report(results)


def report(results: dict[str, dict[str, Totals]]) -> None:
    anchor, subject = results["mlflow"], results["forestops"]
    print(f"\n{'':28}{'mlflow serve':>14}{'forestops':>14}{'ratio':>10}")
    rows = [
        ("single-row req/s", anchor["single"].requests_per_second, subject["single"].requests_per_second, True),
        ("single-row p50 ms", anchor["single"].percentile(50), subject["single"].percentile(50), False),
        ("single-row p99 ms", anchor["single"].percentile(99), subject["single"].percentile(99), False),
        ("1,000-row rows/s", anchor["batch"].rows_per_second, subject["batch"].rows_per_second, True),
        ("1,000-row p50 ms", anchor["batch"].percentile(50), subject["batch"].percentile(50), False),
        ("1,000-row p99 ms", anchor["batch"].percentile(99), subject["batch"].percentile(99), False),
    ]
    for label, a, s, higher_is_better in rows:
        ratio = s / a if higher_is_better else a / s
        print(f"{label:28}{a:14.1f}{s:14.1f}{ratio:9.2f}x")
    print("(ratio: forestops over mlflow for throughput, mlflow over forestops for latency; >1 is better)")
    errors = {name: r["single"].errors + r["batch"].errors for name, r in results.items()}
    print(f"failed requests: {errors}")
    single_ratio = subject["single"].requests_per_second / anchor["single"].requests_per_second
    print(
        f"targets: single-row throughput >= 2x: {single_ratio:.2f}x "
        f"({'met' if single_ratio >= 2 else 'NOT met'}); "
        f"lower p99: {'met' if subject['single'].percentile(99) < anchor['single'].percentile(99) else 'NOT met'}; "
        f"1,000-row rows/s >= mlflow: "
        f"{'met' if subject['batch'].rows_per_second >= anchor['batch'].rows_per_second else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
