"""The learning curve across model versions: evaluation scores against training rows.

A collection cycle trains on more rows each time, so the question a user
asks of the registry is "how much did more data buy?"  Each version's run
already holds its training-row count and its scores on its own evaluation
rows; this module gathers them into one table and one picture, logged on
every training's parent run (and drawn on the UI's Models page from the same
run metrics).  The evaluation rows grow with the data, so the curve shows
how the model did on what it was measured on, not one fixed test set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CURVE_FILE = "learning_curve.json"
CURVE_PLOT_FILE = "learning_curve.png"
# What a version's run must hold to be a point of the curve.
ROWS_METRIC = "training_rows"
SCORE_METRICS = ("accuracy", "f1_macro")


@dataclass(frozen=True)
class CurvePoint:
    version: int
    training_rows: int
    accuracy: float
    f1_macro: float


def curve_points(client: Any, model_name: str, max_versions: int = 200) -> list[CurvePoint]:
    """One point per registered version whose run logged its rows and scores, by training rows."""
    points = []
    for version in client.search_model_versions(f"name = '{model_name}'", max_results=max_versions):
        if not version.run_id:
            continue
        metrics = client.get_run(version.run_id).data.metrics
        if ROWS_METRIC in metrics and all(m in metrics for m in SCORE_METRICS):
            points.append(
                CurvePoint(int(version.version), int(metrics[ROWS_METRIC]), metrics["accuracy"], metrics["f1_macro"])
            )
    return sorted(points, key=lambda p: (p.training_rows, p.version))


def write_curve(points: list[CurvePoint], folder: Path) -> list[Path]:
    """The table (JSON) and the plot (PNG) of ``points`` in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = folder / CURVE_FILE
    table.write_text(json.dumps([asdict(p) for p in points], indent=2))
    figure, axes = plt.subplots(figsize=(7, 4))
    rows = [p.training_rows for p in points]
    axes.plot(rows, [p.accuracy for p in points], marker="o", label="accuracy")
    axes.plot(rows, [p.f1_macro for p in points], marker="s", label="macro-F1")
    for point in points:
        axes.annotate(
            f"v{point.version}",
            (point.training_rows, point.accuracy),
            fontsize=7,
            xytext=(2, 4),
            textcoords="offset points",
        )
    axes.set_xlabel("training rows")
    axes.set_ylabel("score on the version's evaluation rows")
    axes.set_title("Learning curve across versions")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    plot = folder / CURVE_PLOT_FILE
    figure.savefig(plot, dpi=90)
    plt.close(figure)
    return [table, plot]
