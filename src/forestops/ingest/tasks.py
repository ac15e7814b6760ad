"""The ingest DAG's task bodies, kept out of the DAG file so they are tested without Airflow."""

from __future__ import annotations

import logging

from forestops.errors import ForestopsError
from forestops.ingest.pipeline import ingest_once
from forestops.names import FetchStatus
from forestops.settings import load_settings

log = logging.getLogger(__name__)


class IngestFailed(ForestopsError):
    """The data API could not be read; raised so Airflow retries the task with backoff."""


def collect(run_id: str | None, overrides: dict | None = None) -> dict:
    """One fetch-and-store; the outcome (a dict, for XCom) or ``IngestFailed``.

    Settings are read here, when the task runs, so a changed variable takes
    effect on the next run without re-parsing the DAG; ``overrides`` come
    from Airflow connections (see ``forestops.ingest.connections``).
    """
    outcome = ingest_once(load_settings(**(overrides or {})), run_id=run_id)
    log.info("%s", outcome.summary())
    if outcome.status == FetchStatus.ERROR:
        raise IngestFailed(outcome.error)
    return outcome.as_dict()


def should_announce(outcome: dict) -> bool:
    """Whether downstream (the Asset event, hence training and monitoring) should happen.

    A fetch announces when it stored new rows, and once more when it first
    found the collection complete: that event wakes the final training on
    every collected row (see ``forestops.training.gate``).
    """
    stored_new = outcome["status"] == FetchStatus.STORED and outcome["rows_new"] > 0
    return stored_new or bool(outcome.get("collection_completed"))


def asset_extra(outcome: dict) -> dict:
    """What the Asset event carries, so the training DAG can see what arrived."""
    keys = ("group_number", "batch_number", "rows_new", "fetch_id", "collection_completed")
    return {key: outcome.get(key) for key in keys}
