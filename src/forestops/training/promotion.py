"""Champion/challenger promotion as a compare-and-set, plus manual promote and rollback.

MLflow's registry has no compare-and-set on aliases, so two trainings that
finish together could both read "champion scores 0.80", both beat it, and
both move the alias.  Every alias change therefore happens while holding a
lock that all contenders share, in the ``covertype`` database every
training already talks to: ``GET_LOCK`` on MySQL/MariaDB, ``BEGIN
IMMEDIATE`` (a database-wide write lock) on SQLite.  Inside the lock the
alias is re-read, the current champion is scored on the same evaluation rows,
and only then is the alias moved.

Every alias move is also appended to the promotion history
(``forestops.training.history``) on the lock's own connection, committed
together with the move, so ``forestops history`` and rollback see exactly
what happened.  The decision itself is the pure function ``choose``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from forestops.errors import ForestopsError
from forestops.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    TAG_CANDIDATE_SCORE,
    TAG_CHAMPION_SCORE,
    TAG_DECIDED_AT,
    TAG_DECIDED_BY,
    TAG_DECISION,
    TAG_PREVIOUS_CHAMPION,
    TAG_PRIMARY_METRIC,
)
from forestops.training import history
from forestops.training.registry import set_version_tags

log = logging.getLogger(__name__)

# The aliases and the version tags (the model contract: the decision, both
# scores, ``champion_score`` only when there was a champion to compare with,
# and ``previous_champion``, where rollback finds the version to return to)
# live in forestops.names, which the UI and the inference service read too.
CHAMPION = ALIAS_CHAMPION
CHALLENGER = ALIAS_CHALLENGER
LOCK_TIMEOUT_SECONDS = 300

DECISION_CHAMPION = "champion"
DECISION_CHALLENGER = "challenger"
DECISION_MANUAL = "promoted_by_hand"
DECISION_ROLLED_BACK = "rolled_back"
DECISION_RESTORED = "restored_by_rollback"
# Beat the champion while automatic promotion was paused (forestops.training.pin): challenger only.
DECISION_HELD_BY_PIN = "held_by_pin"
# Shadow policy: the better candidate holds ``challenger`` while it is scored on live traffic.
DECISION_SHADOW = "shadow_challenger"
DECISION_SHADOW_REJECTED = "shadow_rejected"

POLICY_IMMEDIATE = "immediate"
POLICY_SHADOW = "shadow"
# The champion the shadowed challenger was compared with (its score is TAG_CHAMPION_SCORE).
TAG_SHADOWED_AGAINST = "shadowed_against"


class PromotionError(ForestopsError):
    """A promotion or rollback that cannot be done; the message says why."""


class LockTimeout(PromotionError):
    pass


@dataclass(frozen=True)
class Decision:
    version: str
    decision: str
    candidate_score: float | None
    champion_score: float | None
    previous_champion: str | None
    metric: str


@contextlib.contextmanager
def promotion_lock(engine: sa.Engine, model_name: str, timeout: int = LOCK_TIMEOUT_SECONDS) -> Iterator[sa.Connection]:
    """Hold the model's promotion lock (shared by every process using this database).

    Yields the lock's connection: history rows written on it are committed
    when the block ends normally and rolled back when it raises, so a
    failed alias move leaves no history row behind.
    """
    name = f"forestops_promote_{model_name}"[:64]
    with engine.connect() as connection:
        if connection.dialect.name in ("mysql", "mariadb"):
            got = connection.execute(sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": timeout})
            if got.scalar() != 1:
                raise LockTimeout(f"could not get the promotion lock {name!r} within {timeout}s")
            connection.commit()
            try:
                yield connection
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                connection.commit()
        elif connection.dialect.name == "sqlite":
            # BEGIN IMMEDIATE takes SQLite's write lock: the transaction is the lock.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
        else:
            raise PromotionError(f"no promotion lock for the {connection.dialect.name} dialect")


def _alias_version(client, model_name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _pinned(client, model_name: str) -> bool:
    from forestops.training.pin import read_pin

    return read_pin(client, model_name) is not None


def current_champion(client, model_name: str) -> str | None:
    return _alias_version(client, model_name, CHAMPION)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def choose(
    candidate_score: float, champion_score: float | None, margin: float, policy: str = POLICY_IMMEDIATE
) -> tuple[str, str | None]:
    """The decision for a candidate and the alias it receives (None: no alias moves).

    A candidate that beats the champion by more than ``margin`` (or finds
    no champion) becomes champion at once under the ``immediate`` policy;
    under ``shadow`` it becomes the challenger that live traffic is
    shadowed to first (unless there is no champion to shadow).  A candidate
    that does not beat it is recorded as a challenger; under ``shadow`` it
    does not take the alias, which belongs to the version being shadowed.
    """
    if champion_score is None:
        return DECISION_CHAMPION, CHAMPION
    if candidate_score > champion_score + margin:
        if policy == POLICY_SHADOW:
            return DECISION_SHADOW, CHALLENGER
        return DECISION_CHAMPION, CHAMPION
    return DECISION_CHALLENGER, (None if policy == POLICY_SHADOW else CHALLENGER)


def _history_action(decision: str) -> str:
    return {
        DECISION_CHAMPION: history.ACTION_PROMOTED,
        DECISION_SHADOW: history.ACTION_SHADOW_STARTED,
    }.get(decision, history.ACTION_CHALLENGER)


def decide(
    engine: sa.Engine,
    client,
    model_name: str,
    version: str,
    candidate_score: float,
    score_champion: Callable[[str], float],
    metric: str,
    margin: float,
    decided_by: str = "training",
    policy: str = POLICY_IMMEDIATE,
) -> Decision:
    """Compare-and-set: make ``version`` champion only if it beats the champion by ``margin``.

    ``score_champion(version)`` scores a registered version on the same
    evaluation rows the candidate was scored on; it runs inside the lock so
    the champion cannot change between being scored and being replaced.
    ``decided_by`` (the Airflow run id, or ``cli:<user>``) is the history's actor.
    """
    with promotion_lock(engine, model_name) as connection:
        recorded = _replay_recorded_decision(connection, client, model_name, version, candidate_score, decided_by)
        if recorded is not None:
            return recorded
        champion = current_champion(client, model_name)
        champion_score = None
        if champion == version:
            champion_score = candidate_score
            decision, alias = DECISION_CHAMPION, None  # already champion: nothing moves
        else:
            if champion is not None:
                champion_score = float(score_champion(champion))
            decision, alias = choose(candidate_score, champion_score, margin, policy)
        if champion not in (None, version) and decision != DECISION_CHALLENGER and _pinned(client, model_name):
            # Read inside the lock: a pin set before this point always holds.
            decision, alias = DECISION_HELD_BY_PIN, CHALLENGER
        tags: dict[str, object] = {
            TAG_DECISION: decision,
            TAG_CANDIDATE_SCORE: repr(float(candidate_score)),
            TAG_PRIMARY_METRIC: metric,
            TAG_DECIDED_AT: _now(),
            TAG_DECIDED_BY: decided_by,
        }
        # No champion, no score: the tag is left out rather than set to "" (a
        # score tag that is not a number), so readers can tell "none" from "0".
        if champion_score is not None:
            tags[TAG_CHAMPION_SCORE] = repr(float(champion_score))
        if decision == DECISION_CHAMPION and champion not in (None, version):
            tags[TAG_PREVIOUS_CHAMPION] = champion
        if decision == DECISION_SHADOW:
            tags[TAG_SHADOWED_AGAINST] = champion
        set_version_tags(client, model_name, version, tags)
        if alias is not None:
            holder = champion if alias == CHAMPION else _alias_version(client, model_name, alias)
            history.move_alias(
                connection,
                client,
                model_name,
                history.AliasChange(
                    alias=alias,
                    action=_history_action(decision),
                    from_version=holder,
                    to_version=version,
                    actor=decided_by,
                    policy=policy,
                    candidate_score=float(candidate_score),
                    champion_score=champion_score,
                    reason=_reason(decision, metric, candidate_score, champion, champion_score, margin),
                ),
            )
    log.info(
        "%s version %s: %s (%s %.4f vs champion %s %s)",
        model_name,
        version,
        decision,
        metric,
        candidate_score,
        champion,
        "none" if champion_score is None else f"{champion_score:.4f}",
    )
    return Decision(version, decision, candidate_score, champion_score, champion, metric)


def _reason(
    decision: str, metric: str, candidate: float, champion: str | None, champion_score: float | None, margin: float
) -> str:
    if champion_score is None:
        return f"no champion before; {metric} {candidate:.4f}"
    compared = f"{metric} {candidate:.4f} vs champion v{champion} {champion_score:.4f} (margin {margin:g})"
    if decision == DECISION_CHAMPION:
        return f"beat the champion: {compared}"
    if decision == DECISION_SHADOW:
        return f"beat the champion, shadowed on live traffic before promotion: {compared}"
    if decision == DECISION_HELD_BY_PIN:
        return f"beat the champion, but automatic promotion is paused (forestops unpin resumes it): {compared}"
    return f"did not beat the champion: {compared}"


def _optional_float(text: str | None) -> float | None:
    return float(text) if text else None


def _replay_recorded_decision(
    connection: sa.Connection, client, model_name: str, version: str, candidate_score: float, decided_by: str
) -> Decision | None:
    """A retried promote step finds the decision its first attempt recorded and finishes it.

    The tags are written before the alias moves, so a task that failed in
    between left a decision whose alias may be missing.  The alias is set
    only if the registry is still in the state the decision was made
    against (the champion it replaced, or none); a newer champion that won
    meanwhile is never displaced, and nothing is re-scored or re-tagged.
    A retry carries the same candidate score; a version whose tags hold
    another one (copied from elsewhere, or decided by hand) is decided anew.
    """
    tags = client.get_model_version(model_name, version).tags
    decision = tags.get(TAG_DECISION)
    if decision not in (DECISION_CHAMPION, DECISION_CHALLENGER, DECISION_SHADOW):
        return None
    if tags.get(TAG_CANDIDATE_SCORE) != repr(float(candidate_score)):
        return None
    champion = current_champion(client, model_name)
    replaced = tags.get(TAG_PREVIOUS_CHAMPION) or None
    moved = None
    if decision == DECISION_CHAMPION and champion != version and champion == replaced:
        moved = (CHAMPION, champion)
    if decision in (DECISION_CHALLENGER, DECISION_SHADOW) and _alias_version(client, model_name, CHALLENGER) is None:
        moved = (CHALLENGER, None)
    if moved is not None:
        alias, holder = moved
        history.move_alias(
            connection,
            client,
            model_name,
            history.AliasChange(
                alias=alias,
                action=_history_action(decision),
                from_version=holder,
                to_version=version,
                actor=decided_by,
                candidate_score=float(candidate_score),
                champion_score=_optional_float(tags.get(TAG_CHAMPION_SCORE)),
                reason="a retried promotion finished the decision its first attempt recorded",
            ),
        )
    log.info("%s version %s: decision %s already recorded; replayed", model_name, version, decision)
    return Decision(
        version,
        decision,
        _optional_float(tags.get(TAG_CANDIDATE_SCORE)),
        _optional_float(tags.get(TAG_CHAMPION_SCORE)),
        replaced,
        tags.get(TAG_PRIMARY_METRIC, ""),
    )


def _require_version(client, model_name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, str(version))
    except MlflowException:
        raise PromotionError(f"model {model_name!r} has no version {version!r}") from None


def promote(
    engine: sa.Engine,
    client,
    model_name: str,
    version: str,
    decided_by: str = "forestops promote",
    reason: str | None = None,
) -> Decision:
    """Make ``version`` the champion by hand (the old one is recorded for rollback)."""
    version = str(version)
    _require_version(client, model_name, version)
    with promotion_lock(engine, model_name) as connection:
        champion = current_champion(client, model_name)
        if champion == version:
            raise PromotionError(f"version {version} of {model_name!r} is already the champion")
        tags: dict[str, object] = {TAG_DECISION: DECISION_MANUAL, TAG_DECIDED_AT: _now(), TAG_DECIDED_BY: decided_by}
        if champion is not None:
            tags[TAG_PREVIOUS_CHAMPION] = champion
        set_version_tags(client, model_name, version, tags)
        history.move_alias(
            connection,
            client,
            model_name,
            history.AliasChange(
                alias=CHAMPION,
                action=history.ACTION_MANUAL,
                from_version=champion,
                to_version=version,
                actor=decided_by,
                reason=reason or "promoted by hand",
            ),
        )
    log.info("%s version %s promoted by hand (was %s)", model_name, version, champion)
    return Decision(version, DECISION_MANUAL, None, None, champion, "")


def rollback(engine: sa.Engine, client, model_name: str, decided_by: str = "forestops rollback") -> Decision:
    """Give the champion alias back to the version that held it just before the current champion.

    "Just before" is read from the promotion history (the newest row that
    gave the alias to the current champion), falling back to the
    ``previous_champion`` tag for a champion set before the history
    existed.  A rollback is itself such a row, so a second rollback without
    a promotion in between returns to the version the first one replaced:
    rollback toggles between the last two champions and never walks further
    back; ``promote VERSION`` goes anywhere else.
    """
    with promotion_lock(engine, model_name) as connection:
        champion = current_champion(client, model_name)
        if champion is None:
            raise PromotionError(f"model {model_name!r} has no champion to roll back")
        tags = client.get_model_version(model_name, champion).tags or {}
        previous = history.champion_before(connection, model_name, champion) or tags.get(TAG_PREVIOUS_CHAMPION)
        if not previous:
            raise PromotionError(
                f"version {champion} of {model_name!r} records no previous champion "
                f"(tag {TAG_PREVIOUS_CHAMPION!r}); use `forestops promote VERSION` instead"
            )
        _require_version(client, model_name, previous)
        set_version_tags(client, model_name, champion, {TAG_DECISION: DECISION_ROLLED_BACK, TAG_DECIDED_AT: _now()})
        restored_tags = client.get_model_version(model_name, previous).tags or {}
        # Keep the chain: the restored version's own previous champion stays as it was.
        set_version_tags(
            client,
            model_name,
            previous,
            {
                TAG_DECISION: DECISION_RESTORED,
                TAG_DECIDED_AT: _now(),
                TAG_DECIDED_BY: decided_by,
                TAG_PREVIOUS_CHAMPION: restored_tags.get(TAG_PREVIOUS_CHAMPION, ""),
            },
        )
        history.move_alias(
            connection,
            client,
            model_name,
            history.AliasChange(
                alias=CHAMPION,
                action=history.ACTION_ROLLBACK,
                from_version=champion,
                to_version=previous,
                actor=decided_by,
                reason=f"rolled back to the champion before v{champion}",
            ),
        )
    log.info("%s rolled back from version %s to %s", model_name, champion, previous)
    return Decision(previous, DECISION_RESTORED, None, None, champion, "")
