"""The training pipeline as steps: gate, load, check, train, evaluate, register, promote.

Each step is a plain function of the settings and the typed results of the
steps before it (frozen dataclasses), so the Airflow DAG wires them one per
task and passes each result through XCom with its explicit ``to_xcom()`` and
``from_xcom()``, while ``forestops train`` and the benchmark run them in one
process via ``run_training``.  Fitted candidates travel between steps as
skops files in the training's work folder; the rows as one parquet file.
What is logged to MLflow, and how, is in ``forestops.training.tracking``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forestops import model_loading
from forestops.names import (
    TAG_MODEL_PARAMS,
    TAG_SEARCH_CPU_SECONDS,
    TAG_SEARCH_TRIALS,
    TAG_TRAINING_CPU_SECONDS,
    TrainingStatus,
)
from forestops.settings import Settings
from forestops.storage.db import ensure_schema, make_engine
from forestops.training import candidates as cands
from forestops.training import (
    checks,
    data,
    evaluation,
    gate,
    history,
    preemption,
    promotion,
    registry,
    search,
    tracking,
)
from forestops.training.gate import GateDecision

log = logging.getLogger(__name__)

PARENT_RUN_PREFIX = "training"
DATA_REPORT_FILE = "data_report.json"
# Threads of the final training's fit.  Every other training fits on one
# thread so that the collection and the inference service keep a core; once
# the collection is complete only serving is left, and it keeps priority by
# other means (the training runs niced in the local stack, at a sixteenth of
# the inference service's CPU weight, 256 against 4096, in Compose).
FINAL_THREADS = 2


# -- what each step hands to the next ------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """The rows of one training (a parquet file in its work folder) and their lineage."""

    log_id: int
    path: str
    rows: int
    max_raw_id: int | None
    batch_numbers: tuple[int, ...]
    digest: str
    trigger: str | None = None  # why the run was started (the gate's), when not by new rows
    final: bool = False  # the cycle's final training, on every collected row (see training.gate)

    @property
    def folder(self) -> Path:
        return Path(self.path).parent

    def to_xcom(self) -> dict[str, Any]:
        return {**asdict(self), "batch_numbers": list(self.batch_numbers)}

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Loaded:
        return cls(**{**value, "batch_numbers": tuple(value["batch_numbers"])})


@dataclass(frozen=True)
class Checked:
    """The data checks passed (a failure raises); warnings and where the report is."""

    warnings: tuple[str, ...]
    report_path: str

    def to_xcom(self) -> dict[str, Any]:
        return {"warnings": list(self.warnings), "report_path": self.report_path}

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Checked:
        return cls(tuple(value["warnings"]), value["report_path"])


@dataclass(frozen=True)
class TrainedCandidate:
    name: str
    run_id: str  # its child run under the training's parent run
    model_path: str  # the fitted pipeline, a skops file in the work folder
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)  # what the search chose (the defaults fill the rest)
    cpu_seconds: float = 0.0  # search and final fit, this process's CPU time
    search_trials: int = 0
    search_cpu_seconds: float = 0.0


@dataclass(frozen=True)
class Trained:
    parent_run_id: str
    candidates: tuple[TrainedCandidate, ...]

    def candidate(self, name: str) -> TrainedCandidate:
        for candidate in self.candidates:
            if candidate.name == name:
                return candidate
        raise KeyError(f"no trained candidate {name!r} (trained: {', '.join(c.name for c in self.candidates)})")

    def to_xcom(self) -> dict[str, Any]:
        return {"parent_run_id": self.parent_run_id, "candidates": [asdict(c) for c in self.candidates]}

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Trained:
        return cls(value["parent_run_id"], tuple(TrainedCandidate(**c) for c in value["candidates"]))


@dataclass(frozen=True)
class Evaluated:
    best: str
    metric: str
    score: float  # the best candidate's value of ``metric`` on the evaluation rows
    scores: dict[str, dict[str, float]]  # candidate -> {"accuracy": ..., "f1_macro": ...}

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Evaluated:
        return cls(**value)


@dataclass(frozen=True)
class Registered:
    version: str
    run_id: str
    candidate: str

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Registered:
        return cls(**value)


@dataclass(frozen=True)
class Promoted:
    version: str
    decision: str
    candidate_score: float | None
    champion_score: float | None
    previous_champion: str | None

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Promoted:
        return cls(**value)


@dataclass(frozen=True)
class TrainingOutcome:
    """What ``run_training`` did: the gate's decision and, when it trained, each step's result."""

    gate: GateDecision
    evaluated: Evaluated | None = None
    registered: Registered | None = None
    promoted: Promoted | None = None

    @property
    def trained(self) -> bool:
        return self.promoted is not None


# -- shared plumbing ----------------------------------------------------------------


def _engine(settings: Settings):
    return _engine_for(settings.raw_database_url)


@functools.lru_cache(maxsize=8)
def _engine_for(url: str):
    """One engine per database per process, its schema brought up to date once."""
    engine = make_engine(url)
    ensure_schema(engine)
    return engine


def candidate_names(settings: Settings) -> list[str]:
    chosen = [n.strip() for n in settings.training_candidates.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in cands.CANDIDATES]
    if unknown or not chosen:
        raise ValueError(
            f"FORESTOPS_TRAINING_CANDIDATES: unknown candidate(s) {unknown or '(none given)'}; "
            f"choose from {', '.join(cands.CANDIDATES)}"
        )
    return chosen


def work_dir(settings: Settings, log_id: int) -> Path:
    return (settings.home / "training" / f"training-{log_id}").resolve()


@contextlib.contextmanager
def recorded_failure(settings: Settings, log_id: int | None) -> Iterator[None]:
    """Mark the training's log row failed (with the error) when a step raises."""
    try:
        yield
    except preemption.Superseded:
        raise  # not a failure: train_step records it
    except Exception as error:
        if log_id is not None:
            try:
                gate.update(_engine(settings), log_id, status=TrainingStatus.FAILED, detail=str(error))
            except Exception:  # the original error matters more than the bookkeeping
                log.exception("could not record the failure of training %s", log_id)
        raise


