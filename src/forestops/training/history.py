"""The promotion history: one append-only row per move of a registry alias.

MLflow's registry keeps only where an alias points now, not who moved it,
when, from which version or why.  Every alias change in forestops
(automatic promotion, a shadow decision, a manual promote, a rollback) is
therefore written here, on the connection that holds the promotion lock and
in the same transaction, so the table and the registry tell the same story.
The table is append-only: rows are never updated or deleted (the MySQL
application user has no grant to, SQLite refuses by trigger).

Rollback reads this table to find "the champion before the current one".
"""

from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from forestops.storage.tables import alias_history

ACTION_PROMOTED = "promoted"  # a candidate beat the champion and took the alias at once
ACTION_CHALLENGER = "challenger"  # a candidate that did not beat the champion (immediate policy)
ACTION_SHADOW_STARTED = "shadow_started"  # a better candidate is shadowed on live traffic first
ACTION_SHADOW_PROMOTED = "shadow_promoted"  # the shadowed challenger met the thresholds
ACTION_SHADOW_REJECTED = "shadow_rejected"  # it did not: the challenger alias is removed
ACTION_MANUAL = "manual_promote"
ACTION_ROLLBACK = "rollback"
# The pin (forestops.training.pin) moves no alias but changes who may move it: recorded with the
# champion it holds as both versions, and never mistaken for a move by rollback.
ACTION_PIN = "pin"
ACTION_UNPIN = "unpin"
ACTIONS = (
    ACTION_PROMOTED,
    ACTION_CHALLENGER,
    ACTION_SHADOW_STARTED,
    ACTION_SHADOW_PROMOTED,
    ACTION_SHADOW_REJECTED,
    ACTION_MANUAL,
    ACTION_ROLLBACK,
    ACTION_PIN,
    ACTION_UNPIN,
)


@dataclass(frozen=True)
class AliasChange:
    """One alias move as the history records it (``to_version`` None: the alias was removed)."""

    alias: str
    action: str
    from_version: str | None
    to_version: str | None
    actor: str
    policy: str | None = None
    candidate_score: float | None = None
    champion_score: float | None = None
    reason: str | None = None


def cli_actor() -> str:
    """``cli:<login>`` for the promote/rollback commands."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "cli:unknown"


def ui_actor(user: str | None) -> str:
    return f"ui:{user or 'anonymous'}"


def record(connection: sa.Connection, model_name: str, change: AliasChange) -> None:
    """Append one row; the caller commits (with the alias move, under the promotion lock)."""
    if change.action not in ACTIONS:
        raise ValueError(f"unknown alias history action {change.action!r}")
    values = asdict(change)
    values["actor"] = (change.actor or "unknown")[:250]
    connection.execute(
        alias_history.insert().values(
            changed_at=datetime.now(UTC).replace(tzinfo=None), model_name=model_name, **values
        )
    )


def move_alias(connection: sa.Connection, client, model_name: str, change: AliasChange) -> None:
    """Record ``change``, then make it in the registry: the one way forestops moves an alias.

    The row is written first, in the caller's transaction under the
    promotion lock: if the registry call fails, the transaction rolls the
    row back, so the history never shows a move that did not happen.
    """
    record(connection, model_name, change)
    if change.to_version is None:
        client.delete_registered_model_alias(model_name, change.alias)
    else:
        client.set_registered_model_alias(model_name, change.alias, change.to_version)


def entries(connection: sa.Connection, model_name: str, limit: int | None = 200) -> list[dict[str, Any]]:
    """The model's alias changes, newest first, as plain dicts (``changed_at`` in UTC)."""
    query = sa.select(alias_history).where(alias_history.c.model_name == model_name).order_by(alias_history.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for row in connection.execute(query).mappings():
        entry = dict(row)
        entry["changed_at"] = entry["changed_at"].replace(tzinfo=UTC).isoformat(timespec="seconds")
        rows.append(entry)
    return rows


def champion_before(connection: sa.Connection, model_name: str, champion: str) -> str | None:
    """The version that held ``champion`` just before ``champion`` got it, per the history.

    That is the ``from_version`` of the newest row that gave the alias to
    the current champion.  None when the history has no such row (the alias
    was moved before the history existed, or by hand in MLflow).
    """
    row = connection.execute(
        sa.select(alias_history.c.from_version)
        .where(
            alias_history.c.model_name == model_name,
            alias_history.c.alias == "champion",
            alias_history.c.to_version == champion,
            alias_history.c.action.notin_((ACTION_PIN, ACTION_UNPIN)),
        )
        .order_by(alias_history.c.id.desc())
        .limit(1)
    ).first()
    return row.from_version if row is not None else None


def versions_since(connection: sa.Connection, model_name: str, since: datetime) -> set[str]:
    """Every version named by a history row newer than ``since`` (kept by retention)."""
    rows = connection.execute(
        sa.select(alias_history.c.from_version, alias_history.c.to_version).where(
            alias_history.c.model_name == model_name, alias_history.c.changed_at >= since.replace(tzinfo=None)
        )
    )
    return {version for row in rows for version in row if version}
