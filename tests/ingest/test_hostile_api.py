"""The hostile data API catalogue: every misbehaviour ends recorded, nothing stored earlier is lost.

One shared server (``tests/ingest/hostile_api.py``) serves each case under its
own path; one store (SQLite, so the case list runs in seconds) first receives
a valid portion, then every case is collected with short caps.  For each case
the fetch must end as a ``fetch_log`` row with a status and a reason (or with
its body or rows in quarantine), never as an exception that leaves no trace,
and the rows stored before must be exactly as they were.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from forestops.ingest import client
from forestops.ingest.client import DataApiConfigurationError
from forestops.ingest.pipeline import ingest_once
from forestops.settings import Settings, load_settings
from forestops.storage.tables import rejected_rows
from tests.ingest.helpers import Store
from tests.ingest.hostile_api import HostileApi
from tests.support.data import sample_rows

pytestmark = pytest.mark.integration

CAPS = {
    "http_timeout_seconds": 1.0,
    "http_retries": 1,
    "http_backoff_seconds": 0.05,
    "http_total_seconds": 3.0,
    "http_max_response_bytes": 1024 * 1024,
    "http_max_json_depth": 32,
}
# Cases the API rejects in a way that can only be our configuration to fix: recorded, then raised.
CONFIGURATION_CASES = {"redirect_loop", "redirect_other_host", "long_400_text"}
# What "recorded" means here; the hang guard is the fetch deadline with room for a loaded machine.
HANG_GUARD_SECONDS = 60

GOOD_ROWS = sample_rows(20)
CASE_NAMES = sorted(set(HostileApi(GOOD_ROWS, GOOD_ROWS[0]).cases()) - {"ok"})


@pytest.fixture(scope="module")
def hostile_api() -> Iterator[HostileApi]:
    with HostileApi(GOOD_ROWS, GOOD_ROWS[0]) as api:
        yield api


@pytest.fixture(scope="module")
def seeded(hostile_api, tmp_path_factory) -> tuple[str, dict[str, tuple]]:
    """A store holding one valid portion; returns its URL and the rows as stored."""
    url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'raw.db'}"
    outcome = ingest_once(_settings(hostile_api.url("ok"), url), run_id="seed")
    assert outcome.status == "stored" and outcome.rows_new == len(GOOD_ROWS), outcome
    store = Store(url)
    try:
        return url, store.raw()
    finally:
        store.close()


def _quarantine_reasons(store: Store, fetch_id: int) -> list[str]:
    with store.engine.connect() as connection:
        query = sa.select(rejected_rows.c.reason).where(rejected_rows.c.fetch_id == fetch_id)
        return list(connection.execute(query).scalars())


def _settings(datasource_url: str, database_url: str) -> Settings:
    return load_settings(datasource_url=datasource_url, database_url=database_url, group_number=1, **CAPS)


def test_the_catalogue_has_at_least_25_misbehaviours():
    assert len(CASE_NAMES) >= 25, CASE_NAMES


@pytest.mark.parametrize("case", CASE_NAMES)
def test_each_misbehaviour_is_recorded_and_loses_nothing(hostile_api, seeded, case):
    database_url, stored_before = seeded
    settings = _settings(hostile_api.url(case), database_url)
    started = time.monotonic()
    raised = None
    try:
        ingest_once(settings, run_id=f"hostile-{case}")
    except DataApiConfigurationError as error:
        raised = error
    elapsed = time.monotonic() - started

    store = Store(database_url)
    try:
        fetches = [f for f in store.fetches() if f["run_id"] == f"hostile-{case}"]
        assert len(fetches) == 1, fetches
        fetch = fetches[0]
        assert fetch["status"] in ("error", "stored"), fetch
        assert fetch["finished_at"] is not None, fetch
        if fetch["status"] == "stored":
            # Nothing from a hostile answer becomes a training row; what came is quarantined, with why.
            assert fetch["rows_new"] == 0 and fetch["rows_rejected"] >= 1, fetch
            reasons = _quarantine_reasons(store, fetch["id"])
        else:
            reasons = [fetch["error"] or fetch["detail"] or ""]
        assert reasons and all(r.strip() for r in reasons), f"{case}: recorded without a reason: {fetch}"
        assert max(len(r) for r in reasons) <= 2000, f"{case}: a reason of {max(map(len, reasons))} characters"
        assert (raised is not None) == (case in CONFIGURATION_CASES), raised
        # Rows stored earlier are all there, unchanged, and nothing else was added.
        assert store.raw() == stored_before
    finally:
        store.close()
    assert elapsed < HANG_GUARD_SECONDS, f"{case}: the fetch took {elapsed:.0f} s"


def test_redirects_are_reported_with_their_target_and_not_followed(hostile_api, seeded):
    with pytest.raises(DataApiConfigurationError, match=r"redirected \(HTTP 307\) to http://collector.invalid/"):
        ingest_once(_settings(hostile_api.url("redirect_other_host"), seeded[0]))


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [[1]]}', 3),
        (b'{"a": "[[[[[["}', 1),
        (b'["\\"[[", [2]]', 2),
        (b"[" * 1000 + b"]" * 1000, 1000),
    ],
)
def test_json_depth_ignores_brackets_in_strings(text, depth):
    assert client.json_depth(text) == depth
