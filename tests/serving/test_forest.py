"""The compiled forest against LightGBM's own predict, on the decisions our requests never reach.

The service's requests are whole numbers and known category codes (the
parity test in ``test_predictors`` covers those on real rows); these models
are fitted on data with missing values, zeros and unseen or negative
categories so that every branch of LightGBM's split rules is exercised.
"""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest

from forestops.serving.forest import (
    CATEGORY_MAP,
    CATEGORY_SET,
    MAX_READ_AHEAD_LINES,
    MISSING_NAN,
    MISSING_ZERO,
    READ_AHEAD_TREES,
    RECORDS_PER_LINE,
    Forest,
    Unsupported,
    _lines_spanned,
)

pytestmark = pytest.mark.unit


def _data(rng, n=3_000):
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.integers(0, 5, size=n).astype(float),  # many exact zeros
            rng.integers(0, 30, size=n).astype(float),  # a category column
            rng.uniform(-3, 3, size=n),
        ]
    )
    y = (x[:, 0] > 0).astype(int) + (x[:, 2] % 3 == 0).astype(int) + (x[:, 3] > 1).astype(int)
    x[rng.random(n) < 0.1, 0] = np.nan  # missing numbers
    return x, y


def _fit(x, y, **params):
    settings = {"objective": "multiclass", "num_class": 4, "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1}
    return lightgbm.train({**settings, **params}, lightgbm.Dataset(x, y, categorical_feature=[2]), num_boost_round=40)


def _hostile_rows(rng, n=2_000):
    x, _ = _data(rng, n)
    x[rng.random(n) < 0.05, 1] = np.nan
    x[rng.random(n) < 0.05, 3] = 0.0
    x[rng.random(n) < 0.05, 3] = 1e-40  # inside LightGBM's zero threshold
    x[rng.random(n) < 0.05, 2] = np.nan  # a missing category
    x[rng.random(n) < 0.05, 2] = -1.0  # a negative category
    x[rng.random(n) < 0.05, 2] = 200.0  # a category never seen
    return x


@pytest.mark.parametrize(
    "params",
    [{}, {"zero_as_missing": True}, {"use_missing": False}, {"max_cat_to_onehot": 64}],
    ids=["nan-missing", "zero-as-missing", "no-missing", "one-hot-categories"],
)
def test_the_forest_gives_lightgbm_s_probabilities_on_hostile_rows(params):
    rng = np.random.default_rng(3)
    booster = _fit(*_data(rng), **params)
    forest = Forest.from_lightgbm(booster)
    x = _hostile_rows(rng)
    want = booster.predict(x)
    got = forest.predict_proba(x)
    assert got.shape == want.shape == (len(x), 4)
    assert np.max(np.abs(got - want)) <= 1e-12
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


def test_the_split_rules_under_test_are_really_in_the_models():
    """The cases above only prove something if the fitted trees use these rules."""
    rng = np.random.default_rng(3)
    kinds = set(Forest.from_lightgbm(_fit(*_data(rng))).kinds.tolist())
    zero = set(Forest.from_lightgbm(_fit(*_data(rng), zero_as_missing=True)).kinds.tolist())
    assert {CATEGORY_SET, MISSING_NAN} <= kinds and MISSING_ZERO in zero


def test_values_at_and_beside_every_threshold_decide_as_lightgbm_does():
    """Thresholds are compared by rank: a value equal to one, or the next double either side, must not slip."""
    rng = np.random.default_rng(4)
    booster = _fit(*_data(rng))
    forest = Forest.from_lightgbm(booster)
    numerical = [0, 1, 3]
    x = _hostile_rows(rng, 600)
    for feature in numerical:
        edges = forest.thresholds[feature, : forest.threshold_counts[feature]]
        assert len(edges) > 3
        near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), [-np.inf, np.inf]])
        x[:, feature] = rng.choice(near, size=len(x))
    np.testing.assert_array_equal(forest.predict_proba(x).argmax(axis=1), booster.predict(x).argmax(axis=1))
    assert np.max(np.abs(forest.predict_proba(x) - booster.predict(x))) <= 1e-12