def _split_frames(frame):
    training = frame[frame[data.SPLIT_COLUMN] == data.TRAINING].reset_index(drop=True)
    evaluation_rows = frame[frame[data.SPLIT_COLUMN] == data.EVALUATION].reset_index(drop=True)
    return training, evaluation_rows


def _evaluation_rows(loaded: Loaded):
    _, evaluation_rows = _split_frames(data.read_split(loaded.path))
    return data.features_and_labels(evaluation_rows)


def _limited_threads(threads: int = cands.OPENMP_THREADS):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def load_candidate(path: str | Path):
    import skops.io

    return skops.io.load(path, trusted=list(registry.TRUSTED_TYPES))


# -- gate, load, check ------------------------------------------------------------------


def gate_step(
    settings: Settings, force: bool = False, run_id: str | None = None, trigger: str | None = None
) -> GateDecision:
    return gate.should_train(
        _engine(settings), settings.retrain_min_new_rows, force, run_id, trigger, group_number=settings.group_number
    )


def load_step(settings: Settings, decision: GateDecision) -> Loaded:
    with recorded_failure(settings, decision.log_id):
        engine = _engine(settings)
        rows = data.load_split(
            engine, work_dir(settings, decision.log_id), settings.evaluation_percent, decision.max_raw_id
        )
        gate.update(engine, decision.log_id, rows_used=rows.rows, max_raw_id=rows.max_raw_id)
        return Loaded(
            decision.log_id,
            str(rows.path),
            rows.rows,
            rows.max_raw_id,
            rows.batch_numbers,
            rows.digest,
            decision.trigger,
            decision.final,
        )


def check_step(settings: Settings, loaded: Loaded) -> Checked:
    with recorded_failure(settings, loaded.log_id):
        report = checks.data_report(data.read_split(loaded.path), settings.training_min_rows)
        report_path = loaded.folder / DATA_REPORT_FILE
        report_path.write_text(report.to_json())
        log.info("data checks: %s", "passed" if report.passed else "FAILED")
        checks.require_passing(report)
        return Checked(tuple(report.warnings), str(report_path))


# -- train -----------------------------------------------------------------------------


