"""Pure training logic: pipelines, weights, splits, checks, serialisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io

from forestops import schema
from forestops.names import CONFUSION_MATRIX_FILE, REPORT_FILE
from forestops.training import candidates, checks, data, evaluation, registry
from tests.support.data import generate_rows

pytestmark = pytest.mark.unit

SMALL = {
    candidates.LIGHTGBM: {"n_estimators": 20},
    candidates.HIST_GRADIENT_BOOSTING: {"max_iter": 20},
    candidates.RANDOM_FOREST: {"n_estimators": 10},
    candidates.BASELINE: {},
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rows = [schema.normalise_raw_row(r) for r in generate_rows(1500, seed=3)]
    out = pd.DataFrame(rows)
    out["row_hash"] = [schema.row_digest(r) for r in rows]
    return out


@pytest.fixture(scope="module")
def fitted(frame) -> dict:
    x, y = schema.feature_frame(frame), frame[schema.LABEL].to_numpy()
    return {name: candidates.fit_pipeline(candidates.build_pipeline(name, SMALL[name]), x, y) for name in SMALL}


def test_every_candidate_learns_and_predicts_probabilities(fitted, frame):
    x, y = schema.feature_frame(frame), frame[schema.LABEL].to_numpy()
    for name, pipeline in fitted.items():
        result = evaluation.evaluate(pipeline, x, y)
        proba = pipeline.predict_proba(x.head(3))
        assert proba.shape == (3, len(pipeline.classes_)), name
        assert set(pipeline.classes_) <= set(schema.CLASS_IDS)
        assert np.allclose(proba.sum(axis=1), 1.0)
        # The generated rows carry a learnable signal; majority class is ~30%.
        assert result.metrics["accuracy"] > 0.5, (name, result.metrics["accuracy"])


def test_pipelines_accept_raw_strings_like_feature_frame(fitted, frame):
    x = schema.feature_frame(frame.head(50))
    raw = frame.head(50)[list(schema.FEATURE_COLUMNS)].astype(str)
    for name, pipeline in fitted.items():
        assert (pipeline.predict(raw) == pipeline.predict(x)).all(), name


def test_unknown_candidate_is_named():
    with pytest.raises(ValueError, match=r"unknown candidate 'xgb'.*lightgbm"):
        candidates.build_pipeline("xgb")


def test_params_override_defaults():
    pipeline = candidates.build_pipeline(candidates.LIGHTGBM, {"num_leaves": 15})
    params = pipeline.named_steps["model"].get_params()
    assert params["num_leaves"] == 15
    assert params["n_estimators"] == candidates.DEFAULT_PARAMS[candidates.LIGHTGBM]["n_estimators"]


def test_trusted_types_cover_every_candidate(fitted, frame, tmp_path):
    """skops must load each fitted candidate with exactly our explicit list."""
    x = schema.feature_frame(frame.head(20))
    for name, pipeline in fitted.items():
        path = tmp_path / f"{name}.skops"
        skops.io.dump(pipeline, path)
        untrusted = set(skops.io.get_untrusted_types(file=path))
        assert untrusted <= set(registry.TRUSTED_TYPES), (name, untrusted - set(registry.TRUSTED_TYPES))
        loaded = skops.io.load(path, trusted=list(registry.TRUSTED_TYPES))
        assert np.allclose(loaded.predict_proba(x), pipeline.predict_proba(x)), name


def test_class_weights_lift_rare_classes():
    labels = np.array([0] * 90 + [3] * 10)
    weights = candidates.class_sample_weights(labels, power=0.5)
    assert weights[-1] > weights[0]
    assert weights[-1] / weights[0] == pytest.approx(3.0)
    assert (candidates.class_sample_weights(labels, power=0.0) == 1).all()


def test_split_is_stable_and_by_content(frame):
    first = data.evaluation_mask(frame["row_hash"], 20)
    shuffled = frame.sample(frac=1, random_state=1)
    again = data.evaluation_mask(shuffled["row_hash"], 20)
    assert (pd.Series(first, index=frame.index) == pd.Series(again, index=shuffled.index).loc[frame.index]).all()
    assert 0.12 < first.mean() < 0.28
    validation = data.validation_mask(frame["row_hash"])
    # Independent slices of the digest: validation is not a subset of evaluation.
    assert 0 < (validation & ~first).sum() < (~first).sum()


def _with_split(frame):
    out = frame.copy()
    out[data.SPLIT_COLUMN] = np.where(data.evaluation_mask(out["row_hash"], 20), data.EVALUATION, data.TRAINING)
    return out


def test_checks_pass_on_clean_rows(frame):
    report = checks.data_report(_with_split(frame), min_rows=100)
    assert report.passed, report.to_json()
    assert sum(report.class_counts.values()) == report.training_rows


def test_checks_fail_with_a_report_naming_the_problems(frame):
    broken = _with_split(frame)
    broken.loc[broken.index[:5], "Soil_Type"] = None
    broken.loc[broken.index[5], "Elevation"] = -4
    broken = pd.concat([broken, broken.head(2)])
    report = checks.data_report(broken, min_rows=100)
    failed = {c.name for c in report.failures}
    assert {"schema", "null_rates", "duplicates"} <= failed
    with pytest.raises(checks.DataCheckFailed) as error:
        checks.require_passing(report)
    message = str(error.value)
    assert "null_rates" in message and "Elevation" in message and '"duplicate_hashes": 2' in message


def test_checks_fail_on_a_single_class_and_too_few_rows(frame):
    one_class = _with_split(frame[frame[schema.LABEL] == frame[schema.LABEL].iloc[0]])
    report = checks.data_report(one_class.head(50), min_rows=100)
    assert {"class_counts", "row_count"} <= {c.name for c in report.failures}


def test_confusion_matrix_and_report_files(fitted, frame, tmp_path):
    x, y = schema.feature_frame(frame), frame[schema.LABEL].to_numpy()
    result = evaluation.evaluate(fitted[candidates.BASELINE], x, y)
    assert result.confusion.shape == (schema.N_CLASSES, schema.N_CLASSES)
    assert result.confusion.sum() == len(y)
    png = evaluation.write_confusion_matrix(result.confusion, tmp_path / CONFUSION_MATRIX_FILE)
    assert png.read_bytes()[:4] == b"\x89PNG"
    report = evaluation.write_report(result, tmp_path / REPORT_FILE)
    assert "macro avg" in report.read_text()
    importance = evaluation.feature_importance(fitted[candidates.LIGHTGBM], x, y, seed=1, max_rows=300)
    assert set(importance["importances"]) == set(schema.FEATURE_COLUMNS)
    # Elevation drives the generated labels: it must matter most.
    assert next(iter(importance["importances"])) == "Elevation"


def test_search_starts_from_the_defaults_and_stops_early(frame):
    from forestops.training import search

    inside = data.validation_mask(frame["row_hash"])
    x_fit, y_fit = data.features_and_labels(frame[~inside])
    x_val, y_val = data.features_and_labels(frame[inside])
    for name, size in ((candidates.LIGHTGBM, "n_estimators"), (candidates.HIST_GRADIENT_BOOSTING, "max_iter")):
        result = search.search(name, x_fit, y_fit, x_val, y_val, search.SearchBudget(cpu_seconds=0.5), seed=3)
        assert result.trials >= 1 and result.history[0]["trial"] == 0
        assert not result.warm_started
        first = result.history[0]["params"]
        defaults = candidates.DEFAULT_PARAMS[name]
        assert all(first[k] == v for k, v in defaults.items() if k != size), (first, defaults)
        # Early stopping on the validation slice decided the number of rounds.
        assert 0 < result.params[size] <= search.max_rounds(name, result.params) <= search.MAX_ROUNDS[name]
        assert 0 < result.validation_f1_macro <= 1
        assert result.cpu_seconds > 0


def test_search_tries_the_warm_start_first_then_the_defaults_within_a_trial_budget(frame):
    """A champion's recorded parameters (with the rounds it reached) are the first trial; the cap is exact."""
    from forestops.training import search

    inside = data.validation_mask(frame["row_hash"])
    x_fit, y_fit = data.features_and_labels(frame[~inside])
    x_val, y_val = data.features_and_labels(frame[inside])
    champion = {**candidates.DEFAULT_PARAMS[candidates.LIGHTGBM], "num_leaves": 40, "learning_rate": 0.2}
    champion["n_estimators"] = 77  # what the champion's own early stopping reached: re-decided here
    budget = search.SearchBudget(cpu_seconds=10_000, max_trials=3)
    result = search.search(candidates.LIGHTGBM, x_fit, y_fit, x_val, y_val, budget, seed=3, warm_start=[champion])
    assert result.warm_started and result.trials == 3
    first, second = (entry["params"] for entry in result.history[:2])
    assert (first["num_leaves"], first["learning_rate"]) == (40, 0.2)
    defaults = candidates.DEFAULT_PARAMS[candidates.LIGHTGBM]
    assert (second["num_leaves"], second["learning_rate"]) == (defaults["num_leaves"], defaults["learning_rate"])
    # Starting points never repeat: a warm start equal to the defaults is one trial, not two.
    assert len(search.starting_points(candidates.LIGHTGBM, [defaults])) == 1