def test_rows_split_across_threads_get_the_same_answers():
    rng = np.random.default_rng(5)
    forest = Forest.from_lightgbm(_fit(*_data(rng)))
    x = _hostile_rows(rng, 1_001)
    np.testing.assert_array_equal(forest.predict_proba(x, threads=3), forest.predict_proba(x, threads=1))


def test_trees_that_are_a_lone_leaf_are_summed_too():
    rng = np.random.default_rng(7)
    x, y = _data(rng, 400)
    x[:, 1:] = 1.0  # nothing to split on but the first column, and only for the first classes
    y = np.where(x[:, 0] > 0, 1, 0)
    y[:30] = rng.integers(2, 4, size=30)
    booster = _fit(x, y, min_data_in_leaf=40, min_gain_to_split=1.0)
    forest = Forest.from_lightgbm(booster)
    assert np.any(forest.tree_splits < 0) and np.any(forest.tree_splits >= 0)
    x = _hostile_rows(rng)
    assert np.max(np.abs(forest.predict_proba(x) - booster.predict(x))) <= 1e-12


def test_the_read_ahead_reaches_every_cache_line_of_a_tree_however_it_is_aligned():
    for records in range(1, 300):
        lines = _lines_spanned(records)
        for offset in range(RECORDS_PER_LINE):  # where the tree's first record sits in its line
            spanned = {(offset + i) // RECORDS_PER_LINE for i in range(records)}
            read = {(offset + RECORDS_PER_LINE * line) // RECORDS_PER_LINE for line in range(lines)}
            assert spanned <= read, (records, offset)


@pytest.mark.parametrize(
    ("rounds", "num_leaves"),
    [(1, 15), (READ_AHEAD_TREES // 4 + 1, 15), (4, 700)],
    ids=["fewer-trees-than-the-read-ahead", "just-more-trees", "trees-beyond-the-read-ahead-cap"],
)
def test_forests_of_any_size_give_lightgbm_s_probabilities(rounds, num_leaves):
    rng = np.random.default_rng(13)
    x, y = _data(rng)
    settings = {"objective": "multiclass", "num_class": 4, "num_leaves": num_leaves, "min_data_in_leaf": 1}
    train = lightgbm.Dataset(x, y, categorical_feature=[2])
    booster = lightgbm.train({**settings, "min_sum_hessian_in_leaf": 0, "verbose": -1}, train, rounds)
    forest = Forest.from_lightgbm(booster)
    assert len(forest.tree_splits) == rounds * 4
    if num_leaves > 8 * MAX_READ_AHEAD_LINES:
        assert forest.read_ahead_lines == MAX_READ_AHEAD_LINES
    x = _hostile_rows(rng)
    assert np.max(np.abs(forest.predict_proba(x) - booster.predict(x))) <= 1e-12


def test_early_stopped_boosters_are_read_at_their_best_round():
    rng = np.random.default_rng(9)
    x, y = _data(rng)
    train = lightgbm.Dataset(x[:2_000], y[:2_000], categorical_feature=[2])
    valid = lightgbm.Dataset(x[2_000:], y[2_000:], reference=train)
    params = {"objective": "multiclass", "num_class": 4, "num_leaves": 63, "learning_rate": 0.5, "verbose": -1}
    stop = lightgbm.early_stopping(3, verbose=False)
    booster = lightgbm.train(params, train, 200, valid_sets=[valid], callbacks=[stop], keep_training_booster=True)
    assert 0 < booster.best_iteration < booster.current_iteration()
    forest = Forest.from_lightgbm(booster)
    assert len(forest.tree_splits) == booster.best_iteration * 4
    assert np.max(np.abs(forest.predict_proba(x) - booster.predict(x))) <= 1e-12


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"objective": "binary"}, "objective 'binary'"),
        ({"objective": "multiclassova", "num_class": 3}, "objective 'multiclassova'"),
        ({"linear_tree": True}, "linear trees"),
    ],
)
def test_boosters_the_kernel_does_not_reproduce_are_refused_by_name(params, reason):
    rng = np.random.default_rng(11)
    x, y = _data(rng, 500)
    y = np.minimum(y, 1 if params.get("objective") == "binary" else 2)
    settings = {"objective": "multiclass", "num_class": 3, "verbose": -1, **params}
    if settings["objective"] == "binary":
        settings.pop("num_class")
    booster = lightgbm.train(settings, lightgbm.Dataset(np.nan_to_num(x), y), num_boost_round=5)
    with pytest.raises(Unsupported, match=reason):
        Forest.from_lightgbm(booster)


