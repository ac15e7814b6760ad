"""MLflow plumbing for training: reachability, experiment, lineage, code version,
and what each training step logs (params, metrics, artefacts, tags).

A training that cannot reach MLflow must fail at once with a message that
says where it looked and what to start, not after minutes of client
retries deep inside ``log_model``.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.engine import make_url

from forestops import schema
from forestops.errors import ServiceUnavailable
from forestops.names import (
    CONFUSION_MATRIX_FILE,
    RAW_DATA_ASSET_NAME,
    REPORT_FILE,
    TAG_AIRFLOW_RUN_ID,
    TAG_BEST_CANDIDATE,
    TAG_CODE_VERSION,
)
from forestops.settings import Settings

if TYPE_CHECKING:
    from forestops.training.evaluation import Evaluation
    from forestops.training.search import SearchResult

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DATASET_SOURCE_TABLE = "raw_rows"


class MlflowUnavailable(ServiceUnavailable):
    """The tracking server did not answer; the message names its URL."""


def connect(tracking_uri: str, experiment_name: str, timeout: float = 10.0):
    """Point MLflow at ``tracking_uri`` (checking that it answers) and select the experiment."""
    import mlflow

    if tracking_uri.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise MlflowUnavailable(
                f"MLflow tracking server at {tracking_uri} is not reachable ({error.__class__.__name__}: {error}). "
                "Start it (`forestops mlflow-server`, or the stack) or set FORESTOPS_MLFLOW_TRACKING_URI; "
                "the training can simply be retried once it answers."
            ) from None
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_name)
    return mlflow.MlflowClient(tracking_uri=tracking_uri)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    import forestops

    version = getattr(forestops, "__version__", "unknown")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0 and commit.stdout.strip():
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=5,
            )
            suffix = "-dirty" if dirty.stdout.strip() else ""
            return f"{version}+{commit.stdout.strip()}{suffix}"
    except (OSError, subprocess.SubprocessError):
        pass
    return str(version)


def log_dataset(
    frame: pd.DataFrame, context: str, database: str, digest: str, batch_numbers: list[int], name: str
) -> None:
    """Log the rows used as an MLflow dataset input (source table, rows, batches, digest).

    The dataset's own digest is that of these rows (so the training and the
    evaluation split are two datasets); ``digest`` is the whole load's, as a tag.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    from forestops.training.data import content_digest

    columns = [*schema.RAW_COLUMNS, "batch_number"]
    dataset = from_pandas(
        frame.loc[:, columns].reset_index(drop=True),
        source=f"{database}.{DATASET_SOURCE_TABLE}",
        targets=schema.LABEL,
        name=name,
        digest=content_digest(frame)[:36],
    )
    mlflow.log_input(
        dataset,
        context=context,
        tags={
            "rows": str(len(frame)),
            "batch_numbers": ",".join(str(b) for b in batch_numbers),
            "source_table": DATASET_SOURCE_TABLE,
            "content_digest": digest,
            "split_rows_digest": content_digest(frame),
        },
    )


# -- what the training steps log -----------------------------------------------------------


@dataclass(frozen=True)
class Lineage:
    """Where a training's rows came from: how many, the whole load's digest, the batches."""

    rows: int
    digest: str
    batch_numbers: list[int]


def database_name(url: str) -> str:
    """The database a SQLAlchemy URL names (a SQLite file by its name), for the dataset's source."""
    parsed = make_url(url)
    database = parsed.database or ""
    return Path(database).name if parsed.get_backend_name() == "sqlite" else database


def run_tags(run_id: str | None, log_id: int) -> dict[str, str]:
    """Tags of a training's parent run and of each candidate's child run."""
    return {TAG_AIRFLOW_RUN_ID: run_id or "", TAG_CODE_VERSION: code_version(), "training_log_id": str(log_id)}


