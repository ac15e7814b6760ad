"""The served model and the watcher that keeps it in step with the ``champion`` alias.

Requests read ``ChampionHolder.current`` once and use that snapshot to the
end, so a swap (one reference assignment) never mixes two versions in one
answer.  Loading happens in a worker thread, never on the request path; a
version that fails to load or to pass a smoke prediction is remembered and
reported, and the previous model keeps serving.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from forestops import names, schema
from forestops.errors import DataError
from forestops.model_loading import UntrustedModel, load_model_folder
from forestops.serving.frames import frame_from_columns
from forestops.serving.predictors import PipelinePredictor, Predictor, RowBlock, build_predictor
from forestops.settings import Settings

log = logging.getLogger(__name__)

ALIAS = names.ALIAS_CHAMPION  # the alias this service follows
RETRY_FAILED_AFTER_SECONDS = 60.0
NO_CHAMPION_MESSAGE = (
    "no champion yet: model {name!r} has no version with the alias 'champion' in the MLflow registry at {uri}. "
    "Nothing to do: the covertype_train DAG trains the first model by itself once the first rows are stored "
    "(roughly {eta:.0f} s after the stack starts: the first fetch plus a {search:g} s search per candidate), "
    "and this service loads it within {poll:g} s. To train at once instead: `forestops train --force`{reload}."
)


def first_model_eta(settings: Settings) -> float:
    """Rough seconds from start-up to a first champion: first fetch, a search per candidate, ~60 s of overhead.

    Measured at the demo's settings: 119 s (docs/benchmarks.md); this gives 125 s.
    """
    return settings.ingest_every + 2 * settings.search_seconds + 60


class UnusableModel(DataError):
    """A registered version that cannot serve: wrong flavour, no predict_proba, bad classes."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServedModel:
    """One loaded version, immutable: what a request snapshot holds."""

    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: datetime
    estimator: Any
    class_ids: np.ndarray  # the model's ``classes_`` as ints, i.e. the columns of predict_proba
    # What answers requests: a fast predictor that matched the pipeline at load time, or the pipeline.
    predictor: Predictor = None  # type: ignore[assignment]
    predictor_fallback: str | None = None  # why a faster path than the one serving was not used

    def __post_init__(self) -> None:
        if self.predictor is None:
            object.__setattr__(self, "predictor", PipelinePredictor(self.estimator))

    def predict(self, rows: RowBlock) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and an (n, 7) probability matrix over all cover types."""
        proba = self.predictor.predict_proba(rows)
        full = np.zeros((proba.shape[0], schema.N_CLASSES), dtype=np.float64)
        full[:, self.class_ids] = proba
        return self.class_ids[np.argmax(proba, axis=1)], full


@dataclass(frozen=True)
class LoadFailure:
    version: str
    error: str
    at: datetime
    refused: bool = False  # refused for safety (not skops, untrusted types), not merely broken


@dataclass
class ChampionHolder:
    """The model being served plus what the last registry checks found."""

    name: str
    current: ServedModel | None = None
    checked_at: datetime | None = None
    registry_error: str | None = None
    load_failure: LoadFailure | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def check_estimator(estimator: Any) -> np.ndarray:
    """The class ids of a loaded estimator, or UnusableModel saying why it cannot serve."""
    if not hasattr(estimator, "predict_proba"):
        raise UnusableModel(f"{type(estimator).__name__} has no predict_proba")
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise UnusableModel(f"{type(estimator).__name__} has no classes_ (is it fitted?)")
    try:
        class_ids = np.asarray(classes).astype(np.int64)
    except (TypeError, ValueError):
        raise UnusableModel(f"classes_ {list(classes)!r} are not class ids 0..{schema.N_CLASSES - 1}") from None
    if class_ids.ndim != 1 or not set(class_ids.tolist()) <= set(schema.CLASS_IDS):
        raise UnusableModel(f"classes_ {class_ids.tolist()!r} are not a subset of 0..{schema.N_CLASSES - 1}")
    example = frame_from_columns({c: [v] for c, v in schema.example_features().items()})
    proba = np.asarray(estimator.predict_proba(example))
    if proba.shape != (1, len(class_ids)):
        raise UnusableModel(f"predict_proba returned shape {proba.shape} for one row and {len(class_ids)} classes")
    return class_ids


class ChampionWatcher:
    """Asks the MLflow registry where ``champion`` points and loads that version when it moves."""

    def __init__(self, settings: Settings, holder: ChampionHolder | None = None) -> None:
        self.settings = settings
        self.holder = holder or ChampionHolder(name=settings.model_name)
        self._refresh_lock = threading.Lock()
        # The registered model's pin (automatic promotion paused), as of the last registry check.
        self.pin: dict[str, Any] | None = None

    @property
    def no_champion_message(self) -> str:
        settings = self.settings
        # POST /admin/reload answers 403 without a token: only offered where it can work.
        reload = " (then POST /admin/reload loads it at once)" if settings.admin_token is not None else ""
        return NO_CHAMPION_MESSAGE.format(
            name=settings.model_name,
            uri=settings.mlflow_tracking_uri,
            poll=settings.model_poll_seconds,
            eta=first_model_eta(settings),
            search=settings.search_seconds,
            reload=reload,
        )

    def _client(self):
        from mlflow import MlflowClient

        uri = self.settings.mlflow_tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def champion_version(self) -> Any | None:
        """The registry's ModelVersion for the alias, or None when there is none yet."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client().get_model_version_by_alias(self.settings.model_name, ALIAS)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def refresh(self, force: bool = False) -> str:
        """Check the alias once and swap if it moved; returns what happened, in words.

        Thread-safe and serialised: the poller and ``/admin/reload`` may call
        it at the same time.  ``force`` retries a version that failed before.
        """
        with self._refresh_lock:
            holder = self.holder
            try:
                version = self.champion_version()
            except Exception as error:  # registry down or misconfigured: keep serving
                holder.checked_at = _now()
                holder.registry_error = f"{type(error).__name__}: {error}"
                log.warning("cannot ask the registry for %s@%s: %s", holder.name, ALIAS, holder.registry_error)
                return "registry unreachable"
            holder.checked_at = _now()
            holder.registry_error = None
            self._check_pin()
            if version is None:
                return "no champion"
            number = str(version.version)
            if holder.current is not None and holder.current.version == number:
                return "unchanged"
            failure = holder.load_failure
            if failure is not None and failure.version == number and not force and not self._retry_due(failure):
                return "failed before"
            try:
                served = self.load(number, version.run_id)
            except Exception as error:
                holder.load_failure = LoadFailure(
                    number, f"{type(error).__name__}: {error}", _now(), refused=isinstance(error, UntrustedModel)
                )
                log.error(
                    "version %s of %s cannot be served, keeping %s: %s",
                    number,
                    holder.name,
                    holder.current.version if holder.current else "none",
                    holder.load_failure.error,
                )
                return "load failed"
            previous = holder.current
            holder.current = served  # the swap: one reference assignment
            holder.load_failure = None
            log.info(
                "now serving %s version %s (was %s)", holder.name, number, previous.version if previous else "none"
            )
            return "swapped"

    def _check_pin(self) -> None:
        """Remember whether automatic promotion is paused (shown on /model); keeps the last answer on errors."""
        from dataclasses import asdict

        from forestops.training.pin import read_pin

        try:
            found = read_pin(self._client(), self.settings.model_name)
        except Exception as error:  # the alias check just answered; a failure here must not stop serving
            log.warning("cannot read the promotion pin of %s: %s", self.settings.model_name, error)
            return
        self.pin = None if found is None else {**asdict(found), "description": found.describe()}

    def _retry_due(self, failure: LoadFailure) -> bool:
        """A version that failed is retried now and then (the cause may have been transient), not every poll."""
        interval = max(RETRY_FAILED_AFTER_SECONDS, 10 * self.settings.model_poll_seconds)
        return (_now() - failure.at).total_seconds() >= interval

    def load(self, version: str, run_id: str | None) -> ServedModel:
        """Download, load with forestops.model_loading (skops, our trusted types), and check one version."""
        import mlflow
        import mlflow.artifacts

        uri = self.settings.mlflow_tracking_uri
        # ``models:/`` URIs are resolved through the process-wide registry
        # URI whatever is passed below; this process serves one registry.
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        folder = tempfile.mkdtemp(prefix="forestops-model-")
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.settings.model_name}/{version}",
                dst_path=folder,
                tracking_uri=uri,
                registry_uri=uri,
            )
            # skops with our trusted types only: a registered model must not be able to run code here.
            estimator = load_model_folder(local)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        class_ids = check_estimator(estimator)
        choice = build_predictor(estimator)  # checked against the pipeline's own predict_proba
        metrics: dict[str, float] = {}
        if run_id:
            try:
                metrics = dict(self._client().get_run(run_id).data.metrics)
            except Exception as error:  # metrics are informative; a missing run must not block serving
                log.warning("cannot read the metrics of run %s: %s", run_id, error)
        return ServedModel(
            name=self.settings.model_name,
            version=version,
            run_id=run_id,
            metrics=metrics,
            loaded_at=_now(),
            estimator=estimator,
            class_ids=class_ids,
            predictor=choice.predictor,
            predictor_fallback=choice.fallback,
        )
