"""Training against real servers: MariaDB rows, a real MLflow server with S3 artefacts."""

from __future__ import annotations

import json
import subprocess
import threading

import mlflow
import pytest
import sqlalchemy as sa

from forestops import schema
from forestops.names import (
    ALIAS_CHAMPION,
    CONFUSION_MATRIX_FILE,
    IMPORTANCE_FILE,
    REPORT_FILE,
    TAG_AIRFLOW_RUN_ID,
    TAG_CANDIDATE_SCORE,
    TAG_CHAMPION_SCORE,
    TAG_CODE_VERSION,
    TAG_DECISION,
    TAG_MODEL_PARAMS,
    TAG_PRIMARY_METRIC,
    TAG_SEARCH_CPU_SECONDS,
    TAG_SEARCH_TRIALS,
    TAG_TRAINING_CPU_SECONDS,
    FetchStatus,
    TrainingStatus,
)
from forestops.storage import tables
from forestops.storage.db import make_engine
from forestops.training import (
    candidates,
    checks,
    data,
    evaluation,
    gate,
    learning_curve,
    promotion,
    registry,
    steps,
    tracking,
)
from tests.support.processes import forestops_argv, free_port
from tests.training.conftest import env_of, insert_raw_rows, training_log

pytestmark = pytest.mark.integration


def _client(settings):
    return mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def test_training_tracks_registers_and_serves_a_champion(stocked_database, settings_for, training_rows, s3_endpoint):
    settings = settings_for(stocked_database)
    result = steps.run_training(settings, force=False, run_id="manual__test-1")
    assert result.trained and result.gate.reason == "first training"
    client = _client(settings)

    # One parent run, a child run per candidate.
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert sorted(r.data.tags["candidate"] for r in children) == sorted(steps.candidate_names(settings))
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert parent.data.tags[TAG_AIRFLOW_RUN_ID] == "manual__test-1"
    assert parent.data.tags[TAG_CODE_VERSION]
    assert parent.data.metrics["rows"] == len(training_rows)

    # Dataset lineage on the parent: both splits, batch numbers, digest.
    dataset_inputs = parent.inputs.dataset_inputs
    contexts = {next(t.value for t in d.tags if t.key == "mlflow.data.context") for d in dataset_inputs}
    assert contexts == {"training", "evaluation"}
    for dataset_input in dataset_inputs:
        tags = {t.key: t.value for t in dataset_input.tags}
        assert tags["batch_numbers"] == "1,2,3"
        assert tags["source_table"] == "raw_rows"
        assert "raw_rows" in dataset_input.dataset.source
        assert dataset_input.dataset.digest
    total = sum(int({t.key: t.value for t in d.tags}["rows"]) for d in dataset_inputs)
    assert total == len(training_rows)

    # Every child: params, metrics on the evaluation split, artefacts.
    for child in children:
        metrics = child.data.metrics
        assert {"accuracy", "f1_macro", "training_seconds", "training_rows", "f1_class_0"} <= set(metrics)
        assert 0 < metrics["f1_macro"] <= 1 and 0 < metrics["accuracy"] <= 1
        assert any(k.startswith("model_") for k in child.data.params)
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {CONFUSION_MATRIX_FILE, REPORT_FILE} <= names, names
        # Feature importance is computed for the winner only, by the explain step.
        best = child.data.tags["candidate"] == result.evaluated.best
        assert (IMPORTANCE_FILE in names) == best, (child.data.tags["candidate"], names)
    strong = [c for c in children if c.data.tags["candidate"] in candidates.STRONG_CANDIDATES]
    # The first training (no champion yet) fits the tuned defaults: nothing searched, nothing to wait for.
    assert strong and all(c.data.metrics["search_trials"] == 0 for c in strong)

    # The best candidate is registered, logged in its own child run, and is champion.
    registered = result.registered
    assert registered is not None and result.evaluated is not None
    version = client.get_model_version(settings.model_name, registered.version)
    assert version.run_id == registered.run_id
    assert {a.path for a in client.list_artifacts(version.run_id)} >= {"confusion_matrix.png"}
    assert version.tags[TAG_DECISION] == promotion.DECISION_CHAMPION
    assert version.tags[TAG_PRIMARY_METRIC] == "f1_macro"
    assert float(version.tags[TAG_CANDIDATE_SCORE]) == pytest.approx(result.evaluated.score)
    champion = client.get_model_version_by_alias(settings.model_name, ALIAS_CHAMPION)
    assert champion.version == registered.version

    # Artefacts really live in the S3 endpoint (proxied by the server).
    assert any(key.endswith("model.skops") for key in s3_endpoint.object_keys())

    # The champion loads by alias and predicts raw rows (strings, as clients send them).
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
    raw = [dict(zip(schema.FEATURE_COLUMNS, row[:12], strict=True)) for row in training_rows[:20]]
    proba = model.predict_proba(schema.feature_frame([schema.normalise_features(r) for r in raw]))
    assert proba.shape == (20, len(model.classes_))
    assert set(model.classes_) <= set(schema.CLASS_IDS)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    assert len(pyfunc.predict(registry.input_example(schema.feature_frame(raw), rows=20))) == 20

    # The training log records the whole story.
    (row,) = training_log(stocked_database)
    assert row.status == TrainingStatus.TRAINED and row.decision == promotion.DECISION_CHAMPION
    assert row.model_version == registered.version and row.rows_used == len(training_rows)
    assert row.mlflow_run_id == registered.run_id and row.run_id == "manual__test-1"

    # No new rows: the gate skips and says so.
    again = steps.run_training(settings)
    assert not again.trained and "0 new rows" in again.gate.reason
    assert training_log(stocked_database)[-1].status == TrainingStatus.SKIPPED


