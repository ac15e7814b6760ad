"""What ``forestops pin`` and ``forestops unpin`` print (errors reach the CLI edge as ForestopsError)."""

from __future__ import annotations

import getpass

from forestops.settings import Settings


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _connect(settings: Settings):
    from forestops.storage.db import ensure_schema, make_engine
    from forestops.training.tracking import connect

    client = connect(settings.mlflow_tracking_uri, settings.experiment_name)
    engine = make_engine(settings.raw_database_url)
    ensure_schema(engine)
    return engine, client


def run_pin(settings: Settings, version: str | None, reason: str) -> int:
    from forestops.training import pin, promotion

    engine, client = _connect(settings)
    try:
        if version is not None and promotion.current_champion(client, settings.model_name) != str(version):
            promotion.promote(engine, client, settings.model_name, str(version), decided_by=_actor())
            print(f"{settings.model_name} version {version} is now champion")
        held = pin.pin(engine, client, settings.model_name, _actor(), reason)
    finally:
        engine.dispose()
    print(f"{settings.model_name} pinned at version {held.version}: {held.describe()}")
    print("trainings still register and score new versions (as challengers); `forestops unpin` resumes promotion")
    return 0


def run_unpin(settings: Settings) -> int:
    from forestops.training import pin

    engine, client = _connect(settings)
    try:
        lifted = pin.unpin(engine, client, settings.model_name, by=_actor())
    finally:
        engine.dispose()
    print(
        f"{settings.model_name} unpinned (was pinned at v{lifted.version} by {lifted.by}): "
        "the next training that beats the champion replaces it"
    )
    return 0
