"""Champion/challenger promotion as a compare-and-set, plus manual promote and rollback.

MLflow's registry has no compare-and-set on aliases, so two trainings that
finish together could both read "champion scores 0.80", both beat it, and
both move the alias.  Every alias change therefore happens while holding a
lock that all contenders share, in the ``covertype`` database every
training already talks to: ``GET_LOCK`` on MySQL/MariaDB, ``BEGIN
IMMEDIATE`` (a database-wide write lock) on SQLite.  Inside the lock the
alias is re-read, the current champion is scored on the same evaluation rows,
and only then is the alias moved.
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
def promotion_lock(engine: sa.Engine, model_name: str, timeout: int = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the model's promotion lock (shared by every process using this database)."""
    name = f"forestops_promote_{model_name}"[:64]
    with engine.connect() as connection:
        if connection.dialect.name in ("mysql", "mariadb"):
            got = connection.execute(sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": timeout})
            if got.scalar() != 1:
                raise LockTimeout(f"could not get the promotion lock {name!r} within {timeout}s")
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                connection.exec_driver_sql("ROLLBACK")
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


def current_champion(client, model_name: str) -> str | None:
    return _alias_version(client, model_name, CHAMPION)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _tag(client, model_name: str, version: str, tags: dict[str, object]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, "" if value is None else str(value))


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
) -> Decision:
    """Compare-and-set: make ``version`` champion only if it beats the champion by ``margin``.

    ``score_champion(version)`` scores a registered version on the same
    evaluation rows the candidate was scored on; it runs inside the lock so
    the champion cannot change between being scored and being replaced.
    """
    with promotion_lock(engine, model_name):
        recorded = _replay_recorded_decision(client, model_name, version, candidate_score)
        if recorded is not None:
            return recorded
        champion = current_champion(client, model_name)
        champion_score = None
        if champion is None:
            decision = DECISION_CHAMPION
        elif champion == version:
            champion_score = candidate_score
            decision = DECISION_CHAMPION
        else:
            champion_score = float(score_champion(champion))
            decision = DECISION_CHAMPION if candidate_score > champion_score + margin else DECISION_CHALLENGER
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
        _tag(client, model_name, version, tags)
        alias = CHAMPION if decision == DECISION_CHAMPION else CHALLENGER
        client.set_registered_model_alias(model_name, alias, version)
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


def _optional_float(text: str | None) -> float | None:
    return float(text) if text else None


def _replay_recorded_decision(client, model_name: str, version: str, candidate_score: float) -> Decision | None:
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
    if decision not in (DECISION_CHAMPION, DECISION_CHALLENGER):
        return None
    if tags.get(TAG_CANDIDATE_SCORE) != repr(float(candidate_score)):
        return None
    champion = current_champion(client, model_name)
    replaced = tags.get(TAG_PREVIOUS_CHAMPION) or None
    if decision == DECISION_CHAMPION and champion != version and champion == replaced:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    if decision == DECISION_CHALLENGER and _alias_version(client, model_name, CHALLENGER) is None:
        client.set_registered_model_alias(model_name, CHALLENGER, version)
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
    engine: sa.Engine, client, model_name: str, version: str, decided_by: str = "forestops promote"
) -> Decision:
    """Make ``version`` the champion by hand (the old one is recorded for rollback)."""
    version = str(version)
    _require_version(client, model_name, version)
    with promotion_lock(engine, model_name):
        champion = current_champion(client, model_name)
        if champion == version:
            raise PromotionError(f"version {version} of {model_name!r} is already the champion")
        tags: dict[str, object] = {TAG_DECISION: DECISION_MANUAL, TAG_DECIDED_AT: _now(), TAG_DECIDED_BY: decided_by}
        if champion is not None:
            tags[TAG_PREVIOUS_CHAMPION] = champion
        _tag(client, model_name, version, tags)
        client.set_registered_model_alias(model_name, CHAMPION, version)
    log.info("%s version %s promoted by hand (was %s)", model_name, version, champion)
    return Decision(version, DECISION_MANUAL, None, None, champion, "")


def rollback(engine: sa.Engine, client, model_name: str, decided_by: str = "forestops rollback") -> Decision:
    """Give the champion alias back to the version the current champion replaced."""
    with promotion_lock(engine, model_name):
        champion = current_champion(client, model_name)
        if champion is None:
            raise PromotionError(f"model {model_name!r} has no champion to roll back")
        tags = client.get_model_version(model_name, champion).tags or {}
        previous = tags.get(TAG_PREVIOUS_CHAMPION)
        if not previous:
            raise PromotionError(
                f"version {champion} of {model_name!r} records no previous champion "
                f"(tag {TAG_PREVIOUS_CHAMPION!r}); use `forestops promote VERSION` instead"
            )
        _require_version(client, model_name, previous)
        _tag(client, model_name, champion, {TAG_DECISION: DECISION_ROLLED_BACK, TAG_DECIDED_AT: _now()})
        restored_tags = client.get_model_version(model_name, previous).tags or {}
        # Keep the chain: the restored version's own previous champion stays as it was.
        _tag(
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
        client.set_registered_model_alias(model_name, CHAMPION, previous)
    log.info("%s rolled back from version %s to %s", model_name, champion, previous)
    return Decision(previous, DECISION_RESTORED, None, None, champion, "")