def test_the_next_search_starts_from_the_champions_recorded_recipe(stocked_database, settings_for):
    """A version records what it was fitted with and what that cost; the next training's search starts there."""
    settings = settings_for(stocked_database, training_candidates=candidates.LIGHTGBM, search_max_trials=2)
    first = steps.run_training(settings, force=True)
    client = _client(settings)
    version = client.get_model_version(settings.model_name, first.registered.version)
    recipe = json.loads(version.tags[TAG_MODEL_PARAMS])
    # The first training (no champion) fits the tuned defaults without a search, and records them.
    assert recipe == candidates.DEFAULT_PARAMS[candidates.LIGHTGBM]
    assert int(version.tags[TAG_SEARCH_TRIALS]) == 0 and float(version.tags[TAG_SEARCH_CPU_SECONDS]) == 0
    assert float(version.tags[TAG_TRAINING_CPU_SECONDS]) > 0
    assert registry.champion_recipe(client, settings.model_name) == (candidates.LIGHTGBM, recipe)

    second = steps.run_training(settings, force=True)
    child = client.get_run(second.registered.run_id)
    assert child.data.metrics["search_warm_started"] == 1.0
    assert child.data.metrics["search_trials"] == 2  # the trial cap, whatever the CPU budget
    second_version = client.get_model_version(settings.model_name, second.registered.version)
    searched = float(second_version.tags[TAG_SEARCH_CPU_SECONDS])
    assert float(second_version.tags[TAG_TRAINING_CPU_SECONDS]) >= searched > 0

    # The learning curve on the training's parent run: every version, by training rows.
    parent = child.data.tags["mlflow.parentRunId"]
    curve = json.loads(mlflow.artifacts.load_text(f"runs:/{parent}/{learning_curve.CURVE_FILE}"))
    assert [point["version"] for point in curve] == [int(first.registered.version), int(second.registered.version)]
    assert all(point["training_rows"] > 0 and 0 < point["f1_macro"] <= 1 for point in curve)
    assert learning_curve.CURVE_PLOT_FILE in {a.path for a in client.list_artifacts(parent)}