def test_a_matrix_of_the_wrong_width_is_refused():
    forest = Forest.from_lightgbm(_fit(*_data(np.random.default_rng(1))))
    with pytest.raises(ValueError, match="expected a matrix of 4 features"):
        forest.predict_proba(np.zeros((2, 3)))


def _sklearn_trees(model, encoded):
    """scikit-learn's own compiled tree walk on an already encoded matrix, summed as ``_raw_predict`` does."""
    known, feature_map = model._bin_mapper.make_known_categories_bitsets()
    raw = np.zeros((len(encoded), model.n_trees_per_iteration_), order="F") + model._baseline_prediction
    for round_ in model._predictors:
        for k, tree in enumerate(round_):
            raw[:, k] += tree.predict(encoded, known, feature_map, 1)
    return raw


@pytest.mark.parametrize("missing_in_training", [True, False], ids=["missing-seen", "no-missing-seen"])
def test_the_forest_gives_hist_gradient_boosting_s_scores_on_hostile_rows(missing_in_training):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(13)
    x, y = _data(rng)
    if not missing_in_training:
        x = np.nan_to_num(x)
    x[:, 2] = np.minimum(x[:, 2], 20)  # categories 0..20 in training
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, categorical_features=[2], random_state=0)
    model.fit(x, y)
    forest = Forest.from_hist_gradient_boosting(model)
    assert {CATEGORY_MAP, MISSING_NAN} == set(forest.kinds.tolist())
    # The trees see the estimator's encoded matrix (categories first, as codes); break it as a caller could.
    encoded = model._preprocessor.transform(_hostile_rows(rng)).astype(np.float64)
    encoded[rng.random(len(encoded)) < 0.05, 0] = -1.0  # a negative code
    encoded[rng.random(len(encoded)) < 0.05, 0] = 25.0  # a code the model never saw
    encoded[rng.random(len(encoded)) < 0.05, 0] = np.nan
    want = _sklearn_trees(model, encoded)
    got = forest.raw_scores(encoded)
    assert got.shape == want.shape == (len(encoded), 4)
    assert np.max(np.abs(got - want)) <= 1e-12
    x_check = _data(rng, 500)[0]
    x_check[:, 2] = np.minimum(x_check[:, 2], 20)
    proba = model._loss.predict_proba(forest.raw_scores(model._preprocessor.transform(x_check).astype(np.float64)))
    assert np.max(np.abs(proba - model.predict_proba(x_check))) <= 1e-12


def test_hist_gradient_boosting_trees_that_are_a_lone_leaf_are_summed_too():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(17)
    x, y = _data(rng, 400)
    x = np.nan_to_num(x)
    # Leaves of more than half the rows: no tree can split (scikit-learn still grows them, as lone leaves).
    model = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=201, random_state=0).fit(x, y)
    forest = Forest.from_hist_gradient_boosting(model)
    assert len(forest.tree_splits) == 5 * 4 and np.all(forest.tree_splits < 0)
    check = _data(rng, 300)[0]
    assert np.max(np.abs(model._loss.predict_proba(forest.raw_scores(check)) - model.predict_proba(check))) <= 1e-12
