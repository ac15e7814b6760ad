"""The pin: automatic promotion paused until lifted, set and lifted through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import mlflow
import pytest

from forestops.local import recorded, supervise
from forestops.storage.db import ensure_schema, make_engine
from forestops.training import candidates, data, pin, promotion, registry, tracking
from tests.support.processes import forestops_argv
from tests.training.conftest import env_of, insert_raw_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def three_versions(fresh_database_url, settings_for, training_rows):
    """Three versions of one cheap pipeline (scores are given, not measured), on MariaDB and a real MLflow."""
    insert_raw_rows(fresh_database_url, training_rows[:600])
    settings = settings_for(fresh_database_url)
    engine = make_engine(fresh_database_url)
    ensure_schema(engine)
    x, y = data.features_and_labels(data.read_raw_rows(engine))
    model = candidates.fit_pipeline(candidates.build_pipeline("baseline"), x, y)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.experiment_name)
    versions = [registry.log_and_register(model, x.head(5), settings.model_name) for _ in range(3)]
    client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
    yield settings, engine, client, versions
    engine.dispose()


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_of(settings), "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    return subprocess.run(forestops_argv(*args), capture_output=True, text=True, env=env, timeout=180)


def test_a_pinned_champion_holds_against_a_better_training_until_unpinned(three_versions):
    settings, engine, client, (v1, v2, v3) = three_versions
    name = settings.model_name
    scores = {v1: 0.70, v2: 0.90, v3: 0.95}

    def decide(version: str) -> promotion.Decision:
        return promotion.decide(engine, client, name, version, scores[version], scores.__getitem__, "f1_macro", 0.0)

    assert decide(v1).decision == promotion.DECISION_CHAMPION

    pinned = _cli(settings, "pin", "--reason", "audit")
    assert pinned.returncode == 0, pinned.stderr
    assert f"pinned at version {v1}" in pinned.stdout and "audit" in pinned.stdout
    held = pin.read_pin(client, name)
    assert held is not None and held.version == v1 and held.reason == "audit"

    # A better training while pinned: registered and scored, but only challenger.
    blocked = decide(v2)
    assert blocked.decision == promotion.DECISION_HELD_BY_PIN
    assert promotion.current_champion(client, name) == v1
    assert client.get_model_version_by_alias(name, promotion.CHALLENGER).version == v2
    assert client.get_model_version(name, v2).tags["decision"] == promotion.DECISION_HELD_BY_PIN

    again = _cli(settings, "pin")
    assert again.returncode == 1 and "already pinned" in again.stderr and "unpin" in again.stderr

    lifted = _cli(settings, "unpin")
    assert lifted.returncode == 0, lifted.stderr
    assert pin.read_pin(client, name) is None

    assert decide(v3).decision == promotion.DECISION_CHAMPION
    assert promotion.current_champion(client, name) == v3


def test_pinning_a_version_promotes_it_first_and_a_model_without_champion_cannot_be_pinned(three_versions):
    settings, engine, client, (_, v2, _) = three_versions
    with pytest.raises(pin.PinError, match="no champion"):
        pin.pin(engine, client, settings.model_name, "test")
    with pytest.raises(pin.PinError, match="not pinned"):
        pin.unpin(engine, client, settings.model_name)

    result = _cli(settings, "pin", v2)
    assert result.returncode == 0, result.stderr
    assert promotion.current_champion(client, settings.model_name) == v2
    assert pin.read_pin(client, settings.model_name).version == v2


@pytest.fixture
def running_stack(tmp_path):
    """A stack state file with a live process of ours, recording the MLflow and model a stack would."""
    home = tmp_path / "stack-home"
    record = supervise.start_detached(
        "ui", [sys.executable, "-c", "import time; time.sleep(300)"], home / "logs" / "ui.log", os.environ, cwd=tmp_path
    )

    def record_settings(settings) -> subprocess.CompletedProcess:
        state = supervise.StackState(path=home / "stack" / "state.json", started_at=time.time(), mode="embedded")
        state.services = {"ui": record}
        kept = {
            "FORESTOPS_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "FORESTOPS_MODEL_NAME": settings.model_name,
        }
        state.notes = {recorded.NOTE: json.dumps(kept)}
        state.save()
        # Typed in another shell: none of the stack's settings in the environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORESTOPS_")}
        env.update({"FORESTOPS_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"})
        return subprocess.run(forestops_argv("stack", "status"), capture_output=True, text=True, env=env, timeout=120)

    yield record_settings
    supervise.stop([record], timeout=5)


def test_stack_status_shows_whether_promotion_is_pinned(three_versions, running_stack):
    settings, engine, client, (v1, _, _) = three_versions
    promotion.promote(engine, client, settings.model_name, v1, decided_by="test")

    before = running_stack(settings)
    assert before.returncode == 0, before.stderr
    assert "promotion: automatic" in before.stdout and "`forestops pin`" in before.stdout

    pinned = _cli(settings, "pin", "--reason", "audit")
    assert pinned.returncode == 0, pinned.stderr
    held = pin.read_pin(client, settings.model_name)
    assert held is not None
    status = running_stack(settings)
    assert status.returncode == 0, status.stderr
    [line] = [line for line in status.stdout.splitlines() if line.startswith("promotion:")]
    assert line.startswith(f"promotion: pinned to version {v1} by {held.by} since {held.at}, reason: audit")
    assert "automatic promotion paused" in line and "`forestops unpin` lifts it" in line

    assert _cli(settings, "unpin").returncode == 0
    assert "promotion: automatic" in running_stack(settings).stdout
