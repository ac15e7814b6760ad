"""The training pipeline as steps: gate, load, check, train, evaluate, register, promote.

Each step is a plain function of the settings and small values (ids, paths,
metrics), so the Airflow DAG wires them one per task and passes only those
through XCom, while ``forestops train`` and the benchmark run them in one
process via ``run_training``.  Fitted candidates travel between steps as
skops files in the training's work folder; the rows as one parquet file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from forestops import model_loading, names
from forestops.names import TrainingStatus
from forestops.settings import Settings
from forestops.storage.db import ensure_schema, make_engine
from forestops.training import candidates as cands
from forestops.training import checks, data, evaluation, gate, history, promotion, registry, search, tracking

log = logging.getLogger(__name__)

PARENT_RUN_PREFIX = "training"
DATASET_NAME = names.RAW_DATA_ASSET_NAME


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
    except Exception as error:
        if log_id is not None:
            try:
                gate.update(_engine(settings), log_id, status=TrainingStatus.FAILED, detail=str(error))
            except Exception:  # the original error matters more than the bookkeeping
                log.exception("could not record the failure of training %s", log_id)
        raise


# -- gate and load -------------------------------------------------------------


def gate_step(
    settings: Settings, force: bool = False, run_id: str | None = None, trigger: str | None = None
) -> dict[str, Any]:
    decision = gate.decide(_engine(settings), settings.retrain_min_new_rows, force, run_id, trigger)
    return decision.as_xcom()


def load_step(settings: Settings, gate_result: dict[str, Any]) -> dict[str, Any]:
    log_id = gate_result["log_id"]
    with recorded_failure(settings, log_id):
        engine = _engine(settings)
        loaded = data.load_split(
            engine, work_dir(settings, log_id), settings.evaluation_percent, gate_result.get("max_raw_id")
        )
        gate.update(engine, log_id, rows_used=loaded.rows, max_raw_id=loaded.max_raw_id)
        return {**loaded.as_xcom(), "log_id": log_id, "trigger": gate_result.get("trigger")}


def check_step(settings: Settings, loaded: dict[str, Any]) -> dict[str, Any]:
    with recorded_failure(settings, loaded["log_id"]):
        report = checks.check_rows(data.read_split(loaded["path"]), settings.training_min_rows)
        Path(loaded["path"]).with_name("data_report.json").write_text(report.to_json())
        log.info("data checks: %s", "passed" if report.passed else "FAILED")
        checks.require_passing(report)
        return {"passed": True, "warnings": report.warnings, "report_path": str(Path(loaded["path"]).parent)}


# -- train -----------------------------------------------------------------------


def _split_frames(frame):
    training = frame[frame[data.SPLIT_COLUMN] == data.TRAINING].reset_index(drop=True)
    evaluation_rows = frame[frame[data.SPLIT_COLUMN] == data.EVALUATION].reset_index(drop=True)
    return training, evaluation_rows


def _search_params(settings: Settings, name: str, training, budget: float) -> search.SearchResult | None:
    if budget <= 0 or name not in cands.STRONG_CANDIDATES:
        return None
    inside = data.validation_mask(training["row_hash"])
    if inside.all() or not inside.any():
        return None
    x_fit, y_fit = data.features_and_labels(training[~inside])
    x_val, y_val = data.features_and_labels(training[inside])
    return search.search(name, x_fit, y_fit, x_val, y_val, budget, settings.random_seed, settings.class_weight_power)


def _limited_threads():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=cands.OPENMP_THREADS)


def train_step(settings: Settings, loaded: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Fit every candidate (searching the strong ones) and log one child run each."""
    import mlflow
    import skops.io

    with recorded_failure(settings, loaded["log_id"]):
        tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        to_fit = candidate_names(settings)
        frame = data.read_split(loaded["path"])
        training, evaluation_rows = _split_frames(frame)
        x_train, y_train = data.features_and_labels(training)
        strong = [n for n in to_fit if n in cands.STRONG_CANDIDATES]
        budget = settings.search_seconds / len(strong) if strong else 0.0
        common_tags = {
            names.TAG_AIRFLOW_RUN_ID: run_id or "",
            names.TAG_CODE_VERSION: tracking.code_version(),
            "training_log_id": str(loaded["log_id"]),
        }
        folder = Path(loaded["path"]).parent
        results: dict[str, Any] = {}
        with mlflow.start_run(run_name=f"{PARENT_RUN_PREFIX}-{loaded['log_id']}", tags=common_tags) as parent:
            database = settings.raw_database_url.rsplit("/", 1)[-1].split("?")[0]
            tracking.log_dataset(
                training, "training", database, loaded["digest"], loaded["batch_numbers"], DATASET_NAME
            )
            tracking.log_dataset(
                evaluation_rows, "evaluation", database, loaded["digest"], loaded["batch_numbers"], DATASET_NAME
            )
            mlflow.log_params(
                {
                    "candidates": ",".join(to_fit),
                    "search_seconds": settings.search_seconds,
                    "evaluation_percent": settings.evaluation_percent,
                    "class_weight_power": settings.class_weight_power,
                    "primary_metric": settings.primary_metric,
                }
            )
            mlflow.log_metrics(
                {"rows": loaded["rows"], "training_rows": len(training), "evaluation_rows": len(evaluation_rows)}
            )
            report_file = folder / "data_report.json"
            if report_file.exists():
                mlflow.log_artifact(str(report_file))
            for name in to_fit:
                with mlflow.start_run(run_name=name, nested=True, tags={**common_tags, "candidate": name}) as child:
                    started = time.perf_counter()
                    with _limited_threads():
                        found = _search_params(settings, name, training, budget)
                        params = found.params if found else {}
                        pipeline = cands.build_pipeline(name, params, seed=settings.random_seed)
                        cands.fit_pipeline(pipeline, x_train, y_train, settings.class_weight_power)
                    seconds = time.perf_counter() - started
                    model_params = pipeline.named_steps["model"].get_params()
                    mlflow.log_params(
                        {f"model_{k}": v for k, v in model_params.items() if not callable(v) and k != "callbacks"}
                    )
                    metrics = {"training_seconds": seconds, "training_rows": float(len(training))}
                    if found:
                        metrics.update(
                            search_trials=found.trials,
                            search_seconds=found.seconds,
                            search_validation_f1_macro=found.validation_f1_macro,
                        )
                    mlflow.log_metrics(metrics)
                    model_path = folder / f"{name}.skops"
                    skops.io.dump(pipeline, model_path)
                    results[name] = {"run_id": child.info.run_id, "model_path": str(model_path), "seconds": seconds}
                    log.info("trained %s on %d rows in %.1fs", name, len(training), seconds)
        return {"parent_run_id": parent.info.run_id, "candidates": results}


