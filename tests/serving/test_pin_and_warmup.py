"""What the inference API tells a newcomer: an honest 503 before the first model, and the pin on /model."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from forestops.names import TAG_PROMOTION_PIN
from forestops.serving.champion import ChampionWatcher, first_model_eta
from forestops.settings import load_settings
from tests.serving.support import inference_service, set_champion, train_and_register, unique_model_name


@pytest.mark.unit
@pytest.mark.parametrize("token", [None, "a-token-for-the-test"])
def test_the_no_champion_message_says_training_is_automatic_and_offers_reload_only_with_a_token(token, tmp_path):
    overrides = {"home": tmp_path, "ingest_every": 5.0, "search_seconds": 30.0, "model_poll_seconds": 5.0}
    settings = load_settings(**overrides, **({"admin_token": token} if token else {}))
    message = ChampionWatcher(settings).no_champion_message
    assert "trains the first model by itself" in message
    assert f"roughly {first_model_eta(settings):.0f} s" in message and "within 5 s" in message
    assert "forestops train --force" in message
    assert ("/admin/reload" in message) is (token is not None)


@pytest.mark.integration
def test_model_shows_the_promotion_pin_while_it_is_set(mlflow_server, tmp_path):
    name = unique_model_name("serving-pin")
    with inference_service(mlflow_server.url, name, tmp_path) as service, service.client() as client:
        version = train_and_register(mlflow_server.url, name, seed=3)
        set_champion(mlflow_server.url, name, version)
        service.wait_for(lambda: client.get("/model").json()["version"] == version, "loading the champion")
        assert client.get("/model").json()["promotion_pin"] is None

        registry = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
        pin = {"version": version, "by": "cli:test", "at": "2026-01-01T00:00:00+00:00", "reason": "audit"}
        registry.set_registered_model_tag(name, TAG_PROMOTION_PIN, json.dumps(pin))
        service.wait_for(lambda: client.get("/model").json()["promotion_pin"] is not None, "seeing the pin")
        shown = client.get("/model").json()["promotion_pin"]
        assert shown["version"] == version and shown["reason"] == "audit"
        assert "automatic promotion paused" in shown["description"]

        registry.delete_registered_model_tag(name, TAG_PROMOTION_PIN)
        service.wait_for(lambda: client.get("/model").json()["promotion_pin"] is None, "seeing the pin lifted")
