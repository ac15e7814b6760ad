"""Which version the monitor scores with, and what that version was trained on.

The alias is resolved once per monitor run.  A version's training rows are
every raw row up to the ``max_raw_id`` its training recorded in
``training_log`` (found through the version's ``training_log_id`` tag), so
"rows this version never trained on" is simply ``id > max_raw_id``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from forestops import names
from forestops.storage import tables

log = logging.getLogger(__name__)

TAG_TRAINING_LOG_ID = "training_log_id"


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str | None
    trained_up_to: int  # highest raw_rows.id its training used
    evaluation_accuracy: float | None  # on its training's evaluation split: the baseline of the accuracy alert


def resolve(client, model_name: str, engine: sa.Engine) -> Champion | None:
    """The version ``champion`` points at now, or None when there is no champion yet."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(model_name, names.ALIAS_CHAMPION)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    log_id = (version.tags or {}).get(TAG_TRAINING_LOG_ID)
    trained_up_to = None
    if log_id and str(log_id).isdigit():
        with engine.connect() as connection:
            trained_up_to = connection.execute(
                sa.select(tables.training_log.c.max_raw_id).where(tables.training_log.c.id == int(log_id))
            ).scalar()
    if trained_up_to is None:
        # A version registered outside the pipeline: nothing records which rows it saw.
        log.warning("version %s has no training_log_id tag: its scores may include rows it trained on", version.version)
        trained_up_to = 0
    accuracy = None
    if version.run_id:
        accuracy = client.get_run(version.run_id).data.metrics.get("accuracy")
    return Champion(str(version.version), version.run_id, int(trained_up_to), accuracy)
