"""Configuration from the environment: the one source of truth for settings.

Every variable is ``FORESTOPS_<FIELD NAME>`` (for example
``FORESTOPS_BATCH_SECONDS``).  The defaults run the local stack on one
machine with embedded storage (SQLite, a local artefact folder); the compose
deployment overrides the URLs.  Validation happens once, at start-up, and a
bad value fails with the variable's name in the message.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from forestops.errors import ConfigurationError
from forestops.redaction import is_secret_name, redact

ENV_PREFIX = "FORESTOPS_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    # -- where things live -------------------------------------------------
    home: Path = Field(Path(".forestops"), description="Folder for local state, logs and embedded databases.")
    data_path: Path | None = Field(None, description="CSV or CSV.gz in the raw format; unset: build it from UCI.")
    data_cache_dir: Path | None = Field(None, description="Where the UCI download is cached (default: <home>/cache).")
    state_dir: Path | None = Field(None, description="Data API state (default: <home>/datasource).")

    # -- the batch data API ------------------------------------------------
    datasource_host: str = "127.0.0.1"
    datasource_port: int = Field(8090, ge=1, le=65535)
    batch_seconds: float = Field(300.0, gt=0, description="How long each batch is served.")
    batch_count: int = Field(10, ge=1, le=1000)
    group_count: int = Field(10, ge=1, le=1000)
    portion_fraction: float = Field(0.1, gt=0, le=1, description="Share of a batch returned by one call.")
    holdout_fraction: float = Field(0.0, ge=0, lt=1, description="Share of rows the data API never serves.")
    uci_sample_rows: int | None = Field(None, ge=1000, description="Rows to keep from the UCI file (all if unset).")

    # -- ingestion -----------------------------------------------------------
    datasource_url: str = Field("http://127.0.0.1:8090", description="Base URL of the data API to collect from.")
    group_number: int = Field(1, ge=1, description="The group whose batches this deployment collects.")
    label_base: Literal[0, 1] = Field(0, description="0: labels arrive as 0..6; 1: as UCI's 1..7.")
    ingest_every: float = Field(60.0, gt=0, description="Seconds between two collection runs.")
    restart_when_done: bool = False
    http_timeout_seconds: float = Field(30.0, gt=0)
    http_retries: int = Field(5, ge=0, le=20)
    http_backoff_seconds: float = Field(1.0, ge=0, description="First wait between two HTTP attempts (doubles).")
    http_max_response_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest data API response read (declared or decoded, gzip inflated); larger ends the fetch.",
    )
    http_max_json_depth: int = Field(32, ge=3, le=512, description="Deepest JSON nesting read from the data API.")
    http_total_seconds: float = Field(
        120.0, gt=0, description="Deadline of one fetch, retries and a slowly dripping body included."
    )
    ingest_task_timeout_seconds: float = Field(
        600.0, gt=0, description="Airflow execution_timeout of each covertype_ingest task."
    )
    train_task_timeout_seconds: float = Field(
        7200.0, gt=0, description="Airflow execution_timeout of each covertype_train task."
    )

    # -- storage -------------------------------------------------------------
    database_url: str | None = Field(None, description="SQLAlchemy URL of the raw data database.")
    mysql_url: str | None = Field(None, description="MySQL server URL without a database (server mode).")
    raw_database: str = "covertype"
    db_admin_url: SecretStr | None = Field(None, description="Admin URL used once by `forestops db-init`.")
    mlflow_database: str = "mlflow"

    # -- MLflow and training ------------------------------------------------
    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    mlflow_port: int = Field(5000, ge=1, le=65535)
    experiment_name: str = "covertype"
    model_name: str = "covertype"
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_bucket: str = "mlflow"
    retrain_min_new_rows: int | None = Field(None, ge=0, description="Unset: 5% of the rows of the last training.")
    search_seconds: float = Field(
        60.0,
        ge=0,
        description="CPU-seconds budget of the hyperparameter search (shared by the searched candidates); "
        "CPU time, so a busy machine still explores as much; 0: no search.",
    )
    search_max_trials: int | None = Field(
        None, ge=1, description="Most trials per searched candidate (unset: only the CPU budget limits it)."
    )
    evaluation_percent: int = Field(20, ge=1, le=50, description="Share of rows (by hash) held out for evaluation.")
    primary_metric: Literal["f1_macro", "accuracy"] = "f1_macro"
    promotion_margin: float = Field(0.0, ge=0, le=1)
    promotion_policy: Literal["immediate", "shadow"] = Field(
        "immediate",
        description="immediate: a better candidate becomes champion at once; shadow: it becomes challenger, "
        "is scored on a share of live requests, and is promoted when the shadow thresholds are met.",
    )
    shadow_sample_share: float = Field(0.25, ge=0, le=1, description="Share of /predict requests also shadow-scored.")
    shadow_queue_size: int = Field(
        256, ge=1, le=100_000, description="Requests waiting for shadow scoring; beyond it they are dropped."
    )
    shadow_min_requests: int = Field(200, ge=1, description="Shadowed requests after which the challenger is decided.")
    shadow_max_minutes: float = Field(
        60.0, gt=0, description="Minutes after which the challenger is decided on whatever was shadowed."
    )
    shadow_min_agreement: float = Field(
        0.9, ge=0, le=1, description="Share of shadowed rows on which challenger and champion must agree."
    )
    shadow_max_latency_seconds: float = Field(
        0.5, gt=0, description="Highest mean time the challenger may take to score one shadowed request."
    )
    retention_keep_versions: int = Field(
        10, ge=1, description="Retention keeps this many newest versions (plus aliased and recently moved ones)."
    )
    retention_history_days: float = Field(
        7.0, ge=0, description="Retention keeps every version the promotion history names within these days."
    )
    retention_every_minutes: float = Field(
        60.0, gt=0, description="Minutes between two runs of the retention DAG (versions, artefacts, logs)."
    )
    task_log_retention_hours: float = Field(
        48.0, gt=0, description="Retention deletes Airflow task log files older than this."
    )
    airflow_history_hours: float = Field(
        48.0, gt=0, description="Airflow's run history (runs, task instances, XComs, events) older than this goes."
    )
    service_log_max_mb: float = Field(
        50.0, gt=0, description="Retention cuts a local stack service log past this size to its newest half."
    )
    random_seed: int = 42
    training_candidates: str = Field(
        "lightgbm,hist_gradient_boosting,random_forest,baseline",
        description="Comma-separated candidates to train (lightgbm, hist_gradient_boosting, random_forest, baseline).",
    )
    training_min_rows: int = Field(200, ge=10, description="Fewest training-split rows a training may start with.")
    class_weight_power: float = Field(0.5, ge=0, le=1, description="Rare-class weight (n/(k*n_c))**power; 0: none.")

    # -- serving -------------------------------------------------------------
    inference_host: str = "127.0.0.1"
    inference_port: int = Field(8000, ge=1, le=65535)
    inference_workers: int = Field(1, ge=1, le=64)
    inference_url: str = "http://127.0.0.1:8000"
    model_poll_seconds: float = Field(10.0, gt=0)
    admin_token: SecretStr | None = None
    max_request_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest request body the inference and data APIs read (413 above it); 10,000 rows of "
        "JSON are about 3.3 MB compact, 4.3 MB indented.",
    )

    # -- Airflow and the UI --------------------------------------------------
    airflow_url: str = "http://127.0.0.1:8080"
    airflow_username: str = "admin"
    airflow_password: SecretStr | None = None
    ui_port: int = Field(8501, ge=1, le=65535)
    ui_host: str = Field("127.0.0.1", description="Interface the Streamlit UI binds (0.0.0.0 in a container).")
    ui_max_upload_mb: int = Field(
        16, ge=1, le=200, description="Largest CSV the UI accepts, in MB (100,000 rows, its row limit, are ~8 MB)."
    )
    ui_username: str = Field(
        "admin", min_length=1, description="User name of the UI's sign-in (actions that change state need it)."
    )
    ui_password: SecretStr | None = Field(
        None,
        description="Password of the UI's sign-in. Unset: actions are refused, unless the UI binds a loopback "
        "address (127.0.0.1), where they stay open to whoever uses this machine.",
    )

    # -- the local stack (`forestops stack`) ---------------------------------
    airflow_port: int = Field(8080, ge=1, le=65535, description="Port of the local stack's Airflow API server.")
    airflow_database_url: str | None = Field(
        None, description="Airflow metadata DB of the local stack (unset: SQLite under <home>/airflow)."
    )
    stack_health_timeout: float = Field(240.0, gt=0, description="Seconds each local-stack service has to answer.")
    prometheus_port: int = Field(9090, ge=1, le=65535, description="Local stack: Prometheus port, when installed.")
    stack_training_niceness: int = Field(
        10,
        ge=0,
        le=19,
        description="Nice value of the local stack's Airflow scheduler, DAG processor and triggerer (and so of the "
        "DAG tasks they fork, training included), so a training does not take the inference API's CPU.",
    )

    # -- `forestops check` (a running deployment, end to end) ------------------
    ui_url: str | None = Field(None, description="Where the Streamlit UI answers (unset: 127.0.0.1 and ui_port).")
    mlflow_backend_store_uri: SecretStr | None = Field(
        None,
        description="MLflow's database URL as MLflow's own user: schema revision and grants (unset: local stack's).",
    )
    reader_database_url: SecretStr | None = Field(
        None, description="The UI's read-only database URL, whose grants `forestops check` verifies."
    )
    check_ingest_timeout: float = Field(180.0, gt=0, description="Seconds `forestops check` waits for its ingest run.")

    # -- monitoring (covertype_monitor) -----------------------------------------
    monitor_reference_rows: int = Field(
        5000, ge=100, description="Rows of the champion's training split (a fixed sample) drift is measured against."
    )
    monitor_drift_seconds: float = Field(
        120.0, gt=0, description="Time box of one batch's drift computation; past it the batch is stored without drift."
    )
    monitor_metrics_refresh_seconds: float = Field(
        30.0, gt=0, description="How often the inference API re-reads batch_monitoring for its /metrics."
    )
    alert_accuracy_drop: float = Field(
        0.05, ge=0, le=1, description="Alert when a batch's accuracy is this far below the champion's evaluation one."
    )
    alert_drift_share: float = Field(
        0.5, ge=0, le=1, description="Alert when at least this share of the feature columns drifted in a batch."
    )
    retrain_on_drift: bool = Field(False, description="On an alert, trigger covertype_train (forced) with the reason.")
    alert_slack_conn_id: str | None = Field(None, description="Airflow Slack webhook connection for alerts.")
    alert_email_to: str | None = Field(None, description="Where alerts are mailed via Airflow's SMTP connection.")

    @field_validator("label_base", mode="before")
    @classmethod
    def _label_base_from_text(cls, value):
        # Environment values are strings, and pydantic does not coerce "1" to the literal 1.
        return int(value) if isinstance(value, str) and value.strip() in ("0", "1") else value

    @field_validator("datasource_url", "mlflow_tracking_uri", "inference_url", "airflow_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url", "mysql_url")
    @classmethod
    def _check_db_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a SQLAlchemy URL such as mysql+pymysql://user:password@host:3306")
        return value.rstrip("/") if value else value

    @field_validator("ui_password")
    @classmethod
    def _no_empty_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it to switch the UI sign-in off)")
        return value

    @model_validator(mode="after")
    def _check_group(self) -> Settings:
        if self.group_number > self.group_count:
            raise ValueError(f"FORESTOPS_GROUP_NUMBER must be at most FORESTOPS_GROUP_COUNT ({self.group_count})")
        return self

    # -- derived values ------------------------------------------------------
    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir or self.home / "datasource"

    @property
    def resolved_cache_dir(self) -> Path:
        return self.data_cache_dir or self.home / "cache"

    @property
    def raw_database_url(self) -> str:
        """The raw data store: explicit URL, else MySQL server mode, else SQLite."""
        if self.database_url:
            return self.database_url
        if self.mysql_url:
            return f"{self.mysql_url}/{self.raw_database}"
        return f"sqlite:///{(self.home / 'covertype.db').resolve()}"


class SettingsError(ConfigurationError):
    """Configuration that cannot work; the message names each variable."""


def _secret_field(name: str) -> bool:
    """A field whose value is never shown: a ``SecretStr`` or a secret-looking name."""
    field = Settings.model_fields.get(name)
    annotation = repr(field.annotation) if field is not None else ""
    return "Secret" in annotation or is_secret_name(name)


def _shown_input(field: str, value: object) -> str:
    """The offending value as a message may show it: masked when secret, cut when long."""
    if _secret_field(field):
        return " (value hidden: secret)"
    if field.endswith(("_url", "_uri")) and (not isinstance(value, str) or "://" not in value):
        # Not a URL, so its password cannot be found to mask: it may be anywhere in the text.
        return " (value hidden: may hold credentials)"
    shown = redact(repr(value))
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return f" (got {shown})"


def describe_validation_error(error: ValidationError) -> str:
    """Name each variable and the rule it breaks; show a value only when it is not secret.

    A model-level error (a rule across several settings) has every input as
    its ``input``: that is never shown, since it holds the passwords too.
    """
    lines = []
    for problem in error.errors():
        field = ".".join(str(p) for p in problem["loc"])
        variable = ENV_PREFIX + field.upper() if field else "configuration"
        value = problem.get("input")
        shown = _shown_input(field, value) if field and not isinstance(value, dict) else ""
        # pydantic's messages state the rule, never the input (our validators keep to that too).
        lines.append(f"{variable}: {problem['msg']}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


# FORESTOPS_* names that are read elsewhere, not by Settings (compose files, tests, benchmarks).
_OTHER_VARIABLES = frozenset({"FORESTOPS_BIND_INTERNAL", "FORESTOPS_IMAGE_TAG"})
_OTHER_PREFIXES = ("FORESTOPS_TEST_", "FORESTOPS_BENCH_")
_warned_unknown = False


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``FORESTOPS_*`` names no setting reads, each with the closest valid name (or None).

    Pydantic ignores them silently, so a typo such as ``FORESTOPS_BATCH_SECOND``
    would leave the default in place without a word.
    """
    known = sorted(ENV_PREFIX + name.upper() for name in Settings.model_fields)
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in _OTHER_VARIABLES:
            continue
        if upper.startswith(_OTHER_PREFIXES):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        found.append((name, close[0] if close else None))
    return found


def warn_unknown_variables(environ: Mapping[str, str] | None = None) -> None:
    """Warn once per process about each unknown ``FORESTOPS_*`` variable."""
    global _warned_unknown
    if _warned_unknown:
        return
    _warned_unknown = True
    for name, close in unknown_variables(os.environ if environ is None else environ):
        hint = f"did you mean {close}?" if close else "see docs/configuration.md for the valid names"
        logging.getLogger(__name__).warning("warning: %s is not a forestops setting and is ignored; %s", name, hint)


def load_settings(**overrides) -> Settings:
    """Read and validate settings, turning pydantic's report into one message."""
    warn_unknown_variables()
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