def _search_params(
    settings: Settings,
    name: str,
    training,
    budget: float,
    warm_start: list[dict[str, Any]],
    watch: preemption.SupersedeWatch | None = None,
) -> search.SearchResult | None:
    if budget <= 0 or name not in cands.STRONG_CANDIDATES:
        return None
    inside = data.validation_mask(training["row_hash"])
    if inside.all() or not inside.any():
        return None
    x_fit, y_fit = data.features_and_labels(training[~inside])
    x_val, y_val = data.features_and_labels(training[inside])
    return search.search(
        name,
        x_fit,
        y_fit,
        x_val,
        y_val,
        search.SearchBudget(budget, settings.search_max_trials),
        settings.random_seed,
        settings.class_weight_power,
        warm_start=warm_start,
        watch=watch,
    )


def final_plan(recipe: tuple[str, dict[str, Any]] | None, configured: list[str]) -> list[str] | None:
    """What the final training fits: the champion's recipe, and every other configured strong family.

    The searches of the cycle's trainings have already chosen the champion's
    family and its parameters, rounds included (early stopping decided them
    on nearly as many rows, the last periodic training's); the final
    training fits that recipe once on every row, with no search, on
    ``FINAL_THREADS`` threads, so the champion settles soon after the last
    batch.  Measured on 130,000 rows: a search trial to re-decide the rounds
    (675 instead of 600) doubled the CPU (151 s against 63 s) for +0.001
    accuracy.  The other strong families are fitted at their tuned defaults
    (tuned on the whole data set, the size a final training reaches) and
    evaluation picks: the family that won on 70,000 rows is not always the
    better one on all of them.  ``None`` (a full training) when the champion
    recorded no recipe or its family is no longer configured.
    """
    if recipe is None or recipe[0] not in configured:
        return None
    others = [name for name in configured if name in cands.STRONG_CANDIDATES and name != recipe[0]]
    return [recipe[0], *others]


def supersede_watch(settings: Settings, loaded: Loaded) -> preemption.SupersedeWatch:
    return preemption.SupersedeWatch(
        _engine(settings), settings.group_number, loaded.max_raw_id, active=not loaded.final
    )


def _superseded(settings: Settings, loaded: Loaded, error: preemption.Superseded) -> preemption.Superseded:
    gate.update(_engine(settings), loaded.log_id, status=TrainingStatus.SKIPPED, detail=str(error), decision="none")
    log.info("training #%d %s", loaded.log_id, error)
    return error


def train_step(settings: Settings, loaded: Loaded, run_id: str | None = None) -> Trained:
    """Fit every candidate (searching the strong ones) and log one child run each.

    The final training fits the champion's recipe and the other strong families' defaults (``final_plan``);
    any other gives way (raises ``preemption.Superseded``) when the collection
    completes under it.
    """
    watch = supersede_watch(settings, loaded)
    try:
        return _train(settings, loaded, run_id, watch)
    except preemption.Superseded as error:
        raise _superseded(settings, loaded, error) from None