def test_feature_coercer_fast_path_gives_the_slow_paths_frame_and_predictions(fitted, frame):
    """A frame already in the contract's shape is passed on; anything else is rebuilt, with the same result."""
    from forestops.serving.frames import frame_from_columns
    from forestops.training.features import FeatureCoercer, matches_contract

    coercer = FeatureCoercer()
    rows = frame.head(40)
    contract = schema.feature_frame(rows)
    serving = frame_from_columns({c: rows[c].tolist() for c in schema.FEATURE_COLUMNS})
    assert matches_contract(contract) and matches_contract(serving)
    assert coercer.transform(contract) is contract  # fast path: no rebuild
    pd.testing.assert_frame_equal(coercer.transform(serving), schema.feature_frame(serving))

    # Not the contract's shape: each goes through feature_frame and ends up equal to it.
    soil = schema.CATEGORICAL_COLUMNS[-1]
    reordered = contract.copy()
    reordered[soil] = reordered[soil].cat.reorder_categories(list(reversed(schema.CATEGORIES[soil])))
    others = {
        "raw strings": rows[list(schema.FEATURE_COLUMNS)].astype(str),
        "extra columns": rows,
        "columns swapped": contract[list(reversed(schema.FEATURE_COLUMNS))],
        "int32 numbers": contract.astype({schema.NUMERIC_COLUMNS[0]: "int32"}),
        "categories reordered": reordered,
    }
    for label, other in others.items():
        assert not matches_contract(other), label
        pd.testing.assert_frame_equal(coercer.transform(other), contract, obj=label)
        for name, pipeline in fitted.items():
            assert np.array_equal(pipeline.predict_proba(other), pipeline.predict_proba(contract)), (label, name)


