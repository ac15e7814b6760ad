"""Deciding a shadowed challenger: promote it or reject it, once, under the promotion lock.

Inference workers only count (``shadow_tallies``); this is the one place
that turns the counts into an alias move, so several workers can never each
promote.  It runs as the ``covertype_shadow`` DAG's task (and as
``forestops shadow-settle``); the promotion lock makes a concurrent call
wait and then find the alias already moved.

The verdict waits until the challenger was shadowed on
``FORESTOPS_SHADOW_MIN_REQUESTS`` requests, or ``FORESTOPS_SHADOW_MAX_MINUTES``
have passed since it became challenger, whichever comes first.  It is
promoted only if its agreement with the champion, its mean scoring latency
and its held-out score all meet their thresholds; otherwise the challenger
alias is removed.  Either way the decision and its figures go into the
promotion history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from forestops.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    TAG_CANDIDATE_SCORE,
    TAG_CHAMPION_SCORE,
    TAG_DECIDED_AT,
    TAG_DECIDED_BY,
    TAG_DECISION,
    TAG_PREVIOUS_CHAMPION,
)
from forestops.settings import Settings
from forestops.storage.tables import alias_history, shadow_tallies
from forestops.training import history, promotion
from forestops.training.registry import set_version_tags

log = logging.getLogger(__name__)

WAIT = "wait"
PROMOTE = "promote"
REJECT = "reject"
POLICY = "shadow"


@dataclass(frozen=True)
class Thresholds:
    min_requests: int
    max_minutes: float
    min_agreement: float
    max_latency_seconds: float
    margin: float

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        return cls(
            settings.shadow_min_requests,
            settings.shadow_max_minutes,
            settings.shadow_min_agreement,
            settings.shadow_max_latency_seconds,
            settings.promotion_margin,
        )


@dataclass(frozen=True)
class Figures:
    """What the workers measured for one challenger against one champion."""

    requests: int
    rows: int
    rows_agreeing: int
    latency_seconds_sum: float
    latency_seconds_max: float
    failures: int
    minutes: float  # since the challenger got the alias

    @property
    def agreement(self) -> float:
        return self.rows_agreeing / self.rows if self.rows else 0.0

    @property
    def mean_latency_seconds(self) -> float:
        return self.latency_seconds_sum / self.requests if self.requests else 0.0

    def describe(self) -> str:
        return (
            f"{self.requests} shadowed requests ({self.rows} rows, {self.failures} failed) in {self.minutes:.1f} min: "
            f"agreement {self.agreement:.4f}, mean latency {self.mean_latency_seconds * 1000:.1f} ms "
            f"(max {self.latency_seconds_max * 1000:.1f} ms)"
        )


@dataclass(frozen=True)
class Verdict:
    outcome: str  # wait | promote | reject
    reason: str
    figures: Figures | None = None
    challenger: str | None = None
    champion: str | None = None


def verdict(
    figures: Figures, thresholds: Thresholds, candidate_score: float | None, champion_score: float | None
) -> tuple[str, str]:
    """Pure: wait, promote or reject, and why."""
    enough = figures.requests >= thresholds.min_requests
    timed_out = figures.minutes >= thresholds.max_minutes
    if not (enough or timed_out):
        return WAIT, f"{figures.requests}/{thresholds.min_requests} requests after {figures.minutes:.1f} min"
    if figures.requests == 0:
        return REJECT, f"no request was shadowed in {figures.minutes:.1f} min"
    failed = []
    if figures.agreement < thresholds.min_agreement:
        failed.append(f"agreement {figures.agreement:.4f} < {thresholds.min_agreement:g}")
    if figures.mean_latency_seconds > thresholds.max_latency_seconds:
        failed.append(f"mean latency {figures.mean_latency_seconds:.3f} s > {thresholds.max_latency_seconds:g} s")
    beaten = champion_score is None or (candidate_score or 0.0) > champion_score + thresholds.margin
    if candidate_score is None or not beaten:
        failed.append(f"held-out score {candidate_score} does not beat the champion's {champion_score}")
    if failed:
        return REJECT, "; ".join(failed)
    return PROMOTE, "met every threshold"


def shadow_started_at(connection: sa.Connection, model_name: str, challenger: str) -> datetime | None:
    row = connection.execute(
        sa.select(alias_history.c.changed_at)
        .where(
            alias_history.c.model_name == model_name,
            alias_history.c.alias == ALIAS_CHALLENGER,
            alias_history.c.to_version == challenger,
        )
        .order_by(alias_history.c.id.desc())
        .limit(1)
    ).first()
    return row.changed_at.replace(tzinfo=UTC) if row is not None else None


def figures_for(
    connection: sa.Connection, model_name: str, champion: str, challenger: str, since: datetime, now: datetime
) -> Figures:
    t = shadow_tallies
    row = connection.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(t.c.requests), 0),
            sa.func.coalesce(sa.func.sum(t.c.rows), 0),
            sa.func.coalesce(sa.func.sum(t.c.rows_agreeing), 0),
            sa.func.coalesce(sa.func.sum(t.c.latency_seconds_sum), 0.0),
            sa.func.coalesce(sa.func.max(t.c.latency_seconds_max), 0.0),
            sa.func.coalesce(sa.func.sum(t.c.failures), 0),
        ).where(
            t.c.model_name == model_name,
            t.c.champion_version == champion,
            t.c.challenger_version == challenger,
            t.c.flushed_at >= since.replace(tzinfo=None),
        )
    ).one()
    minutes = (now - since).total_seconds() / 60
    return Figures(int(row[0]), int(row[1]), int(row[2]), float(row[3]), float(row[4]), int(row[5]), minutes)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def settle(engine: sa.Engine, client, settings: Settings, decided_by: str = "shadow") -> Verdict:
    """Decide the current challenger if it is being shadowed and its time has come."""
    model_name = settings.model_name
    thresholds = Thresholds.of(settings)
    with promotion.promotion_lock(engine, model_name) as connection:
        challenger = promotion._alias_version(client, model_name, ALIAS_CHALLENGER)
        if challenger is None:
            return Verdict(WAIT, "no challenger")
        tags = client.get_model_version(model_name, challenger).tags or {}
        if tags.get(TAG_DECISION) != promotion.DECISION_SHADOW:
            return Verdict(WAIT, f"challenger v{challenger} is not being shadowed", challenger=challenger)
        champion = promotion.current_champion(client, model_name)
        now = datetime.now(UTC)
        started = shadow_started_at(connection, model_name, challenger)
        if started is None:  # decided before the history existed: measure from the decision's time
            started = datetime.fromisoformat(tags[TAG_DECIDED_AT]) if tags.get(TAG_DECIDED_AT) else now
        against = tags.get(promotion.TAG_SHADOWED_AGAINST)
        if champion is None or champion != against:
            outcome, reason = REJECT, f"the champion changed during the shadow (v{against} -> v{champion})"
            figures = None
        else:
            figures = figures_for(connection, model_name, champion, challenger, started, now)
            outcome, reason = verdict(
                figures, thresholds, _float(tags.get(TAG_CANDIDATE_SCORE)), _float(tags.get(TAG_CHAMPION_SCORE))
            )
        if outcome == WAIT:
            return Verdict(WAIT, reason, figures, challenger, champion)
        text = f"{reason}; {figures.describe()}" if figures else reason
        action = history.ACTION_SHADOW_PROMOTED if outcome == PROMOTE else history.ACTION_SHADOW_REJECTED
        scores = {
            "candidate_score": _float(tags.get(TAG_CANDIDATE_SCORE)),
            "champion_score": _float(tags.get(TAG_CHAMPION_SCORE)),
        }
        decided = {TAG_DECIDED_AT: now.isoformat(timespec="seconds"), TAG_DECIDED_BY: decided_by}
        if outcome == PROMOTE:
            set_version_tags(
                client,
                model_name,
                challenger,
                {TAG_DECISION: promotion.DECISION_CHAMPION, TAG_PREVIOUS_CHAMPION: champion, **decided},
            )
            history.move_alias(
                connection,
                client,
                model_name,
                history.AliasChange(
                    ALIAS_CHAMPION, action, champion, challenger, decided_by, POLICY, reason=text, **scores
                ),
            )
        else:
            rejected = {TAG_DECISION: promotion.DECISION_SHADOW_REJECTED, **decided}
            set_version_tags(client, model_name, challenger, rejected)
        history.move_alias(
            connection,
            client,
            model_name,
            history.AliasChange(ALIAS_CHALLENGER, action, challenger, None, decided_by, POLICY, reason=text, **scores),
        )
    log.info("%s challenger v%s: %s (%s)", model_name, challenger, outcome, text)
    return Verdict(outcome, text, figures, challenger, champion)


def settle_step(settings: Settings, run_id: str | None = None) -> dict[str, object]:
    """What the ``covertype_shadow`` DAG's task runs: one settle against the configured stores."""
    from forestops.storage.db import ensure_schema, make_engine
    from forestops.training import tracking

    engine = make_engine(settings.raw_database_url)
    try:
        ensure_schema(engine)
        client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        decided = settle(engine, client, settings, decided_by=run_id or history.cli_actor())
    finally:
        engine.dispose()
    return {
        "outcome": decided.outcome,
        "reason": decided.reason,
        "challenger": decided.challenger,
        "champion": decided.champion,
    }
