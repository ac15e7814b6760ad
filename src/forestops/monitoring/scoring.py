"""Accuracy, macro-F1 and recall per class of one batch, as training's evaluation measures them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from forestops.training import data, evaluation


@dataclass(frozen=True)
class BatchScore:
    rows: int
    accuracy: float
    macro_f1: float
    recall_per_class: dict[str, float]  # class id (as text, a JSON key) -> recall, for classes present


def score_rows(model: Any, rows: pd.DataFrame) -> BatchScore:
    """Score ``rows`` (raw_rows columns, with labels) with ``model``: the same metrics as training's evaluation."""
    features, labels = data.features_and_labels(rows)
    result = evaluation.evaluate(model, features, labels)
    present = sorted(set(labels.tolist()))
    recall = {str(c): result.metrics.get(f"recall_class_{c}", 0.0) for c in present}
    return BatchScore(
        rows=len(rows),
        accuracy=result.metrics["accuracy"],
        macro_f1=result.metrics["f1_macro"],
        recall_per_class=recall,
    )