_SKOPS_IN_A_TASK = """
import airflow.sdk, airflow.utils.timezone, airflow.utils.trigger_rule  # what an Airflow task process holds
import forestops.model_loading  # imported by every module that saves or loads a model
import skops.io
from sklearn.dummy import DummyClassifier
skops.io.loads(skops.io.dumps(DummyClassifier().fit([[0], [1]], [0, 1])), trusted=[])
print("round trip done")
"""


def test_saving_and_loading_a_model_in_an_airflow_task_writes_no_deprecation_flood():
    """skops's module scan touches Airflow's deprecated shims: ~1,100 warnings (600 KB of task log) per model."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _SKOPS_IN_A_TASK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "round trip done" in done.stdout, done.stderr[-3000:]
    flood = [line for line in done.stderr.splitlines() if "attribute is deprecated" in line]
    assert flood == [], f"{len(flood)} warnings, e.g. {flood[:2]}"


class _SupersededAfter:
    """A watch that reports the training superseded at its ``n``-th question (no database needed)."""

    def __new__(cls, n: int):
        from forestops.training import preemption

        class Watch(preemption.SupersedeWatch):
            asked = 0

            def superseded(self) -> bool:
                Watch.asked += 1
                return Watch.asked >= n

        return Watch(engine=None, group_number=1, max_raw_id=0)  # type: ignore[arg-type]


def test_a_superseded_training_stops_inside_a_lightgbm_fit(frame):
    """The fit ends at the round the watch says so, not after its 500 rounds."""
    from forestops.training import preemption

    x, y = schema.feature_frame(frame), frame[schema.LABEL].to_numpy()
    watch = _SupersededAfter(3)
    pipeline = candidates.build_pipeline(candidates.LIGHTGBM, {"n_estimators": 500})
    with pytest.raises(preemption.Superseded, match="final training on every collected row replaces it"):
        candidates.fit_pipeline(pipeline, x, y, lightgbm_callbacks=[watch.lightgbm_callback()])
    assert type(watch).asked == 3


def test_a_superseded_search_stops_before_its_next_trial(frame):
    from forestops.training import preemption, search

    inside = data.validation_mask(frame["row_hash"])
    x_fit, y_fit = data.features_and_labels(frame[~inside])
    x_val, y_val = data.features_and_labels(frame[inside])
    watch = _SupersededAfter(1)
    budget = search.SearchBudget(cpu_seconds=10_000, max_trials=3)
    with pytest.raises(preemption.Superseded):
        search.search(candidates.HIST_GRADIENT_BOOSTING, x_fit, y_fit, x_val, y_val, budget, watch=watch)
    assert type(watch).asked == 1


def test_the_final_plan_is_the_champions_recipe_first_then_the_other_strong_families():
    from forestops.training.steps import final_plan

    recipe = (candidates.LIGHTGBM, {"num_leaves": 63})
    assert final_plan(recipe, [candidates.LIGHTGBM, candidates.BASELINE]) == [candidates.LIGHTGBM]
    every = [candidates.BASELINE, candidates.HIST_GRADIENT_BOOSTING, candidates.LIGHTGBM, candidates.RANDOM_FOREST]
    # No reference candidate (baseline, random forest): they never win and cost the settle time.
    assert final_plan(recipe, every) == [candidates.LIGHTGBM, candidates.HIST_GRADIENT_BOOSTING]
    assert final_plan(recipe, [candidates.BASELINE]) is None  # its family is no longer configured: all of them
    assert final_plan(None, [candidates.LIGHTGBM]) is None  # no recipe recorded: a full training


def test_the_search_space_caps_the_leaves_and_brings_a_wider_recipe_within_it():
    """861 leaves (an earlier space's choice) made a 164 MB model that predicted 5.8 ms per row."""
    from forestops.training import search

    wide = {**candidates.DEFAULT_PARAMS[candidates.LIGHTGBM], "num_leaves": 861}
    [point] = search.usable_warm_points(candidates.LIGHTGBM, [wide])
    assert point["num_leaves"] == search.MAX_LEAVES == 255
    hgb = {**candidates.DEFAULT_PARAMS[candidates.HIST_GRADIENT_BOOSTING], "max_leaf_nodes": 1000}
    assert search.usable_warm_points(candidates.HIST_GRADIENT_BOOSTING, [hgb])[0]["max_leaf_nodes"] == 255


def test_the_size_budget_caps_rounds_by_leaves_and_brings_an_old_recipe_within_it():
    """884 rounds of 192 leaves made a 118 MB model that took 60 s to score 13,000 rows."""
    from forestops.training import search

    assert search.max_rounds(candidates.LIGHTGBM, {"num_leaves": 192}) == 100_000 // 192 == 520
    assert search.max_rounds(candidates.LIGHTGBM, {"num_leaves": 31}) == search.MAX_ROUNDS[candidates.LIGHTGBM]
    defaults = candidates.DEFAULT_PARAMS[candidates.LIGHTGBM]
    assert defaults["n_estimators"] <= search.max_rounds(candidates.LIGHTGBM, defaults)  # the defaults fit
    old = {**defaults, "num_leaves": 192, "n_estimators": 884}
    assert search.within_size_budget(candidates.LIGHTGBM, old)["n_estimators"] == 520
    hgb = {**candidates.DEFAULT_PARAMS[candidates.HIST_GRADIENT_BOOSTING], "max_leaf_nodes": 255, "max_iter": 900}
    assert search.within_size_budget(candidates.HIST_GRADIENT_BOOSTING, hgb)["max_iter"] == 100_000 // 255
    assert search.within_size_budget(candidates.BASELINE, {"C": 1.0}) == {"C": 1.0}  # not a boosting recipe
