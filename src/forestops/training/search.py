"""A time-boxed hyperparameter search (Optuna) for the strong candidates.

Trials fit on the training rows minus a hash-chosen validation slice and
score macro-F1 on that slice; the evaluation rows are never seen here.  The
first trial is always the candidate's defaults, so the search can only
return something at least as good (on validation) as not searching.
Optuna checks its timeout between trials, so a search may overrun the
budget by at most one trial.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forestops.training.candidates import (
    DEFAULT_PARAMS,
    HIST_GRADIENT_BOOSTING,
    LIGHTGBM,
    build_pipeline,
    class_sample_weights,
)

log = logging.getLogger(__name__)

EARLY_STOPPING_ROUNDS = 30


@dataclass
class SearchResult:
    candidate: str
    params: dict[str, Any]
    validation_f1_macro: float
    trials: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _suggest(candidate: str, trial) -> dict[str, Any]:
    if candidate == LIGHTGBM:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 31, 255, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 60, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
    if candidate == HIST_GRADIENT_BOOSTING:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 31, 255, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 60, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
        }
    raise ValueError(f"no search space for {candidate!r}")


def _fit_and_score(candidate: str, params: dict[str, Any], data, seed: int, weight_power: float) -> tuple[float, dict]:
    """Fit on the search's training part, score macro-F1 on its validation part.

    LightGBM stops early on the validation part and the number of trees it
    reached becomes part of the returned parameters.
    """
    from sklearn.metrics import f1_score

    x_fit, y_fit, x_val, y_val = data
    build_params = dict(params)
    if candidate == HIST_GRADIENT_BOOSTING:
        build_params.update(early_stopping=True, n_iter_no_change=EARLY_STOPPING_ROUNDS // 2)
    pipeline = build_pipeline(candidate, build_params, seed=seed)
    fit_params: dict[str, Any] = {"model__sample_weight": class_sample_weights(y_fit, weight_power)}
    if candidate == LIGHTGBM:
        from lightgbm import early_stopping

        fit_params.update(model__eval_X=(x_val,), model__eval_y=(y_val,))
        fit_params["model__callbacks"] = [early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]
    elif candidate == HIST_GRADIENT_BOOSTING:
        # The features step is the identity on feature_frame output, so the
        # validation rows can go straight to the estimator.
        fit_params.update(model__X_val=x_val, model__y_val=y_val)
    pipeline.fit(x_fit, y_fit, **fit_params)
    chosen = dict(params)
    model = pipeline.named_steps["model"]
    if candidate == LIGHTGBM and model.best_iteration_:
        chosen["n_estimators"] = int(model.best_iteration_)
    elif candidate == HIST_GRADIENT_BOOSTING:
        chosen["max_iter"] = int(model.n_iter_)
    score = f1_score(y_val, pipeline.predict(x_val), average="macro")
    return float(score), chosen


def search(
    candidate: str,
    x_fit,
    y_fit: np.ndarray,
    x_val,
    y_val: np.ndarray,
    seconds: float,
    seed: int = 42,
    weight_power: float = 0.5,
) -> SearchResult:
    """Search ``candidate``'s parameters for about ``seconds`` (defaults first)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    data = (x_fit, y_fit, x_val, y_val)
    history: list[dict[str, Any]] = []

    def objective(trial) -> float:
        params = {**DEFAULT_PARAMS[candidate], **_suggest(candidate, trial)}
        score, chosen = _fit_and_score(candidate, params, data, seed, weight_power)
        trial.set_user_attr("params", chosen)
        history.append({"trial": trial.number, "f1_macro": score, "params": chosen})
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    defaults = {k: v for k, v in DEFAULT_PARAMS[candidate].items() if k in _suggest_names(candidate)}
    study.enqueue_trial(defaults)
    study.optimize(objective, timeout=max(seconds, 0.001), n_trials=None if seconds > 0 else 1)
    best = study.best_trial
    elapsed = time.perf_counter() - started
    log.info(
        "%s search: %d trials in %.1fs, best validation macro-F1 %.4f",
        candidate,
        len(study.trials),
        elapsed,
        best.value,
    )
    return SearchResult(
        candidate=candidate,
        params=best.user_attrs["params"],
        validation_f1_macro=float(best.value),
        trials=len(study.trials),
        seconds=elapsed,
        history=history,
    )


def _suggest_names(candidate: str) -> set[str]:
    """The parameter names a candidate's search space suggests."""
    names: set[str] = set()

    class _Recorder:
        def __getattr__(self, name):
            def suggest(param, *args, **kwargs):
                names.add(param)
                low = args[0] if args else kwargs.get("low")
                return low

            return suggest

    _suggest(candidate, _Recorder())
    return names
