"""What covertype_monitor stored (``batch_monitoring``), read for the Monitoring page.

Like the collection progress this reads the database (SELECT only): the
per-batch results are kept there and the inference API publishes them to
Prometheus only as gauges.  A missing database or table is a message, not a
traceback, because it is the normal state before the first champion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from forestops.monitoring import store
from forestops.ui.clients.collection import SERVICE, _engine, redact
from forestops.ui.clients.http import ServiceError

NOTHING_YET = (
    "covertype_monitor stores a row when a batch arrives after the first champion; "
    "let the pipeline run (Pipeline page) and come back."
)


def batch_results(database_url: str) -> list[dict[str, Any]] | ServiceError:
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return ServiceError(SERVICE, f"no database at {url.database}: nothing has been collected yet", NOTHING_YET)
    try:
        with _engine(database_url).connect() as connection:
            return store.results(connection)
    except SQLAlchemyError as error:
        text = str(error)
        if "batch_monitoring" in text and ("doesn't exist" in text or "no such table" in text):
            return ServiceError(SERVICE, f"no batch_monitoring table in {redact(database_url)} yet", NOTHING_YET)
        return ServiceError(
            SERVICE,
            f"cannot read {redact(database_url)}: {type(error).__name__}",
            "Check that the database is running and FORESTOPS_DATABASE_URL points at it.",
        )


def report_link(tracking_uri: str, run_id: str | None) -> str | None:
    """Where a browser gets the drift report of a monitoring run from the MLflow server."""
    if not run_id or not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/get-artifact?path=drift_report.html&run_uuid={run_id}"
