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


def has_new_rows(outcome: dict) -> bool:
    """Whether downstream (the Asset event, hence training) should happen."""
    return outcome["status"] == FetchStatus.STORED and outcome["rows_new"] > 0


def asset_extra(outcome: dict) -> dict:
    """What the Asset event carries, so the training DAG can see what arrived."""
    keys = ("group_number", "batch_number", "rows_new", "fetch_id")
    return {key: outcome[key] for key in keys}
