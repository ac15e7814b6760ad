"""Data drift of one batch against the champion's training rows, with popmon.

Why popmon: Evidently 0.7 (the first choice) resolves against the lock but
fails to import with pandas 3 (it imports a pandas internal that pandas 3
removed); alibi-detect and frouros need numpy < 2; nannyml moves pinned
packages.  popmon (ING, maintained) shares the lock: it histograms each
feature of the reference and of the batch on the same bins and flags a
feature when its comparison statistics (chi-squared z-score, KS, PSI...)
pass its traffic-light rules; its HTML report shows the histograms side by
side and the alerts.

Two adaptations to pandas 3: histogrammar cannot fill pandas' new string
columns, so the two categoricals are passed as their code's index in the
data contract (one bin per code); and the report embeds its scripts
(``online_report=False``) so that viewing it fetches nothing.

The computation runs in a child process that is killed past
``budget_seconds`` (FORESTOPS_MONITOR_DRIFT_SECONDS), so a slow report can
never hold up the scoring that the monitor exists for.  The child is a new
interpreter (``python -m forestops.monitoring.drift``, its input and answer
in pickle files of a private temporary folder), not a multiprocessing
child: a plain fork of an Airflow task process, which has threads, can hang
on a lock one of them held (logging's, for one), and a spawn or fork-server
child re-runs the parent's main script first, which in a task process is
Airflow's own command; that import fails there, because Airflow gives its
task processes no metadata-database URL.  (Found by the soak: every batch of
a real local stack was stored "without drift" while ``dag.test()``, whose
main is ``python -c``, measured it.)
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forestops import schema
from forestops.errors import ForestopsError

log = logging.getLogger(__name__)

TIME_AXIS = "monitor_batch"
RED = 2  # popmon's traffic light: 0 green, 1 yellow, 2 red
REPORT_FILE = "drift_report.html"


class DriftTimeout(ForestopsError):
    """The drift computation took longer than its time box (FORESTOPS_MONITOR_DRIFT_SECONDS)."""


@dataclass(frozen=True)
class DriftResult:
    share: float
    drifted_columns: list[str]
    html: str
    seconds: float


def _disable_telemetry() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")


def encode(frame: pd.DataFrame, time_value: int) -> pd.DataFrame:
    """The feature columns as numbers popmon can histogram, plus the time axis."""
    out = pd.DataFrame({column: frame[column].to_numpy(dtype=np.int64) for column in schema.NUMERIC_COLUMNS})
    for column, categories in schema.CATEGORIES.items():
        codes = pd.Categorical(frame[column].astype(str), categories=list(categories)).codes
        out[column] = codes.astype(np.int64)
    out[TIME_AXIS] = time_value
    return out


def _compute(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, list[str], str]:
    from histogrammar.dfinterface.make_histograms import get_bin_specs, make_histograms
    from popmon import Settings
    from popmon.base import Pipeline
    from popmon.pipeline.metrics import stability_metrics
    from popmon.visualization import AlertSectionGenerator, HistogramSection, ReportGenerator
    from popmon.visualization.overview_section import OverviewSectionGenerator

    columns = list(schema.FEATURE_COLUMNS)
    settings = Settings(time_axis=TIME_AXIS, features=[f"{TIME_AXIS}:{c}" for c in columns], reference_type="external")
    settings.report.online_report = False
    settings.report.extended_report = False
    settings.report.title = "forestops batch drift"
    categorical_bins = {
        f"{TIME_AXIS}:{c}": [{"binWidth": 1, "origin": 0}, {"binWidth": 1.0, "origin": -0.5}]
        for c in schema.CATEGORICAL_COLUMNS
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_hists = make_histograms(
            encode(reference, 0), features=settings.features, time_axis=TIME_AXIS, bin_specs=categorical_bins
        )
        current_hists = make_histograms(
            encode(current, 1),
            features=settings.features,
            time_axis=TIME_AXIS,
            bin_specs=get_bin_specs(reference_hists),
        )
        store = stability_metrics(current_hists, settings=settings, reference=reference_hists)
        drifted = [c for c in columns if _is_red(store["traffic_lights"].get(c))]
        report = Pipeline(
            modules=[
                OverviewSectionGenerator(
                    read_key="traffic_lights",
                    store_key="sections",
                    settings=settings.report,
                    reference_type=settings.reference_type,
                    time_axis=settings.time_axis,
                    bin_specs=settings.bin_specs,
                ),
                HistogramSection(
                    read_key="split_hists",
                    store_key="sections",
                    hist_name_starts_with="histogram",
                    reference_type=settings.reference_type,
                    settings=settings.report.section.histograms,
                ),
                AlertSectionGenerator(read_key="alerts", store_key="sections", settings=settings.report),
                ReportGenerator(read_key="sections", store_key="html", settings=settings.report),
            ]
        ).transform(store)
    return len(drifted) / len(columns), drifted, report["html"]


def _is_red(lights: pd.DataFrame | None) -> bool:
    """A feature drifted when a comparison with the reference (``ref_*``) is red for the batch."""
    if lights is None or len(lights) == 0:
        return False
    last = lights.iloc[-1]
    return any(value == RED for name, value in last.items() if str(name).startswith("ref_"))


def _child(input_path: Path, output_path: Path) -> None:
    """In the child interpreter: compute, and write ("ok", result) or ("error", text) for the parent."""
    logging.basicConfig(level=logging.WARNING)  # popmon reports every pipeline stage at INFO on the root logger
    _disable_telemetry()
    try:
        reference, current = pickle.loads(input_path.read_bytes())
        answer: tuple[str, object] = ("ok", _compute(reference, current))
    except BaseException as error:  # report any failure to the parent, which raises it
        answer = ("error", f"{type(error).__name__}: {error}")
    output_path.write_bytes(pickle.dumps(answer))


def measure(reference: pd.DataFrame, current: pd.DataFrame, budget_seconds: float) -> DriftResult:
    """Drift share, drifted columns and the HTML report, or DriftTimeout past ``budget_seconds``."""
    _disable_telemetry()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="forestops-drift-") as folder:  # 0700: only this user reads it
        input_path, output_path = Path(folder, "input.pickle"), Path(folder, "output.pickle")
        input_path.write_bytes(pickle.dumps((reference, current)))
        try:
            done = subprocess.run(
                [sys.executable, "-m", __name__, str(input_path), str(output_path)],
                capture_output=True,
                timeout=budget_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired:  # run() has killed the child
            raise DriftTimeout(
                f"drift of {len(current)} rows against {len(reference)} reference rows took longer than "
                f"{budget_seconds:g} s (FORESTOPS_MONITOR_DRIFT_SECONDS); stored without drift"
            ) from None
        if not output_path.exists():
            last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ForestopsError(
                f"the drift computation died without an answer (exit {done.returncode}; out of memory?): {last[0]}"
            )
        status, payload = pickle.loads(output_path.read_bytes())
    if status != "ok":
        raise ForestopsError(f"drift computation failed: {payload}")
    share, drifted, html = payload
    seconds = time.perf_counter() - started
    log.info("drift: %d of %d columns (%.2f) in %.1f s", len(drifted), len(schema.FEATURE_COLUMNS), share, seconds)
    return DriftResult(share=share, drifted_columns=drifted, html=html, seconds=seconds)


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