def test_the_final_training_refits_the_recipe_and_the_other_family_and_a_periodic_one_gives_way(
    stocked_database, settings_for, training_rows
):
    """When the collection completes under a training, it stops; the final one fits the champion's recipe."""
    from forestops.ingest import store
    from forestops.training import preemption

    settings = settings_for(stocked_database, training_candidates=candidates.LIGHTGBM, search_max_trials=1)
    first = steps.run_training(settings, force=True)
    assert first.promoted is not None
    # A recipe unlike the defaults, as a cycle's searches record it on the champion.
    searched = {**candidates.DEFAULT_PARAMS[candidates.LIGHTGBM], "num_leaves": 40, "learning_rate": 0.2}
    searched["n_estimators"] = 30
    _client(settings).set_model_version_tag(
        settings.model_name, first.promoted.version, TAG_MODEL_PARAMS, json.dumps(searched)
    )
    recipe = registry.champion_recipe(_client(settings), settings.model_name)
    assert recipe == (candidates.LIGHTGBM, searched)

    periodic = steps.load_step(settings, steps.gate_step(settings, force=True))
    last_batch = [[str(int(row[0]) + 1), *row[1:]] for row in training_rows[:300]]  # new rows: new hashes
    assert insert_raw_rows(stocked_database, last_batch, batch_number=10) > 0
    where = {"source_url": "http://data-api", "detail": "all batches collected"}
    store.record_complete(make_engine(stocked_database), group_number=settings.group_number, **where)
    with pytest.raises(preemption.Superseded):
        steps.train_step(settings, periodic)
    stopped = training_log(stocked_database)[-1]
    assert stopped.id == periodic.log_id and stopped.status == TrainingStatus.SKIPPED
    assert stopped.finished_at is not None and stopped.detail.startswith("superseded: the collection completed")

    every = settings.model_copy(update={"training_candidates": "lightgbm,hist_gradient_boosting,baseline"})
    decision = steps.gate_step(every)
    assert decision.train and decision.final and decision.reason.startswith("final training")
    final = steps.load_step(every, decision)
    assert final.final and final.max_raw_id > periodic.max_raw_id
    trained = steps.train_step(every, final)
    # The recipe as it is (no search), the other strong family at its defaults, no reference candidate.
    refit, other = trained.candidates
    assert refit.name == candidates.LIGHTGBM and refit.search_trials == 0 and refit.params == searched
    model = steps.load_candidate(refit.model_path).named_steps["model"]
    assert model.n_estimators_ == 30 and model.num_leaves == 40
    assert model.n_jobs == candidates.OPENMP_THREADS  # fitted on FINAL_THREADS, kept as every other version
    assert other.name == candidates.HIST_GRADIENT_BOOSTING and other.search_trials == 0
    assert other.params == candidates.DEFAULT_PARAMS[candidates.HIST_GRADIENT_BOOSTING]
    # The final training is never superseded: the same completion does not stop it.
    assert not steps.supersede_watch(every, final).superseded()


def _register(settings, pipeline, x_example) -> str:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.experiment_name)
    return registry.log_and_register(pipeline, x_example, settings.model_name)


def test_worse_model_stays_challenger_better_takes_champion_and_people_can_undo(stocked_database, settings_for):
    settings = settings_for(stocked_database)
    engine = make_engine(stocked_database)
    client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
    frame = data.read_raw_rows(engine)
    evaluation_rows = data.evaluation_mask(frame["row_hash"], settings.evaluation_percent)
    x_train, y_train = data.features_and_labels(frame[~evaluation_rows])
    x_eval, y_eval = data.features_and_labels(frame[evaluation_rows])

    weak = candidates.fit_pipeline(
        candidates.build_pipeline("random_forest", {"n_estimators": 1, "max_depth": 1}), x_train, y_train
    )
    strong = candidates.fit_pipeline(candidates.build_pipeline("lightgbm", {"n_estimators": 150}), x_train, y_train)
    weak_score = evaluation.evaluate(weak, x_eval, y_eval).score("f1_macro")
    strong_score = evaluation.evaluate(strong, x_eval, y_eval).score("f1_macro")
    assert strong_score > weak_score + 0.1

    def scorer(version: str) -> float:
        model = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version}")
        return evaluation.evaluate(model, x_eval, y_eval).score("f1_macro")

    def decide(version: str, score: float) -> promotion.Decision:
        return promotion.decide(engine, client, settings.model_name, version, score, scorer, "f1_macro", 0.01)

    v1 = _register(settings, weak, x_train)
    assert decide(v1, weak_score).decision == promotion.DECISION_CHAMPION
    first_tags = client.get_model_version(settings.model_name, v1).tags
    assert TAG_CHAMPION_SCORE not in first_tags  # no champion to compare with: no score, not ""
    assert float(first_tags[TAG_CANDIDATE_SCORE]) == pytest.approx(weak_score)
    v2 = _register(settings, strong, x_train)
    second = decide(v2, strong_score)
    assert second.decision == promotion.DECISION_CHAMPION
    assert second.champion_score == pytest.approx(weak_score)  # the champion was scored on the same rows
    v3 = _register(settings, weak, x_train)
    third = decide(v3, weak_score)
    assert third.decision == promotion.DECISION_CHALLENGER
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == v2
    assert client.get_model_version_by_alias(settings.model_name, "challenger").version == v3
    tags = client.get_model_version(settings.model_name, v3).tags
    assert tags["decision"] == "challenger"
    assert float(tags["champion_score"]) == pytest.approx(strong_score)
    assert float(tags["candidate_score"]) == pytest.approx(weak_score)
    assert client.get_model_version(settings.model_name, v2).tags["previous_champion"] == v1

    # A retried promote step replays the decision its first attempt recorded: no re-scoring, no new tags.
    again = decide(v3, weak_score)
    assert again.decision == promotion.DECISION_CHALLENGER
    assert client.get_model_version(settings.model_name, v3).tags == tags
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == v2
    # A first attempt that died between tagging v2 and moving the alias (champion still v1): the retry moves it.
    client.set_registered_model_alias(settings.model_name, "champion", v1)
    replayed = decide(v2, strong_score)
    assert replayed.decision == promotion.DECISION_CHAMPION
    assert replayed.champion_score == pytest.approx(weak_score)
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == v2

    # People: `forestops rollback` returns to v1, `forestops promote` picks any version.
    env = {**env_of(settings)}
    rolled = subprocess.run(forestops_argv("rollback"), env=_full_env(env), capture_output=True, text=True)
    assert rolled.returncode == 0, rolled.stderr
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == v1
    promoted = subprocess.run(forestops_argv("promote", v3), env=_full_env(env), capture_output=True, text=True)
    assert promoted.returncode == 0, promoted.stderr
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == v3
    assert client.get_model_version(settings.model_name, v3).tags["previous_champion"] == v1
    with pytest.raises(promotion.PromotionError, match="has no version '999'"):
        promotion.promote(engine, client, settings.model_name, "999")


