"""The candidate models: one unfitted scikit-learn Pipeline per name.

Every pipeline starts with ``FeatureCoercer`` and does its own encoding, so
it accepts ``schema.feature_frame(...)`` output (or the same columns as raw
strings) and serving needs nothing but the logged model.  Thread counts are
kept low on purpose: the stack shares a small machine, and OpenMP libraries
(LightGBM, HistGradientBoosting) busy-wait; with two threads on two busy
cores a LightGBM fit measured 16x slower than with one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from forestops import schema
from forestops.training.features import FeatureCoercer

# Threads for OpenMP-based estimators (LightGBM, HistGradientBoosting) and
# for the random forest's tree-parallel joblib workers.
OPENMP_THREADS = 1
FOREST_JOBS = 2

LIGHTGBM = "lightgbm"
HIST_GRADIENT_BOOSTING = "hist_gradient_boosting"
RANDOM_FOREST = "random_forest"
BASELINE = "baseline"

# Defaults tuned on this data set (see benchmarks/bench_training.py); the
# search starts from them and may only improve on them.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    LIGHTGBM: {
        "n_estimators": 600,
        "learning_rate": 0.1,
        "num_leaves": 127,
        "min_child_samples": 10,
        "subsample": 0.9,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "cat_smooth": 10.0,
    },
    HIST_GRADIENT_BOOSTING: {
        "max_iter": 400,
        "learning_rate": 0.15,
        "max_leaf_nodes": 127,
        "min_samples_leaf": 10,
        "l2_regularization": 1.0,
    },
    RANDOM_FOREST: {"n_estimators": 100, "min_samples_leaf": 1, "max_features": "sqrt"},
    BASELINE: {"C": 1.0},
}

# The candidates worth a hyperparameter search (the others are references).
STRONG_CANDIDATES: tuple[str, ...] = (LIGHTGBM, HIST_GRADIENT_BOOSTING)


def _lightgbm(params: dict[str, Any], seed: int):
    from lightgbm import LGBMClassifier

    # pandas categoricals are used natively (categorical_feature="auto").
    return LGBMClassifier(objective="multiclass", n_jobs=OPENMP_THREADS, random_state=seed, verbose=-1, **params)


def _hist_gradient_boosting(params: dict[str, Any], seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    # The search passes early_stopping=True (with a validation set); anything else fits without it.
    options = {"categorical_features": "from_dtype", "early_stopping": False, "random_state": seed, **params}
    return HistGradientBoostingClassifier(**options)


def _one_hot_encoder(dense: bool = True):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    encoder = OneHotEncoder(
        categories=[list(schema.CATEGORIES[c]) for c in schema.CATEGORICAL_COLUMNS],
        handle_unknown="ignore",
        sparse_output=not dense,
    )
    return ColumnTransformer(
        [("categories", encoder, list(schema.CATEGORICAL_COLUMNS))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )


def _random_forest(params: dict[str, Any], seed: int):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_jobs=FOREST_JOBS, random_state=seed, **params)


def _baseline(params: dict[str, Any], seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300, random_state=seed, **params)


_BUILDERS: dict[str, Callable[[dict[str, Any], int], Any]] = {
    LIGHTGBM: _lightgbm,
    HIST_GRADIENT_BOOSTING: _hist_gradient_boosting,
    RANDOM_FOREST: _random_forest,
    BASELINE: _baseline,
}
CANDIDATES: tuple[str, ...] = tuple(_BUILDERS)


def build_pipeline(candidate: str, params: dict[str, Any] | None = None, seed: int = 42) -> Pipeline:
    """An unfitted pipeline for ``candidate``; ``params`` override its defaults."""
    if candidate not in _BUILDERS:
        raise ValueError(f"unknown candidate {candidate!r}; expected one of {', '.join(CANDIDATES)}")
    merged = {**DEFAULT_PARAMS[candidate], **(params or {})}
    model = _BUILDERS[candidate](merged, seed)
    steps: list[tuple[str, Any]] = [("features", FeatureCoercer())]
    if candidate == RANDOM_FOREST:
        steps.append(("encode", _one_hot_encoder()))
    elif candidate == BASELINE:
        from sklearn.preprocessing import StandardScaler

        steps += [("encode", _one_hot_encoder()), ("scale", StandardScaler())]
    steps.append(("model", model))
    return Pipeline(steps)


def class_sample_weights(labels, power: float = 0.5) -> np.ndarray:
    """Per-row weights that lift rare classes: (n / (k * n_class)) ** power.

    ``power=1`` is scikit-learn's "balanced"; the default square root helps
    the rare classes (Cottonwood/Willow is under 0.5% of rows) without
    trading away much accuracy on the common ones.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    per_class = (len(labels) / (len(classes) * counts)) ** power
    lookup = dict(zip(classes.tolist(), per_class.tolist(), strict=True))
    return np.array([lookup[label] for label in labels.tolist()], dtype=float)


def fit_pipeline(
    pipeline: Pipeline,
    features,
    labels,
    class_weight_power: float = 0.5,
    lightgbm_callbacks: list | None = None,
    lightgbm_threads: int = OPENMP_THREADS,
) -> Pipeline:
    """Fit with rare-class weights passed to the final estimator (and LightGBM's callbacks to LightGBM).

    ``lightgbm_threads`` is for this fit only: the fitted model keeps
    ``OPENMP_THREADS``, so whoever loads it later predicts as every other
    version does.
    """
    fit_params: dict[str, Any] = {}
    if class_weight_power:
        fit_params["model__sample_weight"] = class_sample_weights(labels, class_weight_power)
    is_lightgbm = type(pipeline.named_steps["model"]).__name__ == "LGBMClassifier"
    if lightgbm_callbacks and is_lightgbm:
        fit_params["model__callbacks"] = list(lightgbm_callbacks)
    if not is_lightgbm:
        return pipeline.fit(features, labels, **fit_params)
    pipeline.set_params(model__n_jobs=lightgbm_threads)
    try:
        return pipeline.fit(features, labels, **fit_params)
    finally:
        pipeline.set_params(model__n_jobs=OPENMP_THREADS)
