"""What the ``train``, ``promote`` and ``rollback`` commands do, with exit codes.

Expected problems (MLflow down, failed data checks, an unknown version) are
ForestopsErrors: the CLI edge (forestops.cli) prints them as one clear line on
stderr and exits 1, without a traceback.
"""

from __future__ import annotations

import json

from forestops.logs import setup_logging
from forestops.settings import Settings


def run_train(settings: Settings, force: bool) -> int:
    setup_logging()
    from forestops.training.steps import run_training

    result = run_training(settings, force=force, run_id=None)
    if result.promoted is None or result.registered is None or result.evaluated is None:
        print(f"not training: {result.gate.reason} (use --force to train anyway)")
        return 0
    print(
        json.dumps(
            {
                "version": result.promoted.version,
                "candidate": result.registered.candidate,
                "decision": result.promoted.decision,
                "scores": result.evaluated.scores,
                "champion_score": result.promoted.champion_score,
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
    from forestops.training.history import cli_actor

    engine, client = _engine_and_client(settings)
    decision = promotion.promote(engine, client, settings.model_name, version, decided_by=cli_actor())
    print(f"{settings.model_name} version {decision.version} is now champion (was {decision.previous_champion})")
    return 0


def run_rollback(settings: Settings) -> int:
    from forestops.training import promotion
    from forestops.training.history import cli_actor

    engine, client = _engine_and_client(settings)
    decision = promotion.rollback(engine, client, settings.model_name, decided_by=cli_actor())
    print(
        f"{settings.model_name} rolled back: version {decision.version} is champion again "
        f"(was {decision.previous_champion})"
    )
    return 0


def format_history(rows: list[dict]) -> str:
    """One line per alias change, newest first: when, alias, from -> to, what, who, why."""

    def version(value: str | None) -> str:
        return f"v{value}" if value else "none"

    lines = []
    for row in rows:
        lines.append(
            f"{row['changed_at']}  @{row['alias']:<10}  {version(row['from_version']):>5} -> "
            f"{version(row['to_version']):<5}  {row['action']:<15}  {row['actor']}"
            + (f"  ({row['reason']})" if row["reason"] else "")
        )
    return "\n".join(lines)


def run_history(settings: Settings, as_json: bool, limit: int) -> int:
    """Print the promotion history (alias_history), newest first."""
    from forestops.storage.db import ensure_schema, make_engine
    from forestops.training import history

    engine = make_engine(settings.raw_database_url)
    try:
        ensure_schema(engine)
        with engine.connect() as connection:
            rows = history.entries(connection, settings.model_name, limit)
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no alias change of {settings.model_name!r} recorded yet")
    else:
        print(format_history(rows))
    return 0
