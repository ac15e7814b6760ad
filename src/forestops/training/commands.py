"""What the ``train``, ``promote`` and ``rollback`` commands do, with exit codes.

Expected problems (MLflow down, failed data checks, an unknown version) end
with one clear line on stderr and exit code 1, not a traceback.
"""

from __future__ import annotations

import json
import logging
import sys

from forestops.settings import Settings

log = logging.getLogger(__name__)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _expected_errors() -> tuple[type[Exception], ...]:
    from forestops.training.checks import DataCheckFailed
    from forestops.training.promotion import PromotionError
    from forestops.training.tracking import MlflowUnavailable

    return (MlflowUnavailable, DataCheckFailed, PromotionError)


def run_train(settings: Settings, force: bool) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from forestops.training.steps import run_training

    try:
        result = run_training(settings, force=force, run_id=None)
    except _expected_errors() as error:
        return _fail(str(error))
    if not result["trained"]:
        print(f"not training: {result['gate']['reason']} (use --force to train anyway)")
        return 0
    promoted = result["promoted"]
    print(
        json.dumps(
            {
                "version": promoted["version"],
                "candidate": result["registered"]["candidate"],
                "decision": promoted["decision"],
                "scores": result["evaluated"]["scores"],
                "champion_score": promoted["champion_score"],
            },
            indent=2,
        )
    )
    return 0


def _engine_and_client(settings: Settings):
    from forestops.storage.db import ensure_schema, make_engine
    from forestops.training.tracking import connect

    client = connect(settings.mlflow_tracking_uri, settings.experiment_name)
    engine = make_engine(settings.raw_database_url)
    ensure_schema(engine)
    return engine, client


def run_promote(settings: Settings, version: str) -> int:
    from forestops.training import promotion

    try:
        engine, client = _engine_and_client(settings)
        decision = promotion.promote(engine, client, settings.model_name, version)
    except _expected_errors() as error:
        return _fail(str(error))
    print(f"{settings.model_name} version {decision.version} is now champion (was {decision.previous_champion})")
    return 0


def run_rollback(settings: Settings) -> int:
    from forestops.training import promotion

    try:
        engine, client = _engine_and_client(settings)
        decision = promotion.rollback(engine, client, settings.model_name)
    except _expected_errors() as error:
        return _fail(str(error))
    print(
        f"{settings.model_name} rolled back: version {decision.version} is champion again "
        f"(was {decision.previous_champion})"
    )
    return 0