def _train(settings: Settings, loaded: Loaded, run_id: str | None, watch: preemption.SupersedeWatch) -> Trained:
    import mlflow
    import skops.io

    with recorded_failure(settings, loaded.log_id):
        client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        champion = registry.champion_version(client, settings.model_name)
        recipe = registry.recipe_of(champion)
        configured = candidate_names(settings)
        plan = final_plan(recipe, configured) if loaded.final else None
        to_fit = plan or configured
        training, evaluation_rows = _split_frames(data.read_split(loaded.path))
        x_train, y_train = data.features_and_labels(training)
        strong = [n for n in to_fit if n in cands.STRONG_CANDIDATES]
        # The first training (no champion yet) fits the tuned defaults without a search:
        # nothing is served until it ends and it has no champion to beat, so the search's
        # CPU would only delay the first champion; the next search starts from the defaults.
        searching = bool(strong) and plan is None and champion is not None
        budget = settings.search_seconds / len(strong) if searching else 0.0
        if champion is None:
            log.info("first training (no champion yet): fitting the tuned defaults without a search")
        threads = FINAL_THREADS if plan is not None else cands.OPENMP_THREADS
        if plan is not None:
            log.info(
                "final training on every collected row: the champion's recipe (%s), then %s at their defaults",
                plan[0],
                ", ".join(plan[1:]) or "no other family",
            )
        common_tags = tracking.run_tags(run_id, loaded.log_id)
        fitted: list[TrainedCandidate] = []
        with mlflow.start_run(run_name=f"{PARENT_RUN_PREFIX}-{loaded.log_id}", tags=common_tags) as parent:
            tracking.log_training_inputs(
                settings,
                to_fit,
                training,
                evaluation_rows,
                tracking.Lineage(loaded.rows, loaded.digest, list(loaded.batch_numbers)),
                loaded.folder / DATA_REPORT_FILE,
            )
            for name in to_fit:
                with mlflow.start_run(run_name=name, nested=True, tags={**common_tags, "candidate": name}) as child:
                    started, cpu_started = time.perf_counter(), time.process_time()
                    watch.check()
                    warm = [recipe[1]] if recipe and recipe[0] == name else []
                    with _limited_threads(threads):
                        found = _search_params(settings, name, training, budget, warm, watch)
                        the_recipe = recipe if plan is not None and recipe and name == recipe[0] else None
                        recorded = search.within_size_budget(name, the_recipe[1]) if the_recipe else {}
                        # Recorded on the version as its recipe: the defaults when nothing was searched.
                        params = found.params if found else (recorded or dict(cands.DEFAULT_PARAMS.get(name, {})))
                        pipeline = cands.build_pipeline(name, params, seed=settings.random_seed)
                        cands.fit_pipeline(
                            pipeline,
                            x_train,
                            y_train,
                            settings.class_weight_power,
                            lightgbm_callbacks=[watch.lightgbm_callback()],
                            lightgbm_threads=threads,
                        )
                    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                    tracking.log_candidate_fit(pipeline, seconds, len(training), found, cpu)
                    model_path = loaded.folder / f"{name}.skops"
                    skops.io.dump(pipeline, model_path)
                    fitted.append(
                        TrainedCandidate(
                            name,
                            child.info.run_id,
                            str(model_path),
                            seconds,
                            params=params,
                            cpu_seconds=cpu,
                            search_trials=found.trials if found else 0,
                            search_cpu_seconds=found.cpu_seconds if found else 0.0,
                        )
                    )
                    log.info("trained %s on %d rows in %.1fs", name, len(training), seconds)
        return Trained(parent.info.run_id, tuple(fitted))


# -- evaluate --------------------------------------------------------------------------


def evaluate_step(settings: Settings, loaded: Loaded, trained: Trained) -> Evaluated:
    """Score each candidate on the evaluation rows, log metrics and artefacts, pick the best."""
    with recorded_failure(settings, loaded.log_id):
        tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        x_eval, y_eval = _evaluation_rows(loaded)
        metric = settings.primary_metric
        scores: dict[str, dict[str, float]] = {}
        results: dict[str, evaluation.Evaluation] = {}
        for candidate in trained.candidates:
            name = candidate.name
            with _limited_threads():
                results[name] = evaluation.evaluate(load_candidate(candidate.model_path), x_eval, y_eval)
            metrics = results[name].metrics
            scores[name] = {"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"]}
            log.info("%s: accuracy %.4f, macro-F1 %.4f", name, scores[name]["accuracy"], scores[name]["f1_macro"])
        best = max(scores, key=lambda n: (scores[n][metric], scores[n]["accuracy"]))
        for candidate in trained.candidates:
            name = candidate.name
            tracking.log_candidate_evaluation(candidate.run_id, name, results[name], loaded.folder / name)
        tracking.log_best_candidate(trained.parent_run_id, best, scores)
        return Evaluated(best, metric, scores[best][metric], scores)


# -- register and promote ----------------------------------------------------------------


def register_step(settings: Settings, loaded: Loaded, trained: Trained, evaluated: Evaluated) -> Registered:
    """Log the best candidate's pipeline in its own run and register it as a new version."""
    import mlflow

    with recorded_failure(settings, loaded.log_id):
        client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        best = trained.candidate(evaluated.best)
        pipeline = load_candidate(best.model_path)
        training, _ = _split_frames(data.read_split(loaded.path))
        x_example, _ = data.features_and_labels(training.head(5))
        with mlflow.start_run(run_id=best.run_id):
            version = registry.log_and_register(
                pipeline,
                x_example,
                settings.model_name,
                tags={
                    "candidate": best.name,
                    "training_log_id": str(loaded.log_id),
                    "parent_run_id": trained.parent_run_id,
                    "training_rows": str(loaded.rows),
                    "data_digest": loaded.digest,
                    TAG_MODEL_PARAMS: json.dumps(best.params, sort_keys=True),
                    TAG_SEARCH_TRIALS: best.search_trials,
                    TAG_SEARCH_CPU_SECONDS: f"{best.search_cpu_seconds:.1f}",
                    TAG_TRAINING_CPU_SECONDS: f"{best.cpu_seconds:.1f}",
                },
            )
        gate.update(_engine(settings), loaded.log_id, mlflow_run_id=best.run_id, model_version=version)
        tracking.log_learning_curve(client, settings.model_name, trained.parent_run_id, loaded.folder)
        return Registered(version, best.run_id, best.name)


