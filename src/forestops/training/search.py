"""A hyperparameter search (Optuna) for the strong candidates, budgeted in CPU time.

Trials fit on the training rows minus a hash-chosen validation slice and
score macro-F1 on that slice; the evaluation rows are never seen here.

Why CPU time and not wall time: the stack shares a small machine with the
data collection, the inference service and Airflow itself, so a wall-clock
budget ran a single trial whenever the machine was busy (measured: 1 trial
in a 30 s budget).  A CPU-seconds budget buys the same exploration however
busy the machine is; a wall-clock cap (a multiple of the budget) keeps a
starved search from running for ever, and a trial cap makes runs repeatable.

Why warm starts: every training is a new study, but the last champion's
parameters are the best prior there is.  The first trials are those
parameters (when given), then the candidate's defaults, so a search can only
return something at least as good on validation as the champion's recipe
re-fitted on the new rows; the sampler explores from there.

Boosting candidates search with a generous cap on the number of rounds and
stop early on the validation slice; the rounds reached become the
parameter used for the final fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from forestops.training.candidates import (
    DEFAULT_PARAMS,
    HIST_GRADIENT_BOOSTING,
    LIGHTGBM,
    build_pipeline,
    class_sample_weights,
)

if TYPE_CHECKING:
    from forestops.training.preemption import SupersedeWatch

log = logging.getLogger(__name__)

EARLY_STOPPING_ROUNDS = 30
# The most leaves a tree may have.  The served model is every tree of every
# round: a search that chose 861 leaves (and a final fit of 600 rounds) made
# a 164 MB model that predicted 5.8 ms per row on one core, thirty times the
# serving budget, and took 7 minutes to evaluate.  255 leaves is still four
# times the default's depth of choice.
MAX_LEAVES = 255
LEAVES_PARAM = {LIGHTGBM: "num_leaves", HIST_GRADIENT_BOOSTING: "max_leaf_nodes"}
# The most boosting rounds a search trial may grow before early stopping ends it.
MAX_ROUNDS = {LIGHTGBM: 2000, HIST_GRADIENT_BOOSTING: 1000}
ROUNDS_PARAM = {LIGHTGBM: "n_estimators", HIST_GRADIENT_BOOSTING: "max_iter"}
# The most leaves per class a model may hold (rounds x leaves per tree): the
# size of what is served, scored and uploaded.  A recipe of 192 leaves at a
# learning rate of 0.045 early-stopped at 884 rounds: a 118 MB model that
# took 60 s to score 13,000 evaluation rows and 4 minutes for its
# permutation importance.  The tuned defaults hold 600 x 127 = 76,200; a
# slow learning rate that would need more rounds than this loses the
# search to a faster one instead of growing the model.
MAX_TREE_LEAVES = 100_000
# The slowest learning rate searched.  Early stopping's rounds grow as the
# rate falls and as rows grow: 0.045 chosen on 30,000 rows needed 884 rounds
# of 192 leaves on 117,000, beyond MAX_TREE_LEAVES, so a recipe chosen early
# in a cycle would be cut short by the budget at its end.
MIN_LEARNING_RATE = 0.08
# A starved search stops at this multiple of its CPU budget in wall time.
WALL_CAP_FACTOR = 6.0


@dataclass(frozen=True)
class SearchBudget:
    """How much a search may spend: CPU seconds of this process, and at most ``max_trials`` trials."""

    cpu_seconds: float
    max_trials: int | None = None

    @property
    def wall_cap_seconds(self) -> float:
        return max(self.cpu_seconds * WALL_CAP_FACTOR, 1.0)


@dataclass
class SearchResult:
    candidate: str
    params: dict[str, Any]
    validation_f1_macro: float
    trials: int
    seconds: float
    cpu_seconds: float = 0.0
    warm_started: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def _suggest(candidate: str, trial) -> dict[str, Any]:
    if candidate == LIGHTGBM:
        return {
            "learning_rate": trial.suggest_float("learning_rate", MIN_LEARNING_RATE, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 31, MAX_LEAVES, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 2, 60, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
    if candidate == HIST_GRADIENT_BOOSTING:
        return {
            "learning_rate": trial.suggest_float("learning_rate", MIN_LEARNING_RATE, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 31, MAX_LEAVES, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 60, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
        }
    raise ValueError(f"no search space for {candidate!r}")


def _fit_and_score(
    candidate: str, params: dict[str, Any], data, seed: int, weight_power: float, callbacks: Sequence = ()
) -> tuple[float, dict]:
    """Fit on the search's training part, score macro-F1 on its validation part.

    Rounds grow up to ``max_rounds`` and stop early on the validation part;
    the number of rounds reached becomes part of the returned parameters.
    """
    from sklearn.metrics import f1_score

    x_fit, y_fit, x_val, y_val = data
    build_params = {**params, ROUNDS_PARAM[candidate]: max_rounds(candidate, params)}
    if candidate == HIST_GRADIENT_BOOSTING:
        build_params.update(early_stopping=True, n_iter_no_change=EARLY_STOPPING_ROUNDS // 2)
    pipeline = build_pipeline(candidate, build_params, seed=seed)
    fit_params: dict[str, Any] = {"model__sample_weight": class_sample_weights(y_fit, weight_power)}
    if candidate == LIGHTGBM:
        from lightgbm import early_stopping

        fit_params.update(model__eval_X=(x_val,), model__eval_y=(y_val,))
        fit_params["model__callbacks"] = [early_stopping(EARLY_STOPPING_ROUNDS, verbose=False), *callbacks]
    elif candidate == HIST_GRADIENT_BOOSTING:
        # The features step is the identity on feature_frame output, so the
        # validation rows can go straight to the estimator.
        fit_params.update(model__X_val=x_val, model__y_val=y_val)
    pipeline.fit(x_fit, y_fit, **fit_params)
    chosen = dict(params)
    model = pipeline.named_steps["model"]
    if candidate == LIGHTGBM:
        chosen["n_estimators"] = int(model.best_iteration_ or model.n_estimators)
    else:
        chosen["max_iter"] = int(model.n_iter_)
    score = f1_score(y_val, pipeline.predict(x_val), average="macro")
    return float(score), chosen


def max_rounds(candidate: str, params: dict[str, Any]) -> int:
    """The most rounds ``params`` may grow: ``MAX_ROUNDS``, fewer for large trees (``MAX_TREE_LEAVES``)."""
    leaves = int(params.get(LEAVES_PARAM[candidate], DEFAULT_PARAMS[candidate][LEAVES_PARAM[candidate]]))
    return max(1, min(MAX_ROUNDS[candidate], MAX_TREE_LEAVES // max(leaves, 1)))


def within_size_budget(candidate: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the rounds brought within ``max_rounds`` (a recipe recorded before the budget)."""
    if candidate not in ROUNDS_PARAM or ROUNDS_PARAM[candidate] not in params:
        return dict(params)
    rounds = ROUNDS_PARAM[candidate]
    return {**params, rounds: min(int(params[rounds]), max_rounds(candidate, params))}


