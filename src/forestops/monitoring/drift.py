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

The computation runs in a child process that is stopped past
``budget_seconds`` (FORESTOPS_MONITOR_DRIFT_SECONDS), so a slow report can
never hold up the scoring that the monitor exists for.  The child comes
from a fork server (started once per process, this module preloaded), not
from a plain fork: an Airflow task process has threads, and a child forked
while one of them holds a lock (logging's, for one) would hang.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass

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


def _child(connection, reference: pd.DataFrame, current: pd.DataFrame) -> None:
    logging.getLogger().setLevel(logging.WARNING)  # popmon reports every pipeline stage at INFO on the root logger
    try:
        connection.send(("ok", _compute(reference, current)))
    except BaseException as error:  # report any failure to the parent, which raises it
        connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def measure(reference: pd.DataFrame, current: pd.DataFrame, budget_seconds: float) -> DriftResult:
    """Drift share, drifted columns and the HTML report, or DriftTimeout past ``budget_seconds``."""
    _disable_telemetry()
    started = time.perf_counter()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "popmon"])
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, reference, current), name="forestops-drift", daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(budget_seconds):
            raise DriftTimeout(
                f"drift of {len(current)} rows against {len(reference)} reference rows took longer than "
                f"{budget_seconds:g} s (FORESTOPS_MONITOR_DRIFT_SECONDS); stored without drift"
            )
        status, payload = receiver.recv()
    except EOFError:
        raise ForestopsError("the drift computation died without an answer (out of memory?)") from None
    finally:
        if process.is_alive():
            process.terminate()
        process.join(5)
        receiver.close()
    if status != "ok":
        raise ForestopsError(f"drift computation failed: {payload}")
    share, drifted, html = payload
    seconds = time.perf_counter() - started
    log.info("drift: %d of %d columns (%.2f) in %.1f s", len(drifted), len(schema.FEATURE_COLUMNS), share, seconds)
    return DriftResult(share=share, drifted_columns=drifted, html=html, seconds=seconds)