def _full_env(env: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **env}


def _race(database_url: str, client, settings, versions: list[str], score: float) -> dict[str, promotion.Decision]:
    """Both versions try to take the champion alias at the same moment, from two threads."""
    barrier = threading.Barrier(len(versions))
    decisions: dict[str, promotion.Decision] = {}
    errors: list[BaseException] = []

    def contend(version: str) -> None:
        engine = make_engine(database_url)  # each contender its own connection pool
        try:
            barrier.wait()
            decisions[version] = promotion.decide(
                engine, client, settings.model_name, version, score, lambda _v: score, "f1_macro", 0.0
            )
        except BaseException as error:
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=contend, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return decisions


def test_concurrent_promotions_cannot_both_win(stocked_database, settings_for):
    settings = settings_for(stocked_database)
    client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
    frame = data.read_raw_rows(make_engine(stocked_database))
    x, y = data.features_and_labels(frame)
    model = candidates.fit_pipeline(candidates.build_pipeline("baseline"), x, y)

    # No champion yet: exactly one of two equal contenders wins, the other sees it and loses.
    versions = [_register(settings, model, x) for _ in range(2)]
    decisions = _race(stocked_database, client, settings, versions, 0.75)
    winners = [v for v, d in decisions.items() if d.decision == promotion.DECISION_CHAMPION]
    assert len(winners) == 1, decisions
    champion = client.get_model_version_by_alias(settings.model_name, "champion").version
    assert champion == winners[0]
    loser = next(v for v in versions if v != champion)
    assert decisions[loser].decision == promotion.DECISION_CHALLENGER
    assert decisions[loser].champion_score == 0.75

    # Against an existing champion, two equal contenders (the loser again and a
    # new version) both lose: neither beats it.
    later = [loser, _register(settings, model, x)]
    decisions = _race(stocked_database, client, settings, later, 0.75)
    assert all(d.decision == promotion.DECISION_CHALLENGER for d in decisions.values()), decisions
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == champion


def test_mlflow_down_fails_clearly_and_a_retry_succeeds(stocked_database, settings_for):
    settings = settings_for(stocked_database)
    decision = steps.gate_step(settings, force=True, run_id="retry-test")
    loaded = steps.load_step(settings, decision)
    steps.check_step(settings, loaded)
    dead = settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(tracking.MlflowUnavailable, match=r"MLflow tracking server at http://127\.0\.0\.1:\d+ is not"):
        steps.train_step(dead, loaded, "retry-test")
    failed = training_log(stocked_database)[-1]
    assert failed.status == TrainingStatus.FAILED and "not reachable" in failed.detail
    # The retry (same inputs, MLflow back) goes through.
    quick = settings.model_copy(update={"training_candidates": "baseline"})
    trained = steps.train_step(quick, loaded, "retry-test")
    assert [c.name for c in trained.candidates] == ["baseline"]
    assert _client(settings).get_run(trained.parent_run_id).info.status == "FINISHED"


def test_a_retried_register_step_finds_its_version_instead_of_registering_another(stocked_database, settings_for):
    """A register task that failed after MLflow created the version is retried by Airflow: still one version."""
    settings = settings_for(stocked_database, training_candidates="baseline")
    decision = steps.gate_step(settings, force=True, run_id="register-retry")
    loaded = steps.load_step(settings, decision)
    trained = steps.train_step(settings, loaded, "register-retry")
    evaluated = steps.evaluate_step(settings, loaded, trained)

    first = steps.register_step(settings, loaded, trained, evaluated)
    again = steps.register_step(settings, loaded, trained, evaluated)

    assert again == first
    client = _client(settings)
    versions = client.search_model_versions(f"name = '{settings.model_name}'")
    assert [v.version for v in versions] == [first.version]
    assert versions[0].run_id == trained.candidate("baseline").run_id
    assert versions[0].tags["training_log_id"] == str(loaded.log_id)
    assert training_log(stocked_database)[-1].model_version == first.version
    # A different training (another run) still registers a version of its own.
    other = steps.train_step(settings, loaded, "register-retry-2")
    assert steps.register_step(settings, loaded, other, evaluated).version != first.version
    assert len(client.search_model_versions(f"name = '{settings.model_name}'")) == 2


