"""Data checks before training: a report, and a failure that carries it.

A model trained on broken data is worse than no new model, so the train
DAG stops at this step when a check fails and the error message is the
report itself (visible in the Airflow task log and the training log).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from forestops import schema
from forestops.errors import DataError
from forestops.training.data import EVALUATION, SPLIT_COLUMN, TRAINING

# A class with fewer training rows than this is reported (not failed): the
# rare Cottonwood/Willow class may legitimately be thin early in collection.
THIN_CLASS_ROWS = 10
MAX_CONFLICTING_SHARE = 0.05


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class DataReport:
    rows: int
    training_rows: int
    evaluation_rows: int
    class_counts: dict[str, int]
    null_rates: dict[str, float]
    duplicate_hashes: int
    conflicting_feature_rows: int
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


class DataCheckFailed(DataError):
    """Raised with the whole report, so the task log says what was wrong."""

    def __init__(self, report: DataReport) -> None:
        self.report = report
        names = ", ".join(f"{c.name} ({c.detail})" for c in report.failures)
        super().__init__(f"data checks failed: {names}\nreport:\n{report.to_json()}")


def _schema_problems(frame: pd.DataFrame) -> list[str]:
    problems = [f"missing column {c}" for c in schema.RAW_COLUMNS if c not in frame.columns]
    if problems:
        return problems
    for feature in schema.NUMERIC_FEATURES:
        values = pd.to_numeric(frame[feature.name], errors="coerce")
        if values.isna().any():
            problems.append(f"{feature.name}: non-integer values")
            continue
        low = feature.minimum if feature.minimum is not None else -float("inf")
        high = feature.maximum if feature.maximum is not None else float("inf")
        outside = int(((values < low) | (values > high)).sum())
        if outside:
            problems.append(f"{feature.name}: {outside} values outside {feature.domain_text()}")
    for column, allowed in schema.CATEGORIES.items():
        unknown = sorted(set(frame[column].dropna().astype(str)) - set(allowed))
        if unknown:
            problems.append(f"{column}: unknown values {unknown[:5]}")
    labels = pd.to_numeric(frame[schema.LABEL], errors="coerce")
    if labels.isna().any() or not labels.dropna().isin(schema.CLASS_IDS).all():
        problems.append(f"{schema.LABEL}: values outside 0..{schema.N_CLASSES - 1}")
    return problems


def data_report(frame: pd.DataFrame, min_rows: int) -> DataReport:
    """Run every check on the loaded rows and return the report (never raises)."""
    training = frame[frame[SPLIT_COLUMN] == TRAINING] if SPLIT_COLUMN in frame else frame
    evaluation = frame[frame[SPLIT_COLUMN] == EVALUATION] if SPLIT_COLUMN in frame else frame.iloc[:0]
    present = [c for c in schema.RAW_COLUMNS if c in frame.columns]
    null_rates = {c: float(frame[c].isna().mean()) if len(frame) else 0.0 for c in present}
    counts = training[schema.LABEL].value_counts() if schema.LABEL in training else pd.Series(dtype=int)
    class_counts = {str(c): int(counts.get(c, 0)) for c in schema.CLASS_IDS}
    duplicates = int(frame["row_hash"].duplicated().sum()) if "row_hash" in frame else 0
    feature_columns = [c for c in schema.FEATURE_COLUMNS if c in frame.columns]
    if feature_columns and schema.LABEL in frame and len(frame):
        labels_per_features = frame.groupby(feature_columns, observed=True)[schema.LABEL].nunique()
        conflicting = int(labels_per_features[labels_per_features > 1].count())
    else:
        conflicting = 0
    report = DataReport(
        rows=len(frame),
        training_rows=len(training),
        evaluation_rows=len(evaluation),
        class_counts=class_counts,
        null_rates=null_rates,
        duplicate_hashes=duplicates,
        conflicting_feature_rows=conflicting,
    )
    problems = _schema_problems(frame)
    report.checks.append(Check("schema", not problems, "; ".join(problems) or "13 columns within their domains"))
    nulls = {c: r for c, r in null_rates.items() if r > 0}
    report.checks.append(Check("null_rates", not nulls, f"nulls in {nulls}" if nulls else "no nulls"))
    report.checks.append(
        Check(
            "row_count",
            len(training) >= min_rows and len(evaluation) > 0,
            f"{len(training)} training rows (need {min_rows}), {len(evaluation)} evaluation rows (need > 0)",
        )
    )
    seen = [c for c, n in class_counts.items() if n > 0]
    report.checks.append(
        Check("class_counts", len(seen) >= 2, f"{len(seen)} classes with training rows (need at least 2)")
    )
    report.checks.append(
        Check("duplicates", duplicates == 0, f"{duplicates} rows share a row hash (the store keeps one per hash)")
    )
    share = conflicting / max(len(frame), 1)
    report.checks.append(
        Check(
            "conflicting_labels",
            share <= MAX_CONFLICTING_SHARE,
            f"{conflicting} feature vectors carry more than one label ({share:.1%}, max {MAX_CONFLICTING_SHARE:.0%})",
        )
    )
    thin = {c: n for c, n in class_counts.items() if n < THIN_CLASS_ROWS}
    if thin:
        report.warnings.append(f"classes with fewer than {THIN_CLASS_ROWS} training rows: {thin}")
    return report


def require_passing(report: DataReport) -> DataReport:
    if not report.passed:
        raise DataCheckFailed(report)
    return report
