"""Names shared by the DAGs, the services, the UI and the tests.

These strings are contracts between processes that never import each other
(a DAG run writes a tag that the UI reads; the inference service follows an
alias that promotion moves), so each lives here once.  This module imports
nothing, which keeps it cheap for DAG parsing and safe for every layer.
"""

from __future__ import annotations

from enum import StrEnum

# -- MLflow registry ----------------------------------------------------------
ALIAS_CHAMPION = "champion"
ALIAS_CHALLENGER = "challenger"
MODEL_ARTIFACT_NAME = "model"  # log_model(name=...) and the registered source path
SERIALIZATION_FORMAT = "skops"  # the only format any loader of ours accepts

# Model-version tags (read by promotion, rollback, the UI and `forestops history`).
TAG_DECISION = "decision"
TAG_CANDIDATE_SCORE = "candidate_score"
TAG_CHAMPION_SCORE = "champion_score"
TAG_PRIMARY_METRIC = "primary_metric"
TAG_PREVIOUS_CHAMPION = "previous_champion"
TAG_DECIDED_AT = "decided_at"
TAG_DECIDED_BY = "decided_by"

# Registered-model tag: while present, automatic promotion is paused (`forestops pin`).
# Its value is JSON: the champion at pin time, who pinned it, when, and why.
TAG_PROMOTION_PIN = "promotion_pin"
# The recipe and the cost of a version (the next training's search starts from the champion's recipe).
TAG_MODEL_PARAMS = "model_params"
TAG_SEARCH_TRIALS = "search_trials"
TAG_SEARCH_CPU_SECONDS = "search_cpu_seconds"
TAG_TRAINING_CPU_SECONDS = "training_cpu_seconds"

# Run tags.
TAG_AIRFLOW_RUN_ID = "airflow_run_id"
TAG_CODE_VERSION = "code_version"
TAG_BEST_CANDIDATE = "best_candidate"

# Artefacts logged with every training run.
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
REPORT_FILE = "classification_report.json"
IMPORTANCE_FILE = "feature_importance.json"
IMPORTANCE_PLOT_FILE = "feature_importance.png"

# -- Airflow ------------------------------------------------------------------
DAG_INGEST = "covertype_ingest"
DAG_TRAIN = "covertype_train"
DAG_MONITOR = "covertype_monitor"
DAG_RETENTION = "covertype_retention"
DAG_SHADOW = "covertype_shadow"

# The Asset the ingest DAG emits when it stored new rows; training and
# monitoring are scheduled on it.
RAW_DATA_ASSET_NAME = "covertype_raw_rows"
RAW_DATA_ASSET_URI = "forestops://covertype/raw_rows"


class FetchStatus(StrEnum):
    """What one fetch from the data API ended as (``fetch_log.status``)."""

    STORED = "stored"
    COMPLETE = "complete"
    ERROR = "error"


class TrainingStatus(StrEnum):
    """What one training run ended as (``training_log.status``)."""

    SKIPPED = "skipped"
    RUNNING = "running"
    TRAINED = "trained"
    FAILED = "failed"
