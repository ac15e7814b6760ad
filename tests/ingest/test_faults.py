"""A whole batch cycle through a data API that misbehaves on purpose.

The fault-injecting wrapper sits between ``ingest_once`` and the real data
API process; afterwards the store must hold exactly the valid rows that were
delivered, each once, and every broken row or body must be quarantined with
a reason that names the problem.
"""

from __future__ import annotations

import pytest

from forestops.ingest.pipeline import ingest_once
from tests.ingest.faulty_api import FaultyDataApi
from tests.ingest.helpers import Store, assert_fetch_log_adds_up, collect_until_complete, contract_rows

pytestmark = pytest.mark.integration

FAULT_PLAN = (
    "ok",
    "http500",
    "duplicate_rows",
    "stall",
    "short_rows",
    "truncated_json",
    "ok",
    "unknown_soil",
    "http500",
    "http500",
    "missing_key",
    "duplicate_rows",
)


def test_faulty_cycle_loses_nothing_valid_and_duplicates_nothing(data_api, fresh_group, app_database, ingest_settings):
    with FaultyDataApi(data_api.url, FAULT_PLAN, stall_seconds=2.5) as faulty:
        settings = ingest_settings(
            datasource_url=faulty.url, group_number=fresh_group, database_url=app_database.url, http_timeout_seconds=2
        )
        outcomes = []

        def step(i: int) -> str:
            outcome = ingest_once(settings, run_id=f"faulty-{i}")
            outcomes.append(outcome)
            return outcome.status

        collect_until_complete(step, pause=0.3)

    store = Store(app_database.url)
    try:
        # Every fault kind was exercised, and the API's failures never surfaced as errors.
        assert {d.fault for d in faulty.deliveries} >= set(FAULT_PLAN) - {"http500", "stall"}
        assert all(o.status in ("stored", "complete") for o in outcomes), [o.error for o in outcomes]
        # The API went through all its batches, and the fetches were logged under them.
        assert {d.batch_number for d in faulty.deliveries} == set(range(1, 11))
        assert {o.batch_number for o in outcomes if o.batch_number} <= set(range(1, 11))

        expected = contract_rows(faulty.delivered_valid_rows())
        stored = store.raw()
        assert stored == expected  # nothing valid missing, nothing extra, values as the contract says

        rejected = store.rejected()
        bad = faulty.delivered_bad_payloads()
        assert bad and set(bad) == set(rejected)
        for payload, reason in rejected.items():
            if payload.startswith("{"):
                assert reason.startswith("unreadable response:"), reason
            elif "C9999" in payload:
                assert "Soil_Type" in reason and "C9999" in reason, reason
            else:
                assert "12 fields" in reason, reason

        fetches = store.fetches()
        assert_fetch_log_adds_up(fetches, len(stored))
        assert sum(f["rows_duplicate"] for f in fetches) > 0
        assert fetches[-1]["status"] == "complete"
        assert [f["status"] for f in fetches].count("error") == 0
    finally:
        store.close()
