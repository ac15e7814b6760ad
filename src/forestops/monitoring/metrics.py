"""Prometheus gauges of what the monitor and the pipeline stored, for the inference API's /metrics.

The inference API is already scraped, so it also exports these instead of
a separate exporter: every FORESTOPS_MONITOR_METRICS_REFRESH_SECONDS each
worker re-reads the small ``batch_monitoring`` table, the rows stored per
batch and the latest training's duration (three cheap queries) and sets the
gauges.  Gauges use the ``mostrecent`` multiprocess mode, so with several
workers /metrics shows one value per label set, not a sum.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge

from forestops.monitoring import store
from forestops.names import TrainingStatus
from forestops.storage import tables

log = logging.getLogger(__name__)

BATCH_LABELS = ["group", "batch", "model_version"]


class MonitoringMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, documentation: str, labels: list[str]) -> Gauge:
            return Gauge(name, documentation, labels, registry=registry, multiprocess_mode="mostrecent")

        self.accuracy = gauge(
            "forestops_batch_accuracy", "Accuracy of the champion on a batch before training on it.", BATCH_LABELS
        )
        self.macro_f1 = gauge(
            "forestops_batch_macro_f1", "Macro-F1 of the champion on a batch before training on it.", BATCH_LABELS
        )
        self.drift_share = gauge(
            "forestops_batch_drift_share", "Share of feature columns that drifted in a batch (popmon).", BATCH_LABELS
        )
        self.rows_stored = gauge("forestops_batch_rows_stored", "Rows stored per collected batch.", ["group", "batch"])
        self.training_seconds = gauge(
            "forestops_training_duration_seconds", "Wall time of the latest finished training.", []
        )

    def refresh(self, engine: sa.Engine) -> int:
        """Re-read the tables and set the gauges; returns the number of monitored batches."""
        raw, training = tables.raw_rows, tables.training_log
        with engine.connect() as connection:
            results = store.results(connection)
            stored = connection.execute(
                sa.select(raw.c.group_number, raw.c.batch_number, sa.func.count()).group_by(
                    raw.c.group_number, raw.c.batch_number
                )
            ).all()
            last = connection.execute(
                sa.select(training.c.started_at, training.c.finished_at)
                .where(training.c.status == TrainingStatus.TRAINED, training.c.finished_at.is_not(None))
                .order_by(training.c.id.desc())
                .limit(1)
            ).first()
        for row in results:
            labels = (str(row["group_number"]), str(row["batch_number"]), str(row["model_version"]))
            self.accuracy.labels(*labels).set(row["accuracy"])
            self.macro_f1.labels(*labels).set(row["macro_f1"])
            if row["drift_share"] is not None:
                self.drift_share.labels(*labels).set(row["drift_share"])
        for group, batch, count in stored:
            self.rows_stored.labels(str(group), str(batch)).set(count)
        if last is not None:
            self.training_seconds.set((last.finished_at - last.started_at).total_seconds())
        return len(results)