def log_training_inputs(
    settings: Settings,
    candidates: list[str],
    training: pd.DataFrame,
    evaluation_rows: pd.DataFrame,
    lineage: Lineage,
    data_report: Path,
) -> None:
    """On the active parent run: both splits as datasets, the settings that shaped it, row counts, the data report."""
    import mlflow

    database = database_name(settings.raw_database_url)
    for frame, context in ((training, "training"), (evaluation_rows, "evaluation")):
        log_dataset(frame, context, database, lineage.digest, lineage.batch_numbers, RAW_DATA_ASSET_NAME)
    mlflow.log_params(
        {
            "candidates": ",".join(candidates),
            "search_seconds": settings.search_seconds,
            "evaluation_percent": settings.evaluation_percent,
            "class_weight_power": settings.class_weight_power,
            "primary_metric": settings.primary_metric,
        }
    )
    mlflow.log_metrics({"rows": lineage.rows, "training_rows": len(training), "evaluation_rows": len(evaluation_rows)})
    if data_report.exists():
        mlflow.log_artifact(str(data_report))


def log_candidate_fit(
    pipeline: Any, seconds: float, training_rows: int, found: SearchResult | None, cpu_seconds: float = 0.0
) -> None:
    """On the active child run: the fitted model's parameters, the fit time and the search's figures."""
    import mlflow

    model_params = pipeline.named_steps["model"].get_params()
    mlflow.log_params({f"model_{k}": v for k, v in model_params.items() if not callable(v) and k != "callbacks"})
    metrics = {"training_seconds": seconds, "training_cpu_seconds": cpu_seconds, "training_rows": float(training_rows)}
    metrics.update(search_trials=0, search_cpu_seconds=0.0)  # unless a search ran: said, not left out
    if found:
        metrics.update(
            search_trials=found.trials,
            search_seconds=found.seconds,
            search_cpu_seconds=found.cpu_seconds,
            search_warm_started=float(found.warm_started),
            search_validation_f1_macro=found.validation_f1_macro,
        )
    mlflow.log_metrics(metrics)


def log_candidate_evaluation(run_id: str, name: str, result: Evaluation, folder: Path) -> None:
    """On a candidate's run: its evaluation metrics, confusion matrix and report."""
    import mlflow

    from forestops.training import evaluation

    folder.mkdir(exist_ok=True)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(result.metrics)
        confusion = evaluation.write_confusion_matrix(
            result.confusion, folder / CONFUSION_MATRIX_FILE, f"{name} on evaluation rows"
        )
        for file in (confusion, evaluation.write_report(result, folder / REPORT_FILE)):
            mlflow.log_artifact(str(file))


def log_importance(run_id: str, importance: Any, folder: Path) -> None:
    """On the best candidate's run: its permutation feature importance (JSON and plot)."""
    import mlflow

    from forestops.training import evaluation

    folder.mkdir(exist_ok=True)
    with mlflow.start_run(run_id=run_id):
        for file in evaluation.write_importance(importance, folder):
            mlflow.log_artifact(str(file))


def log_best_candidate(parent_run_id: str, best: str, scores: dict[str, dict[str, float]]) -> None:
    """On the parent run: which candidate won, its scores, and every candidate's."""
    import mlflow

    with mlflow.start_run(run_id=parent_run_id):
        mlflow.set_tag(TAG_BEST_CANDIDATE, best)
        mlflow.log_metrics({f"best_{k}": v for k, v in scores[best].items()})
        for name, values in scores.items():
            mlflow.log_metrics({f"{name}_{k}": v for k, v in values.items()})


def log_learning_curve(client: Any, model_name: str, parent_run_id: str, folder: Path) -> None:
    """On the parent run: every version's scores against its training rows (table and plot).

    A report, not a step: when it cannot be drawn the training still counts,
    and the warning says why.
    """
    import mlflow

    from forestops.training import learning_curve

    try:
        points = learning_curve.curve_points(client, model_name)
        files = learning_curve.write_curve(points, folder)
        with mlflow.start_run(run_id=parent_run_id):
            for file in files:
                mlflow.log_artifact(str(file))
    except Exception as error:  # the curve is a report; the registered version stands
        log.warning("could not log the learning curve: %s", error)
