"""Logging a fitted pipeline to MLflow and registering it as a model version.

The format is MLflow 3's skops format, which loads only the types it is told
to trust.  ``TRUSTED_TYPES`` (kept in forestops.model_loading, which every
loader uses) lists them explicitly: everything our candidate pipelines
contain beyond what skops trusts by default.  A unit test checks the list
against what skops actually finds in each fitted candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from forestops import model_loading, schema
from forestops.names import ALIAS_CHAMPION, MODEL_ARTIFACT_NAME, SERIALIZATION_FORMAT, TAG_MODEL_PARAMS
from forestops.redaction import redact

log = logging.getLogger(__name__)

# One list for whoever logs or loads a model (forestops.model_loading).
TRUSTED_TYPES = model_loading.TRUSTED_TYPES


# What a fresh environment needs to load the model (plus this package, for
# the input step).  Listing them also spares MLflow its slow inference of
# requirements, which loads the model again in a subprocess.
REQUIREMENTS: tuple[str, ...] = ("scikit-learn", "lightgbm", "skops", "pandas", "numpy", "scipy")


def pinned_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in REQUIREMENTS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(name)
    return pinned


def input_example(features, rows: int = 5):
    """A few rows with categoricals as plain strings, as clients send them."""
    example = schema.feature_frame(features).head(rows).copy()
    for column in schema.CATEGORICAL_COLUMNS:
        example[column] = example[column].astype(str)
    return example


def version_of_run(client, model_name: str, run_id: str) -> str | None:
    """The (oldest usable) version of ``model_name`` registered from ``run_id``, if any.

    A retried register step runs in the same candidate run, so this is how it
    finds the version its failed attempt already created: the run id is
    stored on the version at creation, before any tag could be set.
    """
    found = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    usable = [v for v in found if v.status != "FAILED_REGISTRATION"]
    return str(min(int(v.version) for v in usable)) if usable else None


def set_version_tags(client, model_name: str, version: str, tags: Mapping[str, Any] | None) -> None:
    """Set model version tags; None becomes "" and every value is redacted.

    Tags are shown by MLflow's UI and ours: a reason quoting an error must not carry a secret.
    """
    for key, value in (tags or {}).items():
        client.set_model_version_tag(model_name, version, key, "" if value is None else redact(str(value)))


def log_and_register(
    pipeline: Any,
    example_features,
    model_name: str,
    *,
    tags: Mapping[str, object] | None = None,
) -> str:
    """Log ``pipeline`` as the ``model`` artefact of the active run and register it.

    Starts (and ends) a run of its own when none is active.  Returns the new
    version number of ``model_name`` as a string.  Idempotent per run: when
    the active run already registered a version of ``model_name`` (a retry
    after a failure past MLflow's registration), that version gets ``tags``
    and is returned instead of logging and registering a second one.
    """
    import mlflow
    from mlflow.models import infer_signature

    client = mlflow.MlflowClient()
    active = mlflow.active_run()
    own_run = active is None
    if active is not None:
        existing = version_of_run(client, model_name, active.info.run_id)
        if existing is not None:
            set_version_tags(client, model_name, existing, tags)
            log.info("%s version %s already registered from this run; not registering again", model_name, existing)
            return existing
    example = input_example(example_features)
    signature = infer_signature(example, pipeline.predict_proba(example))
    run = mlflow.start_run() if own_run else mlflow.active_run()
    assert run is not None  # started just now, or the active run seen above
    try:
        info = mlflow.sklearn.log_model(
            pipeline,
            name=MODEL_ARTIFACT_NAME,
            serialization_format=SERIALIZATION_FORMAT,
            skops_trusted_types=list(TRUSTED_TYPES),
            signature=signature,
            input_example=example,
            registered_model_name=model_name,
            pyfunc_predict_fn="predict",
            pip_requirements=pinned_requirements(),
        )
    finally:
        if own_run:
            mlflow.end_run()
    version = str(info.registered_model_version)
    set_version_tags(client, model_name, version, tags)
    log.info("registered %s version %s from run %s", model_name, version, run.info.run_id)
    return version


def champion_version(client, model_name: str):
    """The version holding the champion alias, or ``None`` when no version holds it (or no model exists)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, ALIAS_CHAMPION)
    except MlflowException:
        return None


def recipe_of(version) -> tuple[str, dict[str, Any]] | None:
    """A version's candidate and the parameters it was fitted with, if it recorded them.

    The next training's search starts from the champion's (see
    ``training.search``); a version from before the tag existed, or none at
    all, gives ``None``.
    """
    import json

    if version is None:
        return None
    candidate, recorded = version.tags.get("candidate"), version.tags.get(TAG_MODEL_PARAMS)
    if not candidate or not recorded:
        return None
    try:
        params = json.loads(recorded)
    except ValueError:
        log.warning("version %s: unreadable %s tag; searching from the defaults", version.version, TAG_MODEL_PARAMS)
        return None
    return (candidate, params) if isinstance(params, dict) else None


def champion_recipe(client, model_name: str) -> tuple[str, dict[str, Any]] | None:
    """The champion's recipe (``recipe_of``), or ``None`` without a champion."""
    return recipe_of(champion_version(client, model_name))
