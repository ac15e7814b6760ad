"""Evaluation on the hash-held-out rows: metrics, per-class report, pictures.

Every candidate and the current champion are scored by this one function on
the same evaluation rows, so their numbers compare like with like.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forestops import schema
from forestops.names import IMPORTANCE_FILE, IMPORTANCE_PLOT_FILE

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    report: dict[str, Any]
    confusion: np.ndarray

    def score(self, metric: str) -> float:
        return self.metrics[metric]


def evaluate(pipeline: Any, features, labels: np.ndarray) -> Evaluation:
    """Accuracy, macro-F1 and per-class precision/recall/F1 on the given rows."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    predicted = np.asarray(pipeline.predict(features)).astype(np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    present = sorted(set(labels.tolist()) | set(predicted.tolist()))
    report = classification_report(
        labels,
        predicted,
        labels=present,
        target_names=[schema.label_name(c) for c in present],
        output_dict=True,
        zero_division=0,
    )
    metrics = {
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1_macro": float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(labels, predicted, labels=present, average="weighted", zero_division=0)),
        "evaluation_rows": float(len(labels)),
    }
    for class_id in present:
        entry = report[schema.label_name(class_id)]
        metrics[f"precision_class_{class_id}"] = float(entry["precision"])
        metrics[f"recall_class_{class_id}"] = float(entry["recall"])
        metrics[f"f1_class_{class_id}"] = float(entry["f1-score"])
    confusion = confusion_matrix(labels, predicted, labels=list(schema.CLASS_IDS))
    return Evaluation(metrics=metrics, report=report, confusion=confusion)


def write_confusion_matrix(confusion: np.ndarray, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = plt.subplots(figsize=(8, 7))
    ConfusionMatrixDisplay(confusion, display_labels=list(schema.COVER_TYPES)).plot(
        ax=axes, xticks_rotation=45, colorbar=False, values_format="d"
    )
    axes.set_title(title or "Confusion matrix (evaluation rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def write_report(evaluation: Evaluation, path: Path) -> Path:
    path.write_text(json.dumps(evaluation.report, indent=2, sort_keys=True))
    return path


IMPORTANCE_REPEATS = 2


def feature_importance(pipeline: Any, features, labels: np.ndarray, seed: int, max_rows: int = 1000) -> dict:
    """Permutation importance of the 12 raw columns (macro-F1 drop).

    Computed on the whole pipeline, so it is comparable across candidates
    whatever their encoding (one-hot columns fold back into their feature).
    1,000 rows and 2 repeats (24 predictions of 1,000 rows): 2,000 rows and
    3 repeats took 4 minutes for one large model on a busy 2-core machine,
    and the next training waits for it (one training DAG run at a time).
    """
    from sklearn.inspection import permutation_importance

    if len(labels) > max_rows:
        rows = np.random.default_rng(seed).choice(len(labels), max_rows, replace=False)
        features, labels = features.iloc[rows], np.asarray(labels)[rows]
    result = permutation_importance(
        pipeline, features, labels, scoring="f1_macro", n_repeats=IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
    )
    order = np.argsort(-result.importances_mean)
    return {
        "method": f"permutation importance, macro-F1 drop, {IMPORTANCE_REPEATS} repeats",
        "rows": len(labels),
        "importances": {
            schema.FEATURE_COLUMNS[i]: {
                "mean": float(result.importances_mean[i]),
                "std": float(result.importances_std[i]),
            }
            for i in order
        },
    }


def write_importance(importance: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    json_path = folder / IMPORTANCE_FILE
    json_path.write_text(json.dumps(importance, indent=2))
    names = list(importance["importances"])[::-1]
    means = [importance["importances"][n]["mean"] for n in names]
    figure, axes = plt.subplots(figsize=(7, 5))
    axes.barh(names, means)
    axes.set_xlabel("macro-F1 drop when the column is shuffled")
    figure.tight_layout()
    plot_path = folder / IMPORTANCE_PLOT_FILE
    figure.savefig(plot_path, dpi=90)
    plt.close(figure)
    return [json_path, plot_path]