def test_gate_counts_new_rows_since_the_last_training(fresh_database_url, training_rows):
    insert_raw_rows(fresh_database_url, training_rows[:1000], batch_number=1)
    engine = make_engine(fresh_database_url)
    first = gate.should_train(engine, None, force=False)
    assert first.train and first.reason == "first training"
    gate.update(engine, first.log_id, status=TrainingStatus.TRAINED, rows_used=1000, max_raw_id=first.max_raw_id)

    assert not gate.should_train(engine, None, force=False).train  # nothing new
    insert_raw_rows(fresh_database_url, training_rows[1000:1040], batch_number=2)  # 4% < 5%
    skipped = gate.should_train(engine, None, force=False)
    assert not skipped.train and skipped.new_rows == 40 and skipped.threshold == 50
    insert_raw_rows(fresh_database_url, training_rows[1040:1050], batch_number=2)  # 5%
    assert gate.should_train(engine, None, force=False).train
    assert gate.should_train(engine, 1000, force=False).train is False  # explicit threshold wins
    assert gate.should_train(engine, 1000, force=True).train  # forced
    statuses = [row.status for row in training_log(fresh_database_url)]
    assert statuses == ["trained", "skipped", "skipped", "running", "skipped", "running"]
    with engine.connect() as connection:
        details = connection.execute(sa.select(tables.training_log.c.detail)).scalars().all()
    assert details[2] == "40 new rows since training #1 (threshold 50)"


def test_gate_trains_once_more_below_the_threshold_when_the_collection_completes(fresh_database_url, training_rows):
    """The end of a cycle earns a final training on every row; the same rows never earn two."""
    from forestops.ingest import store

    insert_raw_rows(fresh_database_url, training_rows[:1000], batch_number=1)
    engine = make_engine(fresh_database_url)
    first = gate.should_train(engine, None, force=False, group_number=1)
    gate.update(engine, first.log_id, status=TrainingStatus.TRAINED, rows_used=1000, max_raw_id=first.max_raw_id)
    insert_raw_rows(fresh_database_url, training_rows[1000:1010], batch_number=10)  # 1% < 5%
    assert not gate.should_train(engine, None, force=False, group_number=1).train  # the cycle is still running

    where = {"source_url": "http://data-api", "detail": "all batches collected: done"}
    store.record_complete(engine, group_number=2, **where)  # another group's completion is not ours
    assert store.newest_status(engine, 1) == FetchStatus.STORED  # insert_raw_rows logs its fetch
    assert not gate.should_train(engine, None, force=False, group_number=1).train
    store.record_complete(engine, group_number=1, **where)
    assert store.newest_status(engine, 1) == FetchStatus.COMPLETE
    final = gate.should_train(engine, None, force=False, group_number=1)
    assert final.train and final.new_rows == 10 and final.final and not first.final
    forced = gate.should_train(engine, None, force=True, group_number=1)
    assert forced.train and not forced.final  # a forced training is a full one, whatever the collection's state
    gate.update(engine, forced.log_id, status=TrainingStatus.SKIPPED)
    assert final.reason == "final training: the collection is complete; 10 new rows since training #1 (threshold 50)"
    gate.update(engine, final.log_id, status=TrainingStatus.TRAINED, rows_used=1010, max_raw_id=final.max_raw_id)
    assert not gate.should_train(engine, None, force=False, group_number=1).train  # nothing new since the final one


def test_failed_data_check_stops_the_training_with_its_report(fresh_database_url, settings_for, training_rows):
    label = training_rows[0][12]
    insert_raw_rows(fresh_database_url, [r for r in training_rows if r[12] == label][:400])
    settings = settings_for(fresh_database_url)
    decision = steps.gate_step(settings, force=True)
    loaded = steps.load_step(settings, decision)
    with pytest.raises(checks.DataCheckFailed, match="class_counts") as error:
        steps.check_step(settings, loaded)
    assert '"class_counts"' in str(error.value)
    row = training_log(fresh_database_url)[-1]
    assert row.status == TrainingStatus.FAILED and "data checks failed: class_counts" in row.detail
