"""MLflow plumbing for training: reachability, experiment, lineage, code version.

A training that cannot reach MLflow must fail at once with a message that
says where it looked and what to start, not after minutes of client
retries deep inside ``log_model``.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path

import pandas as pd

from forestops import schema
from forestops.errors import ServiceUnavailable

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

    from forestops.training.data import content_digest

    columns = [*schema.RAW_COLUMNS, "batch_number"]
    dataset = mlflow.data.from_pandas(
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
