"""Start-up with the MLflow registry unreachable: the service still comes up and says why it cannot answer."""

from __future__ import annotations

import pytest

from forestops import schema
from tests.serving.support import inference_service, unique_model_name
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


def test_service_starts_and_reports_an_unreachable_registry(tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    with inference_service(nowhere, unique_model_name("serving-down"), tmp_path) as service, service.client() as client:
        service.wait_for(lambda: client.get("/model").json()["registry_error"] is not None, "a failed registry check")
        model = client.get("/model").json()
        assert model["version"] is None and nowhere in model["message"] and "cannot be reached" in model["message"]
        refused = client.post("/predict", json={"instances": [schema.example_features()]})
        assert refused.status_code == 503 and "cannot be reached" in refused.json()["detail"]
        assert client.get("/ready").status_code == 503
        assert client.get("/health").json()["status"] == "ok"