def starting_points(candidate: str, warm: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The trials to run first: the warm-start parameters, then the defaults, without repeats.

    Only the names the search space suggests are kept (a champion's recorded
    parameters also hold the rounds it reached, which the search re-decides).
    """
    points = usable_warm_points(candidate, warm)
    defaults = {k: v for k, v in DEFAULT_PARAMS[candidate].items() if k in _suggest_names(candidate)}
    return points if defaults in points else [*points, defaults]


def usable_warm_points(candidate: str, warm: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The warm-start parameters that name every searched parameter, restricted to those, without repeats."""
    names = _suggest_names(candidate)
    leaves = LEAVES_PARAM.get(candidate)
    points: list[dict[str, Any]] = []
    for params in warm:
        point = {k: v for k, v in params.items() if k in names}
        if leaves in point:  # a recipe from a wider space, brought within today's
            point[leaves] = min(int(point[leaves]), MAX_LEAVES)
        if len(point) == len(names) and point not in points:
            points.append(point)
    return points


def search(
    candidate: str,
    x_fit,
    y_fit: np.ndarray,
    x_val,
    y_val: np.ndarray,
    budget: SearchBudget | float,
    seed: int = 42,
    weight_power: float = 0.5,
    warm_start: Sequence[dict[str, Any]] = (),
    watch: SupersedeWatch | None = None,
) -> SearchResult:
    """Search ``candidate``'s parameters within ``budget``, starting from ``warm_start`` and the defaults.

    A bare number is a budget in CPU seconds.  ``watch`` ends the search (by
    raising ``Superseded``) before a trial or inside a LightGBM fit when the
    training has been superseded (``forestops.training.preemption``).
    """
    import optuna

    if not isinstance(budget, SearchBudget):
        budget = SearchBudget(cpu_seconds=float(budget))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started, cpu_started = time.perf_counter(), time.process_time()
    data = (x_fit, y_fit, x_val, y_val)
    history: list[dict[str, Any]] = []

    callbacks = [watch.lightgbm_callback()] if watch is not None else []

    def objective(trial) -> float:
        if watch is not None:
            watch.check()
        params = {**DEFAULT_PARAMS[candidate], **_suggest(candidate, trial)}
        score, chosen = _fit_and_score(candidate, params, data, seed, weight_power, callbacks)
        trial.set_user_attr("params", chosen)
        history.append({"trial": trial.number, "f1_macro": score, "params": chosen})
        return score

    def within_budget(study, _trial) -> None:
        spent = time.process_time() - cpu_started
        if spent >= budget.cpu_seconds or (budget.max_trials and len(study.trials) >= budget.max_trials):
            study.stop()

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    points = starting_points(candidate, warm_start)
    warm_started = bool(usable_warm_points(candidate, warm_start))  # the first trial is the given recipe
    for point in points:
        study.enqueue_trial(point, skip_if_exists=True)
    study.optimize(objective, timeout=budget.wall_cap_seconds, callbacks=[within_budget])
    best = study.best_trial
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert best.value is not None  # the best trial is a completed one
    log.info(
        "%s search: %d trials, %.1f CPU-s in %.1f s, best validation macro-F1 %.4f%s",
        candidate,
        len(study.trials),
        cpu,
        elapsed,
        best.value,
        " (warm-started)" if warm_started else "",
    )
    return SearchResult(
        candidate=candidate,
        params=best.user_attrs["params"],
        validation_f1_macro=float(best.value),
        trials=len(study.trials),
        seconds=elapsed,
        cpu_seconds=cpu,
        warm_started=warm_started,
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
