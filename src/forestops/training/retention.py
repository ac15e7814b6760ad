"""Retention of registered versions: keep what may still be served or rolled back to, delete the rest for good.

Kept: the ``FORESTOPS_RETENTION_KEEP_VERSIONS`` newest versions, every
version holding an alias, and every version named by the promotion history
within ``FORESTOPS_RETENTION_HISTORY_DAYS`` (what a rollback may return to).
Every other version is deleted with what it alone owns: its logged model,
its training run, the run's parent (the training) and the parent's other
children (the losing candidates), unless a kept version still needs one of
them.  MLflow then only marks runs and logged models deleted; ``mlflow gc``
removes their rows and artefacts.  With proxied artefacts (the tracking
server streams them, as in every forestops deployment) gc deletes the
objects through the tracking server, and needs the backend store's URI,
which the job gets from ``FORESTOPS_MLFLOW_BACKEND_STORE_URI`` (defaulting to
the store the local stack's MLflow uses).  gc runs in this process, so that
URI never shows on a command line.

Shadow counts older than the history window are dropped too (each
decision's figures live on in the promotion history).

Finally the job lists the artefact store under each deleted run's and
model's prefix and reports anything left, so "deleted" is checked, not assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from forestops.settings import Settings
from forestops.training import history

log = logging.getLogger(__name__)

PARENT_RUN_TAG = "mlflow.parentRunId"
PROXY_SCHEME = "mlflow-artifacts:"


@dataclass
class RetentionReport:
    kept: list[str] = field(default_factory=list)
    deleted_versions: list[str] = field(default_factory=list)
    deleted_runs: list[str] = field(default_factory=list)
    deleted_models: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)  # artefact prefixes still holding objects after gc
    pruned_tallies: int = 0  # shadow_tallies rows older than the history window

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


def choose_kept(
    versions: list[str], aliased: set[str], in_recent_history: set[str], keep_latest: int
) -> tuple[list[str], list[str]]:
    """Pure: (kept, to delete), each sorted by version number."""
    ordered = sorted(versions, key=int)
    newest = set(ordered[-keep_latest:]) if keep_latest > 0 else set()
    kept = [v for v in ordered if v in newest or v in aliased or v in in_recent_history]
    return kept, [v for v in ordered if v not in kept]


def prune_shadow_tallies(engine: sa.Engine, model_name: str, before: datetime) -> int:
    """Drop shadow counts older than the history window (the history keeps each decision's figures)."""
    from forestops.storage.tables import shadow_tallies

    with engine.begin() as connection:
        done = connection.execute(
            shadow_tallies.delete().where(
                shadow_tallies.c.model_name == model_name, shadow_tallies.c.flushed_at < before.replace(tzinfo=None)
            )
        )
    return int(done.rowcount or 0)


def model_id_of(version) -> str | None:
    """The logged model behind a version: ``model_id``, or the ``models:/<id>`` source MLflow 3 registers from."""
    model_id = getattr(version, "model_id", None)
    if model_id:
        return model_id
    source = getattr(version, "source", "") or ""
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/", 1)[0]
    return None


def _relative(uri: str | None) -> str | None:
    """The proxied artefact URI's path below the artefact destination (``1/<run>/artifacts``)."""
    if not uri or not uri.startswith(PROXY_SCHEME):
        return None
    return uri[len(PROXY_SCHEME) :].lstrip("/")


def remaining_objects(destination: str, prefix: str, s3_client=None) -> list[str]:
    """Objects (S3 keys or files) still stored under ``prefix`` of the artefact destination."""
    if destination.startswith("s3://"):
        bucket, _, base = destination.removeprefix("s3://").partition("/")
        key_prefix = f"{base.rstrip('/')}/{prefix}".lstrip("/")
        answer = s3_client.list_objects_v2(Bucket=bucket, Prefix=key_prefix)
        return [item["Key"] for item in answer.get("Contents", [])]
    folder = Path(destination) / prefix
    return [str(p) for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _s3_client(settings: Settings):
    import boto3

    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )


def mlflow_gc(backend_store_uri: str, tracking_uri: str, run_ids: list[str], model_ids: list[str]) -> None:
    """``mlflow gc`` for exactly these runs and logged models, in this process."""
    from mlflow.cli import gc

    args = ["--backend-store-uri", backend_store_uri, "--tracking-uri", tracking_uri]
    if run_ids:
        args += ["--run-ids", ",".join(run_ids)]
    if model_ids:
        args += ["--logged-model-ids", ",".join(model_ids)]
    gc.main(args=args, standalone_mode=False)


def apply(
    engine: sa.Engine,
    client,
    settings: Settings,
    backend_store_uri: str,
    artifacts_destination: str,
    s3_client=None,
    now: datetime | None = None,
) -> RetentionReport:
    """Delete what retention does not keep (see the module docstring); returns what happened."""
    model_name = settings.model_name
    now = now or datetime.now(UTC)
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{model_name}'")}
    aliased = {str(v.version) for v in versions.values() for _ in (v.aliases or [])}
    with engine.connect() as connection:
        recent = history.versions_since(connection, model_name, now - timedelta(days=settings.retention_history_days))
    kept, doomed = choose_kept(list(versions), aliased, recent, settings.retention_keep_versions)
    report = RetentionReport(kept=kept)
    window_start = now - timedelta(days=settings.retention_history_days)
    report.pruned_tallies = prune_shadow_tallies(engine, model_name, window_start)
    if not doomed:
        return report

    def family(run_id: str | None) -> set[str]:
        """The version's run, its parent and the parent's children (one training's runs)."""
        if not run_id:
            return set()
        run = client.get_run(run_id)
        parent = run.data.tags.get(PARENT_RUN_TAG) or run_id
        children = client.search_runs([run.info.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent}'")
        return {parent, run_id, *(child.info.run_id for child in children)}

    needed = set().union(*(family(versions[v].run_id) for v in kept)) if kept else set()
    prefixes: list[str] = []
    runs: set[str] = set()
    models: list[str] = []
    for number in doomed:
        version = versions[number]
        model_id = model_id_of(version)
        client.delete_model_version(model_name, number)
        report.deleted_versions.append(number)
        if model_id:
            model = client.get_logged_model(model_id)
            if model_prefix := _relative(model.artifact_location):
                prefixes.append(model_prefix)
            client.delete_logged_model(model_id)
            models.append(model_id)
        runs |= family(version.run_id) - needed
    for run_id in sorted(runs):
        run = client.get_run(run_id)
        if run_prefix := _relative(run.info.artifact_uri):
            prefixes.append(run_prefix)
        client.delete_run(run_id)
    report.deleted_runs = sorted(runs)
    report.deleted_models = models
    mlflow_gc(backend_store_uri, settings.mlflow_tracking_uri, report.deleted_runs, models)
    if artifacts_destination.startswith("s3://") and s3_client is None:
        s3_client = _s3_client(settings)
    for prefix in prefixes:
        report.left_behind += remaining_objects(artifacts_destination, prefix, s3_client)
    log.info(
        "retention of %s: kept %s; deleted versions %s, %d runs, %d logged models; %d objects left behind",
        model_name,
        kept,
        report.deleted_versions,
        len(report.deleted_runs),
        len(models),
        len(report.left_behind),
    )
    return report


def retention_step(settings: Settings) -> dict[str, object]:
    """What the ``covertype_retention`` DAG runs, against the configured stores."""
    from forestops.local.mlflow_server import artifacts_destination, backend_store_uri
    from forestops.storage.db import ensure_schema, make_engine
    from forestops.training import tracking

    given = getattr(settings, "mlflow_backend_store_uri", None)  # MLflow's own database user, when set
    backend = given.get_secret_value() if given else backend_store_uri(settings)
    engine = make_engine(settings.raw_database_url)
    try:
        ensure_schema(engine)
        client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        report = apply(engine, client, settings, backend, artifacts_destination(settings))
    finally:
        engine.dispose()
    if report.left_behind:
        raise RuntimeError(f"retention left {len(report.left_behind)} objects behind: {report.left_behind[:5]}")
    return report.as_dict()
