"""Shared by the monitoring tests and the Monitoring page's screenshot: a champion, a shifted batch."""

from __future__ import annotations

from forestops import names, schema
from forestops.storage.db import make_engine

SHIFTED = (
    "Elevation",
    "Aspect",
    "Hillshade_9am",
    "Horizontal_Distance_To_Roadways",
    "Horizontal_Distance_To_Fire_Points",
)


def shifted(rows: list[list[str]]) -> list[list[str]]:
    """The same rows with five columns moved inside their domains (a covariate shift, labels unchanged).

    Each column is squeezed towards its low end, which moves any distribution
    (a mirror image would leave a symmetric one, such as generated data's, unchanged).
    """
    index = {name: i for i, name in enumerate(schema.RAW_COLUMNS)}
    out = []
    for row in rows:
        row = list(row)
        row[index["Elevation"]] = str(1850 + (int(row[index["Elevation"]]) - 1850) // 2)
        row[index["Aspect"]] = str(int(row[index["Aspect"]]) // 2)
        row[index["Hillshade_9am"]] = str(int(row[index["Hillshade_9am"]]) // 2)
        row[index["Horizontal_Distance_To_Roadways"]] = str(int(row[index["Horizontal_Distance_To_Roadways"]]) // 4)
        fire = index["Horizontal_Distance_To_Fire_Points"]
        row[fire] = str(int(row[fire]) // 4)
        out.append(row)
    return out


def register_champion(settings) -> str:
    """A small LightGBM fitted on the stored rows, registered as the pipeline does and made champion.

    Like a real training it has a ``training_log`` row recording the rows it
    used (``max_raw_id``) and the version carries its ``training_log_id``.
    """
    import mlflow

    from forestops.training import candidates, data, gate, registry

    engine = make_engine(settings.raw_database_url)
    decision = gate.should_train(engine, None, True, "test")
    frame = data.read_raw_rows(engine, decision.max_raw_id)
    features, labels = data.features_and_labels(frame)
    pipeline = candidates.fit_pipeline(
        candidates.build_pipeline("lightgbm", {"n_estimators": 30, "num_leaves": 15}, seed=0), features, labels
    )
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.experiment_name)
    with mlflow.start_run():
        mlflow.log_metrics({"accuracy": 0.9, "f1_macro": 0.8})
        version = registry.log_and_register(
            pipeline, features, settings.model_name, tags={"training_log_id": decision.log_id}
        )
    gate.update(engine, decision.log_id, status=names.TrainingStatus.TRAINED, model_version=version)
    engine.dispose()
    mlflow.MlflowClient(settings.mlflow_tracking_uri).set_registered_model_alias(
        settings.model_name, names.ALIAS_CHAMPION, version
    )
    return version
