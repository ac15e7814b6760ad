"""The monitor as steps the DAG wires: score the new batches, then raise the alerts.

``score_new_batches`` resolves ``champion`` once, finds the batches that
received rows since the last run (the watermark), and for each one scores
only the rows that version never trained on (``raw_rows.id`` above its
training's ``max_raw_id``).  That invariant, not task timing, keeps the
evaluation prequential: covertype_train runs on the same Asset event, and if
it has already moved the alias to a version trained on the batch, that
version finds none of the batch's rows unseen and the batch is reported as
skipped rather than scored by a model that learnt it.  In practice the
monitor (seconds) finishes long before training (minutes) can promote.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from forestops import model_loading
from forestops.monitoring import alerts, drift, scoring, store
from forestops.monitoring.champion import Champion, resolve
from forestops.settings import Settings
from forestops.storage.db import ensure_schema, make_engine

log = logging.getLogger(__name__)

EXPERIMENT_SUFFIX = "-monitoring"
TAG_KIND = "forestops_kind"
TAG_LAST_MONITORING_RUN = "last_monitoring_run"


@functools.lru_cache(maxsize=8)
def engine_for(url: str):
    engine = make_engine(url)
    ensure_schema(engine)
    return engine


def experiment_name(settings: Settings) -> str:
    return settings.experiment_name + EXPERIMENT_SUFFIX


def _monitoring_run(client, experiment_id: str, model_name: str, version: str, group: int, batch: int):
    """The MLflow run of this (version, group, batch): the one a failed attempt made, or a new one."""
    query = (
        f"tags.{TAG_KIND} = 'batch' and tags.model_name = '{model_name}' and tags.model_version = '{version}' "
        f"and tags.group_number = '{group}' and tags.batch_number = '{batch}'"
    )
    found = client.search_runs([experiment_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"monitor-g{group}-b{batch}-v{version}",
        tags={
            TAG_KIND: "batch",
            "model_name": model_name,
            "model_version": version,
            "group_number": str(group),
            "batch_number": str(batch),
        },
    )
    return run.info.run_id


def _log_to_mlflow(client, settings: Settings, champion: Champion, result: store.BatchResult, report_html):
    import mlflow

    experiment = mlflow.set_experiment(experiment_name(settings))
    run_id = _monitoring_run(
        client,
        experiment.experiment_id,
        settings.model_name,
        champion.version,
        result.group_number,
        result.batch_number,
    )
    with mlflow.start_run(run_id=run_id):
        metrics = {"rows_scored": result.rows_scored, "accuracy": result.accuracy, "macro_f1": result.macro_f1}
        if result.drift_share is not None:
            metrics.update(drift_share=result.drift_share, drift_seconds=result.drift_seconds or 0.0)
        mlflow.log_metrics(metrics)
        report_uri = None
        if report_html is not None:
            mlflow.log_text(report_html, drift.REPORT_FILE)
            report_uri = f"{mlflow.get_artifact_uri()}/{drift.REPORT_FILE}"
    client.set_model_version_tag(settings.model_name, champion.version, TAG_LAST_MONITORING_RUN, run_id)
    return run_id, report_uri


def score_new_batches(settings: Settings, run_id: str | None = None) -> dict[str, Any]:
    """Score every batch with rows since the watermark; store one row per batch; return what was found."""
    from forestops.training import tracking

    engine = engine_for(settings.raw_database_url)
    client = tracking.connect(settings.mlflow_tracking_uri, experiment_name(settings))
    champion = resolve(client, settings.model_name, engine)
    if champion is None:
        log.info("no champion yet: nothing to score (the first batches train the first champion)")
        return {"version": None, "batches": [], "skipped": [], "baseline_accuracy": None}
    with engine.connect() as connection:
        since = store.watermark(connection)
        touched = store.batches_since(connection, since)
    log.info(
        "champion is version %s (trained on rows up to id %d); batches since id %d: %s",
        champion.version,
        champion.trained_up_to,
        since,
        touched,
    )
    model = None
    reference = None
    scored, skipped = [], []
    for group, batch in touched:
        with engine.connect() as connection:
            rows = store.batch_rows(connection, group, batch, champion.trained_up_to)
        if rows.empty:
            skipped.append(
                {
                    "group_number": group,
                    "batch_number": batch,
                    "reason": f"version {champion.version} was trained on every row of this batch",
                }
            )
            log.warning(
                "batch %d/%d: version %s already trained on all its rows; not scored", group, batch, champion.version
            )
            continue
        if model is None:
            model = model_loading.load_registered_model(
                settings.model_name, champion.version, settings.mlflow_tracking_uri
            )
        score = scoring.score_rows(model, rows)
        drift_result, detail = None, None
        try:
            if reference is None:
                with engine.connect() as connection:
                    reference = store.reference_rows(
                        connection, champion.trained_up_to, settings.evaluation_percent, settings.monitor_reference_rows
                    )
            drift_result = drift.measure(reference, rows, settings.monitor_drift_seconds)
        except Exception as error:  # accuracy matters more than the drift report: store it anyway
            detail = str(error)
            log.warning("batch %d/%d: no drift measured: %s", group, batch, detail)
        result = store.BatchResult(
            group_number=group,
            batch_number=batch,
            model_version=champion.version,
            rows_scored=score.rows,
            accuracy=score.accuracy,
            macro_f1=score.macro_f1,
            recall_per_class=score.recall_per_class,
            max_raw_id=int(rows["id"].max()),
            drift_share=drift_result.share if drift_result else None,
            drifted_columns=drift_result.drifted_columns if drift_result else None,
            drift_seconds=drift_result.seconds if drift_result else None,
            detail=detail,
        )
        monitoring_run, report_uri = _log_to_mlflow(
            client, settings, champion, result, drift_result.html if drift_result else None
        )
        result = store.BatchResult(**{**result.as_row(), "monitoring_run_id": monitoring_run, "report_uri": report_uri})
        with engine.begin() as connection:
            store.upsert(connection, result)
        log.info(
            "batch %d/%d scored by version %s: %d rows, accuracy %.4f, macro-F1 %.4f, drift %s",
            group,
            batch,
            champion.version,
            score.rows,
            score.accuracy,
            score.macro_f1,
            "n/a" if result.drift_share is None else f"{result.drift_share:.2f} {result.drifted_columns}",
        )
        scored.append({k: v for k, v in result.as_row().items() if k != "scored_at"})
    return {
        "version": champion.version,
        "baseline_accuracy": champion.evaluation_accuracy,
        "batches": scored,
        "skipped": skipped,
        "airflow_run_id": run_id,
    }


def find_alerts(settings: Settings, scored: dict[str, Any]) -> list[dict[str, Any]]:
    """The thresholds crossed by the batches just scored (JSON-ready, for XCom)."""
    found = alerts.check(
        scored["batches"], scored.get("baseline_accuracy"), settings.alert_accuracy_drop, settings.alert_drift_share
    )
    return [a.as_dict() for a in found]