def _champion_scorer(settings: Settings, x_eval, y_eval):
    def score(version: str) -> float:
        # Our loader (skops, our trusted types), never the format the registered model declares.
        model = model_loading.load_registered_model(settings.model_name, version, settings.mlflow_tracking_uri)
        with _limited_threads():
            return evaluation.evaluate(model, x_eval, y_eval).score(settings.primary_metric)

    return score


def promote_step(
    settings: Settings, loaded: Loaded, evaluated: Evaluated, registered: Registered, run_id: str | None = None
) -> Promoted:
    """Champion/challenger on the same evaluation rows, as a compare-and-set (recorded in the history)."""
    with recorded_failure(settings, loaded.log_id):
        client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        engine = _engine(settings)
        x_eval, y_eval = _evaluation_rows(loaded)
        decision = promotion.decide(
            engine,
            client,
            settings.model_name,
            registered.version,
            evaluated.score,
            _champion_scorer(settings, x_eval, y_eval),
            settings.primary_metric,
            settings.promotion_margin,
            decided_by=run_id or history.cli_actor(),
            policy=settings.promotion_policy,
        )
        champion_score = "n/a" if decision.champion_score is None else f"{decision.champion_score:.4f}"
        gate.update(
            engine,
            loaded.log_id,
            status=TrainingStatus.TRAINED,
            decision=decision.decision,
            primary_metric=decision.candidate_score,
            champion_metric=decision.champion_score,
            detail=(
                (f"{loaded.trigger}; " if loaded.trigger else "")
                + f"{registered.candidate} -> version {decision.version}: {decision.decision} "
                f"({decision.metric} {decision.candidate_score:.4f} vs champion "
                f"{decision.previous_champion or 'none'} {champion_score})"
            ),
        )
        return Promoted(
            decision.version,
            decision.decision,
            decision.candidate_score,
            decision.champion_score,
            decision.previous_champion,
        )


# -- explain -------------------------------------------------------------------------------


def explain_step(settings: Settings, loaded: Loaded, trained: Trained, evaluated: Evaluated) -> None:
    """The best candidate's permutation importance, on its run; then the training's work folder goes.

    Why after promotion: its predictions (36 of 2,000 rows then) took most
    of the evaluate step with large boosted models, up to 4 minutes, time a
    new champion waited for before serving (``evaluation.feature_importance``
    now predicts a third of those rows).  A failure here fails the
    task, not the training: the version is registered and promoted already.
    """
    tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
    best = trained.candidate(evaluated.best)
    x_eval, y_eval = _evaluation_rows(loaded)
    with _limited_threads():
        importance = evaluation.feature_importance(
            load_candidate(best.model_path), x_eval, y_eval, settings.random_seed
        )
    tracking.log_importance(best.run_id, importance, loaded.folder / best.name)
    shutil.rmtree(loaded.folder, ignore_errors=True)


# -- everything in one process ------------------------------------------------------------


def run_training(settings: Settings, force: bool = False, run_id: str | None = None) -> TrainingOutcome:
    """Gate, load, check, train, evaluate, register, promote and explain (``forestops train``)."""
    decision = gate_step(settings, force, run_id)
    if not decision.train:
        return TrainingOutcome(decision)
    loaded = load_step(settings, decision)
    check_step(settings, loaded)
    trained = train_step(settings, loaded, run_id)
    evaluated = evaluate_step(settings, loaded, trained)
    registered = register_step(settings, loaded, trained, evaluated)
    promoted = promote_step(settings, loaded, evaluated, registered, run_id)
    explain_step(settings, loaded, trained, evaluated)
    return TrainingOutcome(decision, evaluated, registered, promoted)
