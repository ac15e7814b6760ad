"""Training benchmark: the whole train pipeline on one collection cycle's rows.

Subject: ``forestops.training.steps.run_training`` (gate, load, checks, all
candidates with the time-boxed search, evaluation, MLflow logging,
registration, promotion) against a real ``mlflow server`` (SQLite backend,
local artefacts) and a SQLite covertype store, as in the embedded local stack.

Data: ../shared/data/covertype.csv.gz when present (else generated rows).
10% is held back the way the data API's FORESTOPS_HOLDOUT_FRACTION does it
(``split_holdout``), and a collection cycle is modelled as BENCH_COVERAGE
(default 0.5) unique coverage of the served rows.  Quality is measured on the
held-back rows the API never served.

Anchor: the baseline candidate (logistic regression) fitted on the same
training rows and scored on the same held-back rows, in the same run.

Printed: rows, seconds, peak MB (RSS of this process during training),
accuracy and macro-F1 of the champion and of the anchor, and their ratios.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

from forestops import schema
from forestops.settings import load_settings
from forestops.storage import tables
from forestops.storage.db import ensure_schema, make_engine

TARGET_ACCURACY = 0.92
TARGET_F1_MACRO = 0.85
TARGET_SECONDS = 300


class PeakRss:
    """Samples this process's resident memory in a thread; keeps the peak."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.peak / 2**20


def _raw_rows() -> tuple[list[list[str]], str]:
    from testkit import data

    if data.real_data_available():
        import pandas as pd

        frame = pd.read_csv(data.SHARED_DATA, dtype=str)
        return frame.to_numpy().tolist(), f"real ({data.SHARED_DATA})"
    return data.generate_rows(60_000), "generated (../shared not found)"


def _store(url: str, rows: list[dict]) -> None:
    engine = make_engine(url)
    ensure_schema(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as connection:
        fetch_id = connection.execute(
            tables.fetch_log.insert().values(
                started_at=now, source_url="benchmark", group_number=1, batch_number=1, status="stored"
            )
        ).inserted_primary_key[0]
        connection.execute(
            tables.raw_rows.insert(),
            [
                {
                    **r,
                    "row_hash": schema.row_digest(r),
                    "group_number": 1,
                    "batch_number": 1 + i * 10 // len(rows),
                    "fetch_id": fetch_id,
                    "fetched_at": now,
                }
                for i, r in enumerate(rows)
            ],
        )
    engine.dispose()


def main() -> None:
    import mlflow
    from testkit import servers

    from forestops.datasource.dataset import split_holdout
    from forestops.training import candidates, data, evaluation, steps

    coverage = float(os.environ.get("BENCH_COVERAGE", "0.5"))
    search_seconds = os.environ.get("BENCH_SEARCH_SECONDS")
    raw, origin = _raw_rows()
    served, holdout = split_holdout(raw, 0.1)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(served), int(len(served) * coverage), replace=False)
    collected = [schema.normalise_raw_row(served[i]) for i in sorted(picked)]
    held = [schema.normalise_raw_row(r) for r in holdout]
    x_hold = schema.feature_frame(held)
    y_hold = np.array([r[schema.LABEL] for r in held])
    print(f"data: {origin}; {len(raw)} rows, {len(served)} served, {len(held)} held back")
    print(f"collection cycle modelled as {coverage:.0%} unique coverage: {len(collected)} rows stored")

    with tempfile.TemporaryDirectory(prefix="forestops-bench-") as tmp:
        folder = Path(tmp)
        db_url = f"sqlite:///{folder / 'covertype.db'}"
        _store(db_url, collected)
        backend = f"sqlite:///{folder / 'mlflow.db'}"
        with servers.mlflow_server(folder, backend, folder / "artifacts", timeout=240) as mlflow_server:
            url = mlflow_server.url
            overrides = {"home": folder / "home", "database_url": db_url, "mlflow_tracking_uri": url}
            if search_seconds:
                overrides["search_seconds"] = float(search_seconds)
            settings = load_settings(**overrides)
            print(f"candidates: {settings.training_candidates}; search budget {settings.search_seconds:.0f} s")
            started = time.perf_counter()
            cpu_before = psutil.Process().cpu_times()
            with PeakRss() as memory:
                result = steps.run_training(settings, force=True, run_id="benchmark")
            seconds = time.perf_counter() - started
            cpu_after = psutil.Process().cpu_times()
            # CPU time of this process (training runs single-threaded here,
            # except the forest's second worker): what the wall time would be
            # on an idle machine, and a fairer figure when the cores are shared.
            cpu_seconds = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
            load = os.getloadavg()[0]
            champion = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
            subject = evaluation.evaluate(champion, x_hold, y_hold).metrics

        # The anchor: the baseline on the same training split, same held-back rows.
        frame = data.read_raw_rows(make_engine(db_url))
        training = frame[~data.evaluation_mask(frame["row_hash"], settings.evaluation_percent)]
        x_train, y_train = data.features_and_labels(training)
        anchor_started = time.perf_counter()
        anchor_model = candidates.fit_pipeline(
            candidates.build_pipeline(candidates.BASELINE), x_train, y_train, settings.class_weight_power
        )
        anchor_seconds = time.perf_counter() - anchor_started
        anchor = evaluation.evaluate(anchor_model, x_hold, y_hold).metrics

    assert result.registered is not None and result.evaluated is not None, "the benchmark training did not train"
    best = result.registered.candidate
    print(
        f"training rows {len(training)} (evaluation split {len(frame) - len(training)}), "
        f"machine: {os.cpu_count()} cores"
    )
    print(
        f"whole train pipeline: {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU, peak RSS {memory.mb:.0f} MB "
        f"(target < {TARGET_SECONDS} s; 1-min load average at the end {load:.1f})"
    )
    for name, scores in result.evaluated.scores.items():
        print(f"  {name:24s} evaluation split: accuracy {scores['accuracy']:.4f}  macro-F1 {scores['f1_macro']:.4f}")
    print(
        f"champion ({best}) on held-back rows: accuracy {subject['accuracy']:.4f}, macro-F1 {subject['f1_macro']:.4f}"
        f"  (targets {TARGET_ACCURACY}, {TARGET_F1_MACRO})"
    )
    print(
        f"anchor (baseline, fit {anchor_seconds:.1f} s) on held-back rows: accuracy {anchor['accuracy']:.4f}, "
        f"macro-F1 {anchor['f1_macro']:.4f}"
    )
    print(
        f"ratio champion/anchor: accuracy {subject['accuracy'] / anchor['accuracy']:.2f}x, "
        f"macro-F1 {subject['f1_macro'] / anchor['f1_macro']:.2f}x"
    )
    met = subject["accuracy"] >= TARGET_ACCURACY and subject["f1_macro"] >= TARGET_F1_MACRO
    print(
        f"quality target {'MET' if met else 'NOT MET'}; time target {'MET' if seconds < TARGET_SECONDS else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
