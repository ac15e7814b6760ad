"""Shadow scoring: the ``challenger`` also scores a sampled share of live requests, off the request path.

Under the ``shadow`` promotion policy a candidate that beat the champion
holds the ``challenger`` alias first.  Each inference worker then loads it
too (following the alias like the champion, with the same loader and
checks) and, for a share of ``/predict`` requests (``FORESTOPS_SHADOW_SAMPLE_SHARE``),
hands the rows and the champion's answer to a bounded queue.  A background
thread scores them with the challenger and counts agreement and latency.
A request never waits for any of it: sampling and ``put_nowait`` are all
the request does, and a full queue drops the item (counted).

Each worker appends its counts to ``shadow_tallies`` every poll; it decides
nothing.  The decision (promote or reject) is taken by one place only,
``forestops.training.shadow.settle``, under the promotion lock.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from forestops.names import ALIAS_CHALLENGER
from forestops.serving.champion import ChampionHolder, ChampionWatcher, ServedModel
from forestops.settings import Settings

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ChallengerWatcher(ChampionWatcher):
    """The champion watcher pointed at ``challenger``; drops the model when the alias goes away."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, ChampionHolder(name=settings.model_name))

    def champion_version(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._client().get_model_version_by_alias(self.settings.model_name, ALIAS_CHALLENGER)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def refresh(self, force: bool = False) -> str:
        try:
            version = self.champion_version()
        except Exception as error:  # the champion watcher reports registry trouble; keep what we have
            self.holder.registry_error = f"{type(error).__name__}: {error}"
            return "registry unreachable"
        if version is None:
            if self.holder.current is not None:
                log.info("challenger alias removed: shadow scoring of version %s stops", self.holder.current.version)
                self.holder.current = None
            return "no challenger"
        return super().refresh(force)


@dataclass
class Tally:
    """What one worker measured for one (champion, challenger) pair since its last flush."""

    requests: int = 0
    rows: int = 0
    rows_agreeing: int = 0
    latency_seconds_sum: float = 0.0
    latency_seconds_max: float = 0.0
    failures: int = 0


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "forestops_shadow_requests",
            "Requests offered to the challenger, by outcome (scored, dropped: queue full, failed).",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "forestops_shadow_latency_seconds",
            "Time the challenger took to score one shadowed request.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.agreement = Gauge(
            "forestops_shadow_agreement_ratio",
            "Share of shadowed rows on which the challenger agreed with the champion (this worker, this pair).",
            ["champion", "challenger"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.rows = Counter(
            "forestops_shadow_rows", "Shadowed rows, by agreement with the champion.", ["agreed"], registry=registry
        )


class ShadowScorer:
    """The challenger model, its bounded queue and worker thread, and the tallies it keeps."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.watcher = ChallengerWatcher(settings)
        self.metrics = ShadowMetrics(registry)
        self.share = settings.shadow_sample_share
        self.queue: queue.Queue = queue.Queue(maxsize=settings.shadow_queue_size)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._random = random.Random()
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str], Tally] = {}
        self._totals: dict[tuple[str, str], list[int]] = {}
        self._thread: threading.Thread | None = None
        self._engine = None

    @property
    def challenger(self) -> ServedModel | None:
        return self.watcher.holder.current

    # -- the request path: sample and enqueue, nothing else ---------------------------
    def offer(self, rows: Any, champion: ServedModel, champion_ids: np.ndarray) -> None:
        challenger = self.watcher.holder.current
        if challenger is None or challenger.version == champion.version:
            return
        if self.share < 1.0 and self._random.random() >= self.share:
            return
        try:
            self.queue.put_nowait((rows, champion.version, champion_ids, challenger))
        except queue.Full:
            self.metrics.requests.labels("dropped").inc()

    # -- the background thread ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="forestops-shadow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.queue.put(None)
            self._thread.join(10)
            self._thread = None
        self.flush()
        if self._engine is not None:
            self._engine.dispose()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                self.score(*item)
            except Exception:  # never let the shadow thread die
                log.exception("shadow scoring failed")

    def score(self, rows: Any, champion_version: str, champion_ids: np.ndarray, challenger: ServedModel) -> None:
        started = time.perf_counter()
        try:
            class_ids, _ = challenger.predict(rows)
            failed = False
        except Exception as error:
            log.warning("challenger version %s failed to score a shadowed request: %s", challenger.version, error)
            class_ids, failed = None, True
        seconds = time.perf_counter() - started
        count = len(champion_ids)
        agreeing = 0 if failed else int(np.count_nonzero(np.asarray(class_ids) == champion_ids))
        key = (champion_version, challenger.version)
        with self._lock:
            tally = self._tallies.setdefault(key, Tally())
            tally.requests += 1
            tally.rows += count
            tally.rows_agreeing += agreeing
            tally.latency_seconds_sum += seconds
            tally.latency_seconds_max = max(tally.latency_seconds_max, seconds)
            tally.failures += int(failed)
            totals = self._totals.setdefault(key, [0, 0])
            totals[0] += count
            totals[1] += agreeing
            ratio = totals[1] / totals[0] if totals[0] else 0.0
        self.metrics.requests.labels("failed" if failed else "scored").inc()
        self.metrics.latency.observe(seconds)
        self.metrics.rows.labels("yes").inc(agreeing)
        self.metrics.rows.labels("no").inc(count - agreeing)
        self.metrics.agreement.labels(champion_version, challenger.version).set(ratio)

    # -- the poll loop: follow the alias, hand the counts to the database ----------------
    def poll(self) -> str:
        outcome = self.watcher.refresh()
        self.flush()
        return outcome

    def flush(self) -> int:
        """Append this worker's counts since the last flush to ``shadow_tallies``; returns rows written."""
        with self._lock:
            pending, self._tallies = self._tallies, {}
        if not pending:
            return 0
        from forestops.storage.tables import shadow_tallies

        now = datetime.now(UTC).replace(tzinfo=None)
        values = [
            {
                "flushed_at": now,
                "model_name": self.settings.model_name,
                "champion_version": champion,
                "challenger_version": challenger,
                "worker": self.worker,
                **vars(tally),
            }
            for (champion, challenger), tally in pending.items()
        ]
        try:
            with self._db().begin() as connection:
                connection.execute(shadow_tallies.insert(), values)
        except Exception as error:  # keep the counts for the next flush
            log.warning("cannot record shadow tallies (kept for the next try): %s", error)
            with self._lock:
                for key, tally in pending.items():
                    merged = self._tallies.setdefault(key, Tally())
                    merged.requests += tally.requests
                    merged.rows += tally.rows
                    merged.rows_agreeing += tally.rows_agreeing
                    merged.latency_seconds_sum += tally.latency_seconds_sum
                    merged.latency_seconds_max = max(merged.latency_seconds_max, tally.latency_seconds_max)
                    merged.failures += tally.failures
            return 0
        return len(values)

    def _db(self):
        if self._engine is None:
            from forestops.storage.db import make_engine

            self._engine = make_engine(self.settings.raw_database_url)
        return self._engine

    def info(self) -> dict[str, Any]:
        current = self.challenger
        return {
            "policy": self.settings.promotion_policy,
            "challenger": current.version if current else None,
            "queued": self.queue.qsize(),
            "sample_share": self.share,
        }