def load_candidate(path: str | Path):
    import skops.io

    return skops.io.load(path, trusted=list(registry.TRUSTED_TYPES))


# -- evaluate ----------------------------------------------------------------------


def evaluate_step(settings: Settings, loaded: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """Score each candidate on the evaluation rows, log metrics and artefacts, pick the best."""
    import mlflow

    with recorded_failure(settings, loaded["log_id"]):
        tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        _, evaluation_rows = _split_frames(data.read_split(loaded["path"]))
        x_eval, y_eval = data.features_and_labels(evaluation_rows)
        metric = settings.primary_metric
        scores: dict[str, dict[str, float]] = {}
        folder = Path(loaded["path"]).parent
        for name, info in trained["candidates"].items():
            pipeline = load_candidate(info["model_path"])
            with _limited_threads():
                result = evaluation.evaluate(pipeline, x_eval, y_eval)
                importance = evaluation.feature_importance(pipeline, x_eval, y_eval, settings.random_seed)
            out = folder / name
            out.mkdir(exist_ok=True)
            with mlflow.start_run(run_id=info["run_id"]):
                mlflow.log_metrics(result.metrics)
                files = [
                    evaluation.write_confusion_matrix(
                        result.confusion, out / names.CONFUSION_MATRIX_FILE, f"{name} on evaluation rows"
                    ),
                    evaluation.write_report(result, out / names.REPORT_FILE),
                    *evaluation.write_importance(importance, out),
                ]
                for file in files:
                    mlflow.log_artifact(str(file))
            scores[name] = {"accuracy": result.metrics["accuracy"], "f1_macro": result.metrics["f1_macro"]}
            log.info("%s: accuracy %.4f, macro-F1 %.4f", name, scores[name]["accuracy"], scores[name]["f1_macro"])
        best = max(scores, key=lambda n: (scores[n][metric], scores[n]["accuracy"]))
        with mlflow.start_run(run_id=trained["parent_run_id"]):
            mlflow.set_tag(names.TAG_BEST_CANDIDATE, best)
            mlflow.log_metrics({f"best_{k}": v for k, v in scores[best].items()})
            for name, values in scores.items():
                mlflow.log_metrics({f"{name}_{k}": v for k, v in values.items()})
        return {"best": best, "metric": metric, "score": scores[best][metric], "scores": scores}


# -- register and promote --------------------------------------------------------------


def register_step(
    settings: Settings, loaded: dict[str, Any], trained: dict[str, Any], evaluated: dict[str, Any]
) -> dict[str, Any]:
    """Log the best candidate's pipeline in its own run and register it as a new version."""
    import mlflow

    with recorded_failure(settings, loaded["log_id"]):
        tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        best = evaluated["best"]
        info = trained["candidates"][best]
        pipeline = load_candidate(info["model_path"])
        training, _ = _split_frames(data.read_split(loaded["path"]))
        x_example, _ = data.features_and_labels(training.head(5))
        with mlflow.start_run(run_id=info["run_id"]):
            version = registry.log_and_register(
                pipeline,
                x_example,
                settings.model_name,
                tags={
                    "candidate": best,
                    "training_log_id": loaded["log_id"],
                    "parent_run_id": trained["parent_run_id"],
                    "training_rows": loaded["rows"],
                    "data_digest": loaded["digest"],
                },
            )
        gate.update(_engine(settings), loaded["log_id"], mlflow_run_id=info["run_id"], model_version=version)
        return {"version": version, "run_id": info["run_id"], "candidate": best}


def _champion_scorer(settings: Settings, x_eval, y_eval):
    def score(version: str) -> float:
        # Our loader (skops, our trusted types), never the format the registered model declares.
        model = model_loading.load_registered_model(settings.model_name, version, settings.mlflow_tracking_uri)
        with _limited_threads():
            return evaluation.evaluate(model, x_eval, y_eval).score(settings.primary_metric)

    return score


def promote_step(
    settings: Settings,
    loaded: dict[str, Any],
    evaluated: dict[str, Any],
    registered: dict[str, Any],
    run_id: str | None = None,
) -> dict[str, Any]:
    """Champion/challenger on the same evaluation rows, as a compare-and-set (recorded in the history)."""
    with recorded_failure(settings, loaded["log_id"]):
        client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        engine = _engine(settings)
        _, evaluation_rows = _split_frames(data.read_split(loaded["path"]))
        x_eval, y_eval = data.features_and_labels(evaluation_rows)
        decision = promotion.decide(
            engine,
            client,
            settings.model_name,
            registered["version"],
            evaluated["score"],
            _champion_scorer(settings, x_eval, y_eval),
            settings.primary_metric,
            settings.promotion_margin,
            decided_by=run_id or history.cli_actor(),
            policy=settings.promotion_policy,
        )
        gate.update(
            engine,
            loaded["log_id"],
            status=TrainingStatus.TRAINED,
            decision=decision.decision,
            primary_metric=decision.candidate_score,
            champion_metric=decision.champion_score,
            detail=(
                (f"{loaded['trigger']}; " if loaded.get("trigger") else "")
                + f"{registered['candidate']} -> version {decision.version}: {decision.decision} "
                f"({decision.metric} {decision.candidate_score:.4f} vs champion "
                f"{decision.previous_champion or 'none'} "
                f"{'n/a' if decision.champion_score is None else f'{decision.champion_score:.4f}'})"
            ),
        )
        shutil.rmtree(Path(loaded["path"]).parent, ignore_errors=True)
        return {
            "version": decision.version,
            "decision": decision.decision,
            "candidate_score": decision.candidate_score,
            "champion_score": decision.champion_score,
            "previous_champion": decision.previous_champion,
        }


# -- everything in one process ------------------------------------------------------------


def run_training(settings: Settings, force: bool = False, run_id: str | None = None) -> dict[str, Any]:
    """Gate, load, check, train, evaluate, register and promote (``forestops train``)."""
    decision = gate_step(settings, force, run_id)
    if not decision["train"]:
        return {"trained": False, "gate": decision}
    loaded = load_step(settings, decision)
    check_step(settings, loaded)
    trained = train_step(settings, loaded, run_id)
    evaluated = evaluate_step(settings, loaded, trained)
    registered = register_step(settings, loaded, trained, evaluated)
    promoted = promote_step(settings, loaded, evaluated, registered, run_id)
    return {"trained": True, "gate": decision, "evaluated": evaluated, "registered": registered, "promoted": promoted}
