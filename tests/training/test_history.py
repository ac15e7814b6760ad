"""The promotion history: one row per alias move, for every kind of move, and append-only."""

from __future__ import annotations

import json
import os
import subprocess

import mlflow
import pytest
import sqlalchemy as sa

from forestops.storage.db import ensure_schema, make_engine
from forestops.training import candidates, data, history, pin, promotion, registry, tracking
from tests.support.processes import forestops_argv
from tests.training.conftest import env_of

pytestmark = pytest.mark.integration


def _register(settings, pipeline, x_example) -> str:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.experiment_name)
    return registry.log_and_register(pipeline, x_example, settings.model_name)


def _rows(engine, model_name: str) -> list[dict]:
    with engine.connect() as connection:
        return list(reversed(history.entries(connection, model_name)))  # oldest first


def _moves(rows: list[dict]) -> list[tuple]:
    return [(r["alias"], r["action"], r["from_version"], r["to_version"]) for r in rows]


@pytest.fixture
def registered(fresh_database_url, settings_for, training_rows):
    """Four versions of one cheap pipeline (scores are given, not measured), on MariaDB and a real MLflow."""
    from tests.training.conftest import insert_raw_rows

    insert_raw_rows(fresh_database_url, training_rows[:600])
    settings = settings_for(fresh_database_url)
    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    x, y = data.features_and_labels(data.read_raw_rows(engine))
    model = candidates.fit_pipeline(candidates.build_pipeline("baseline"), x, y)
    versions = [_register(settings, model, x.head(5)) for _ in range(4)]
    client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
    yield settings, engine, client, versions
    engine.dispose()


def test_every_kind_of_alias_move_is_recorded_and_rollback_toggles(registered):
    settings, engine, client, (v1, v2, v3, v4) = registered
    name = settings.model_name
    scores = {v1: 0.70, v2: 0.80, v3: 0.60, v4: 0.90}

    def decide(version: str, policy: str = "immediate") -> promotion.Decision:
        return promotion.decide(
            engine, client, name, version, scores[version], scores.__getitem__, "f1_macro", 0.0, "run-1", policy
        )

    decide(v1)  # no champion: promoted
    decide(v2)  # beats v1: promoted
    decide(v3)  # loses: challenger
    shadowed = decide(v4, policy="shadow")  # beats v2 under the shadow policy: challenger, champion stays
    assert shadowed.decision == promotion.DECISION_SHADOW
    assert client.get_model_version_by_alias(name, "champion").version == v2
    assert client.get_model_version_by_alias(name, "challenger").version == v4
    promotion.promote(engine, client, name, v3, decided_by="cli:alice")
    promotion.rollback(engine, client, name, decided_by="ui:bob")  # back to v2, the champion before v3
    assert client.get_model_version_by_alias(name, "champion").version == v2
    promotion.rollback(engine, client, name, decided_by="ui:bob")  # a second rollback undoes the first
    assert client.get_model_version_by_alias(name, "champion").version == v3
    pin.pin(engine, client, name, "cli:dave", "release freeze")  # recorded, and no alias move for rollback
    pin.unpin(engine, client, name, by="cli:dave")
    promotion.rollback(engine, client, name, decided_by="ui:bob")
    assert client.get_model_version_by_alias(name, "champion").version == v2

    rows = _rows(engine, name)
    assert _moves(rows) == [
        ("champion", "promoted", None, v1),
        ("champion", "promoted", v1, v2),
        ("challenger", "challenger", None, v3),
        ("challenger", "shadow_started", v3, v4),
        ("champion", "manual_promote", v2, v3),
        ("champion", "rollback", v3, v2),
        ("champion", "rollback", v2, v3),
        ("champion", "pin", v3, v3),
        ("champion", "unpin", v3, v3),
        ("champion", "rollback", v3, v2),
    ]
    assert [r["actor"] for r in rows] == ["run-1"] * 4 + ["cli:alice"] + ["ui:bob"] * 2 + ["cli:dave"] * 2 + ["ui:bob"]
    assert rows[7]["reason"] == "release freeze"
    assert rows[1]["candidate_score"] == pytest.approx(0.80) and rows[1]["champion_score"] == pytest.approx(0.70)
    assert rows[3]["policy"] == "shadow" and "shadowed" in rows[3]["reason"]
    assert rows[0]["champion_score"] is None and "no champion" in rows[0]["reason"]

    # A retried promote step (decision already recorded) moves nothing and writes no second row.
    decide(v4, policy="shadow")
    assert len(_rows(engine, name)) == len(rows)

    # `forestops history --json` prints the same rows, newest first.
    env = {**os.environ, **env_of(settings)}
    done = subprocess.run(forestops_argv("history", "--json"), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert [(r["action"], r["to_version"]) for r in printed] == [(r["action"], r["to_version"]) for r in rows[::-1]]
    text = subprocess.run(forestops_argv("history"), env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and f"v{v3} -> v{v2}" in text.stdout and "cli:alice" in text.stdout


def test_a_failed_alias_move_leaves_no_history_row(registered):
    settings, engine, client, (v1, *_rest) = registered

    class BrokenRegistry:
        """The real client, except that moving an alias fails (MLflow went away mid-promotion)."""

        def __getattr__(self, attribute):
            return getattr(client, attribute)

        def set_registered_model_alias(self, *args):
            raise RuntimeError("registry unreachable")

    with pytest.raises(RuntimeError, match="unreachable"):
        promotion.promote(engine, BrokenRegistry(), settings.model_name, v1)
    assert _rows(engine, settings.model_name) == []


def test_history_on_sqlite_is_append_only_and_written_under_the_lock(registered, tmp_path):
    settings, _engine, client, (v1, v2, *_rest) = registered
    engine = make_engine(f"sqlite:///{tmp_path / 'covertype.db'}")
    ensure_schema(engine)
    promotion.promote(engine, client, settings.model_name, v1, decided_by="cli:carol")
    promotion.promote(engine, client, settings.model_name, v2, decided_by="cli:carol")
    assert _moves(_rows(engine, settings.model_name)) == [
        ("champion", "manual_promote", None, v1),
        ("champion", "manual_promote", v1, v2),
    ]
    for statement in ("UPDATE alias_history SET actor = 'mallory'", "DELETE FROM alias_history"):
        with pytest.raises(sa.exc.IntegrityError, match="append-only"), engine.begin() as connection:
            connection.execute(sa.text(statement))
    engine.dispose()
