"""A registered model cannot run code in the processes that load it.

MLflow's own loader takes the format and the trusted types from the model's
``MLmodel`` file; ours (forestops.model_loading) accepts only skops with the
project's trusted types.  The payloads below would write a marker file when
loaded the way MLflow would load them; the tests check that nothing is
written and that the refusal is reported.
"""

from __future__ import annotations

import os
import pathlib
from pathlib import Path

import httpx
import pytest
import yaml

from forestops import schema
from forestops.model_loading import TRUSTED_TYPES, UntrustedModel, load_model_folder, load_registered_model
from tests.serving.support import inference_service, set_champion, train_and_register, unique_model_name

BODY = {"instances": [schema.example_features()] * 2}


class WritesAFile:
    """Unpickling this calls ``Path.write_text(marker, ...)``: code run by merely loading the model."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "code ran while loading the model"))


def _skops_model_folder(folder: Path, estimator, declared_trusted: list[str]) -> Path:
    """An MLflow sklearn model folder in the skops format whose MLmodel trusts ``declared_trusted``."""
    import skops.io

    folder.mkdir(parents=True)
    skops.io.dump(estimator, folder / "model.skops")
    flavour = {"pickled_model": "model.skops", "serialization_format": "skops", "skops_trusted_types": declared_trusted}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": flavour}}))
    return folder


@pytest.mark.unit
def test_a_skops_model_with_a_type_we_do_not_trust_is_refused_whatever_its_mlmodel_says(tmp_path):
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    estimator = FunctionTransformer(func=os.system)
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    assert untrusted and not set(untrusted) <= set(TRUSTED_TYPES)
    folder = _skops_model_folder(tmp_path / "model", estimator, declared_trusted=untrusted)
    with pytest.raises(UntrustedModel, match="does not trust"):
        load_model_folder(folder)


@pytest.mark.unit
def test_a_model_file_outside_the_model_folder_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    folder = _skops_model_folder(tmp_path / "model", LogisticRegression(), declared_trusted=[])
    (folder / "model.skops").rename(tmp_path / "elsewhere.skops")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "../elsewhere.skops"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(UntrustedModel, match="not a file in the model"):
        load_model_folder(folder)


@pytest.mark.unit
def test_a_trusted_skops_model_loads(tmp_path):
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    loaded = load_model_folder(_skops_model_folder(tmp_path / "model", fitted, declared_trusted=[]))
    assert loaded.predict([[1.0]]).tolist() == [1]


def _register_pickle_model(tracking_uri: str, model_name: str, marker: Path) -> str:
    """A version logged with MLflow's cloudpickle format whose loading would write ``marker``."""
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"serving-tests-{model_name}")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            WritesAFile(marker),
            name="model",
            serialization_format="cloudpickle",
            registered_model_name=model_name,
            pip_requirements=["scikit-learn"],  # else MLflow loads the model to infer them (and runs the payload)
        )
    return str(info.registered_model_version)


@pytest.mark.integration
def test_a_pickle_champion_is_refused_and_the_previous_model_keeps_serving(mlflow_server, tmp_path_factory):
    model_name = unique_model_name("serving-untrusted")
    folder = tmp_path_factory.mktemp("inference-untrusted")
    marker = folder / "code-ran"
    good = train_and_register(mlflow_server.url, model_name, seed=0)
    set_champion(mlflow_server.url, model_name, good)
    evil = _register_pickle_model(mlflow_server.url, model_name, marker)
    assert not marker.exists()

    # training's re-scoring of the champion goes through the same loader
    with pytest.raises(UntrustedModel, match="cloudpickle"):
        load_registered_model(model_name, evil, mlflow_server.url)
    assert not marker.exists()

    with inference_service(mlflow_server.url, model_name, folder) as service:
        service.wait_for(lambda: service.served_version() == good, "serving the skops version")
        set_champion(mlflow_server.url, model_name, evil)
        with service.client() as client:

            def refusal_reported() -> bool:
                failure = client.get("/model").json()["load_failure"]
                return failure is not None and failure["version"] == evil

            service.wait_for(refusal_reported, "reporting the refused version")
            model = client.get("/model").json()
            assert model["version"] == good
            assert model["load_failure"]["refused"] is True
            assert "cloudpickle" in model["load_failure"]["error"]
            answered = client.post("/predict", json=BODY)
            assert answered.status_code == 200 and answered.json()["model"]["version"] == good
            metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
            assert "forestops_model_refusals_total 1.0" in metrics
    assert not marker.exists(), "loading the pickle model ran its code"
