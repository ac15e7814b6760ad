"""Shadow promotion: a real inference service shadows the challenger; one decider promotes or rejects it.

A challenger that disagrees with the champion is rejected (the champion
stays, the challenger alias goes); one that agrees is promoted, and the
service swaps to it under load without a failed request.  Every decision is
in the promotion history with its figures.
"""

from __future__ import annotations

import time

import httpx
import mlflow
import pytest

from forestops import schema
from forestops.settings import load_settings
from forestops.storage.db import ensure_schema, make_engine
from forestops.training import history, promotion, shadow
from tests.serving.support import feature_records, inference_service, train_and_register, unique_model_name
from tests.serving.test_champion_changes import LoadGenerator
from tests.support.data import sample_rows

pytestmark = pytest.mark.integration

MIN_REQUESTS = 12


def _register_disagreeing(tracking_uri: str, model_name: str) -> str:
    """A model trained on every label shifted by one class: it almost never agrees with a real one."""
    from forestops.training.candidates import build_pipeline, fit_pipeline
    from forestops.training.registry import log_and_register

    rows = [schema.normalise_raw_row(r) for r in sample_rows(1500)]
    features = schema.feature_frame(rows)
    labels = [(r[schema.LABEL] + 1) % schema.N_CLASSES for r in rows]
    params = {"n_estimators": 20, "num_leaves": 15}
    pipeline = fit_pipeline(build_pipeline("lightgbm", params, seed=0), features, labels)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"serving-tests-{model_name}")
    with mlflow.start_run():
        return log_and_register(pipeline, features, model_name)


def _settle_when_due(engine, client, settings, post=None, timeout: float = 180) -> shadow.Verdict:
    """Run the decider until it decides (what the covertype_shadow DAG does on its schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if post is not None:
            post()
        verdict = shadow.settle(engine, client, settings, decided_by="test-dag-run")
        if verdict.outcome != shadow.WAIT:
            return verdict
        time.sleep(0.2)
    raise AssertionError(f"no shadow decision within {timeout}s: {verdict}")


def test_disagreeing_challenger_is_rejected_agreeing_one_promoted_without_a_failed_request(
    mlflow_server, fresh_database_url, tmp_path
):
    name = unique_model_name("shadow")
    settings = load_settings(
        database_url=fresh_database_url,
        mlflow_tracking_uri=mlflow_server.url,
        model_name=name,
        promotion_policy="shadow",
        shadow_min_requests=MIN_REQUESTS,
        shadow_min_agreement=0.9,
        shadow_max_latency_seconds=5.0,
        home=tmp_path / "home",
    )
    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)

    def decide(version: str, score: float) -> promotion.Decision:
        return promotion.decide(
            engine, client, name, version, score, lambda _v: 0.5, "f1_macro", 0.0, "test-run", "shadow"
        )

    champion = train_and_register(mlflow_server.url, name, seed=0)
    assert decide(champion, 0.5).decision == promotion.DECISION_CHAMPION  # no champion yet: no shadow needed
    disagreeing = _register_disagreeing(mlflow_server.url, name)
    agreeing = str(client.copy_model_version(f"models:/{name}/{champion}", name).version)  # same predictions

    body = {"instances": feature_records(sample_rows(20))}
    env = {
        "FORESTOPS_DATABASE_URL": fresh_database_url,
        "FORESTOPS_PROMOTION_POLICY": "shadow",
        "FORESTOPS_SHADOW_SAMPLE_SHARE": "1.0",
    }
    with inference_service(mlflow_server.url, name, tmp_path, **env) as service:
        service.wait_for(lambda: service.served_version() == champion, "the champion is served")

        def post() -> None:
            response = httpx.post(f"{service.url}/predict", json=body, timeout=30)
            assert response.status_code == 200 and response.json()["model"]["version"] == champion

        # 1. A better-scoring candidate that disagrees with the champion on live rows.
        assert decide(disagreeing, 0.9).decision == promotion.DECISION_SHADOW
        assert str(client.get_model_version_by_alias(name, "champion").version) == champion
        rejected = _settle_when_due(engine, client, settings, post)
        assert rejected.outcome == shadow.REJECT, rejected
        assert rejected.figures.requests >= MIN_REQUESTS and rejected.figures.agreement < 0.5
        assert "agreement" in rejected.reason
        assert str(client.get_model_version_by_alias(name, "champion").version) == champion
        assert promotion._alias_version(client, name, "challenger") is None

        # 2. One that agrees: promoted, and served under load without a failed request.
        assert decide(agreeing, 0.9).decision == promotion.DECISION_SHADOW
        with LoadGenerator(service.url, clients=2) as load:
            promoted = _settle_when_due(engine, client, settings, post=lambda: time.sleep(0.2))
            assert promoted.outcome == shadow.PROMOTE, promoted
            load.wait_for_version(agreeing)
            time.sleep(1.0)
        failures = [o for o in load.outcomes if o.status != 200]
        assert not failures, f"{len(failures)} of {len(load.outcomes)} requests failed: {failures[:5]}"
        assert promoted.figures.agreement == 1.0 and promoted.figures.failures == 0
        assert str(client.get_model_version_by_alias(name, "champion").version) == agreeing

        metrics = httpx.get(f"{service.url}/metrics", timeout=30).text
        assert 'forestops_shadow_requests_total{outcome="scored"}' in metrics
        assert "forestops_shadow_latency_seconds_bucket" in metrics
        assert "forestops_shadow_agreement_ratio" in metrics

    with engine.connect() as connection:
        rows = list(reversed(history.entries(connection, name)))
    engine.dispose()
    assert [(r["alias"], r["action"], r["from_version"], r["to_version"]) for r in rows] == [
        ("champion", "promoted", None, champion),
        ("challenger", "shadow_started", None, disagreeing),
        ("challenger", "shadow_rejected", disagreeing, None),
        ("challenger", "shadow_started", None, agreeing),
        ("champion", "shadow_promoted", champion, agreeing),
        ("challenger", "shadow_promoted", agreeing, None),
    ]
    assert rows[2]["actor"] == "test-dag-run" and "shadowed requests" in rows[2]["reason"]
    assert "agreement 1.0000" in rows[4]["reason"]
