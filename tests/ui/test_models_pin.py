"""The Models page shows a pin (automatic promotion paused) and explains champion_score."""

import json

import mlflow
import pytest

from forestops.names import ALIAS_CHAMPION, TAG_PROMOTION_PIN
from tests.ui.helpers import page

pytestmark = pytest.mark.integration


def test_a_pinned_model_says_so_and_how_to_resume(ui_env, ui_model):
    client = mlflow.MlflowClient(tracking_uri=ui_model.tracking_uri)
    name = f"{ui_model.name}_pinned"
    client.create_registered_model(name)
    version = client.copy_model_version(f"models:/{ui_model.name}/{ui_model.champion}", name).version
    client.set_registered_model_alias(name, ALIAS_CHAMPION, version)
    ui_env(mlflow_tracking_uri=ui_model.tracking_uri, model_name=name)

    at = page("models").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not [w for w in at.warning if "Pinned" in w.value]
    captions = " ".join(c.value for c in at.caption)
    assert "champion_score" in captions and "same rows" in captions
    assert "Automatic promotion is on" in captions

    pin = {"version": str(version), "by": "cli:tester", "at": "2026-12-01T00:00:00+00:00", "reason": "audit"}
    client.set_registered_model_tag(name, TAG_PROMOTION_PIN, json.dumps(pin))
    at = page("models").run()
    assert not at.exception and not at.error
    [warning] = [w for w in at.warning if "Pinned" in w.value]
    assert "Pinned: automatic promotion paused" in warning.value
    assert f"champion then v{version}" in warning.value and "audit" in warning.value
    assert "forestops unpin" in warning.value
