"""The service follows the ``champion`` alias without a restart, under load, and survives bad versions.

The service starts before the model has any version; the tests run in file
order and build on each other's registry state (each step is also a
precondition the next one checks).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from forestops import schema
from tests.serving.support import (
    ADMIN_TOKEN,
    inference_service,
    register_unloadable,
    set_champion,
    train_and_register,
    unique_model_name,
)

pytestmark = pytest.mark.integration

BODY = {"instances": [schema.example_features()] * 3}


@pytest.fixture(scope="module")
def model_name() -> str:
    return unique_model_name("serving-swap")


@pytest.fixture(scope="module")
def service(mlflow_server, model_name, tmp_path_factory):
    with inference_service(mlflow_server.url, model_name, tmp_path_factory.mktemp("inference-swap")) as running:
        yield running


def test_503_before_any_champion_then_200_after_registration_without_restart(service, mlflow_server, model_name):
    with service.client() as client:
        refused = client.post("/predict", json=BODY)
        assert refused.status_code == 503
        assert "no champion yet" in refused.json()["detail"] and "forestops train" in refused.json()["detail"]
        assert client.get("/ready").status_code == 503
        assert client.get("/health").json() == {"status": "ok", "model_loaded": False}
        assert client.get("/model").json()["version"] is None
        pid = service.process.process.pid

        version = train_and_register(mlflow_server.url, model_name, seed=1)
        set_champion(mlflow_server.url, model_name, version)
        service.wait_for(lambda: client.get("/ready").status_code == 200, "picking up the first champion")

        answered = client.post("/predict", json=BODY)
    assert answered.status_code == 200, answered.text
    assert answered.json()["model"]["version"] == version
    assert service.process.process.pid == pid and service.process.process.poll() is None


@dataclass
class Outcome:
    sent_at: float
    received_at: float
    status: int | str
    version: str | None


class LoadGenerator:
    """Clients that post continuously until stopped, recording every outcome."""

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url = url
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post("/predict", json=BODY)
                    version = response.json()["model"]["version"] if response.status_code == 200 else None
                    outcome = Outcome(sent, time.monotonic(), response.status_code, version)
                except Exception as error:  # a dropped connection is a failed request too
                    outcome = Outcome(sent, time.monotonic(), repr(error), None)
                self.outcomes.append(outcome)

    def __enter__(self) -> LoadGenerator:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for_version(self, version: str, timeout: float = 90) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = [o.received_at for o in list(self.outcomes) if o.version == version]
            if seen:
                return min(seen)
            time.sleep(0.05)
        raise AssertionError(f"no answer from version {version} within {timeout}s")


def test_hot_swap_under_load_loses_no_request(service, mlflow_server, model_name):
    first = service.served_version()
    assert first is not None, "the previous test should have made a champion"
    second = train_and_register(mlflow_server.url, model_name, seed=2)
    third = train_and_register(mlflow_server.url, model_name, seed=3)

    with LoadGenerator(service.url) as load:
        load.wait_for_version(first)
        set_champion(mlflow_server.url, model_name, second)
        load.wait_for_version(second)
        set_champion(mlflow_server.url, model_name, third)
        third_seen_at = load.wait_for_version(third)
        time.sleep(1.0)

    failures = [o for o in load.outcomes if o.status != 200]
    assert not failures, f"{len(failures)} of {len(load.outcomes)} requests failed: {failures[:5]}"
    assert {o.version for o in load.outcomes} == {first, second, third}
    after = [o.version for o in load.outcomes if o.sent_at > third_seen_at]
    assert after and set(after) == {third}
    with service.client() as client:
        assert {client.post("/predict", json=BODY).json()["model"]["version"] for _ in range(10)} == {third}


def test_an_unloadable_version_keeps_the_old_one_serving(service, mlflow_server, model_name):
    serving = service.served_version()
    assert serving is not None
    broken = register_unloadable(mlflow_server.url, model_name)
    set_champion(mlflow_server.url, model_name, broken)

    with service.client() as client:

        def failure_reported() -> bool:
            failure = client.get("/model").json()["load_failure"]
            return failure is not None and failure["version"] == broken

        service.wait_for(failure_reported, "reporting the broken version")
        model = client.get("/model").json()
        assert model["version"] == serving
        assert "sklearn" in model["load_failure"]["error"] or "flavor" in model["load_failure"]["error"].lower()
        answered = client.post("/predict", json=BODY)
        assert answered.status_code == 200 and answered.json()["model"]["version"] == serving
        assert client.get("/ready").status_code == 200

        forced = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert forced.status_code == 200
        assert forced.json()["outcome"] == "load failed" and forced.json()["model"]["version"] == serving
        assert "forestops_model_load_failures_total 2.0" in client.get("/metrics").text

        # Pointing the alias back at a good version clears nothing that was serving.
        set_champion(mlflow_server.url, model_name, serving)
        time.sleep(1.0)
        assert client.post("/predict", json=BODY).json()["model"]["version"] == serving
