"""The end of the collection, configuration mistakes and an API that never recovers."""

from __future__ import annotations

import json
import subprocess

import pytest

from forestops.ingest.client import DataApiConfigurationError
from forestops.ingest.pipeline import ingest_once
from tests.ingest.conftest import env_for
from tests.ingest.helpers import Store
from tests.ingest.static_api import StaticApi
from tests.support.processes import forestops_argv

pytestmark = pytest.mark.integration


def test_a_group_the_real_api_does_not_have_is_a_configuration_error(data_api, app_database, ingest_settings):
    settings = ingest_settings(
        datasource_url=data_api.url, group_number=11, group_count=11, database_url=app_database.url
    )
    with pytest.raises(DataApiConfigurationError, match=r"refused group 11 \(HTTP 400: .*FORESTOPS_GROUP_NUMBER"):
        ingest_once(settings)
    store = Store(app_database.url)
    try:
        [fetch] = store.fetches()
        assert fetch["status"] == "error" and "group 11" in fetch["error"]
        assert store.raw_count() == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    ("status", "detail", "complete"),
    [
        # The course's server ends the collection with a 400 in Spanish; ours in English.
        (400, "Ya se recolectó toda la información mínima necesaria", True),
        (400, "All 10 batches of group 3 have been served; call /restart_data_generation", True),
        (400, "Número de grupo inválido", False),
        (400, "group_number must be an integer from 1 to 10, got 3", False),
        (422, "Input should be a valid integer", False),
        (404, "Not Found", False),
    ],
)
def test_400_means_complete_unless_it_blames_the_group(status, detail, complete, app_database, ingest_settings):
    with StaticApi(status, json.dumps({"detail": detail}).encode()) as api:
        settings = ingest_settings(datasource_url=api.url, group_number=3, database_url=app_database.url)
        if complete:
            outcome = ingest_once(settings)
            assert outcome.status == "complete" and detail in outcome.detail and not outcome.restarted
        else:
            with pytest.raises(DataApiConfigurationError, match=f"HTTP {status}"):
                ingest_once(settings)
        assert api.calls == 1  # 4xx is never retried


def test_an_api_that_keeps_failing_is_an_error_after_bounded_retries(app_database, ingest_settings):
    with StaticApi(503, b"upstream down") as api:
        settings = ingest_settings(datasource_url=api.url, database_url=app_database.url, http_retries=2)
        outcome = ingest_once(settings)
        assert api.calls == 3
    assert outcome.status == "error" and "failed 3 time(s)" in outcome.error and "HTTP 503" in outcome.error
    store = Store(app_database.url)
    try:
        [fetch] = store.fetches()
        assert (fetch["status"], fetch["error"]) == ("error", outcome.error)
    finally:
        store.close()


def test_ingest_once_command(data_api, fresh_group, app_database, ingest_settings):
    settings = ingest_settings(datasource_url=data_api.url, group_number=fresh_group, database_url=app_database.url)
    env = {**env_for(settings), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(forestops_argv("ingest-once"), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "stored" and outcome["batch_number"] == 1 and outcome["rows_new"] > 0
    store = Store(app_database.url)
    try:
        assert store.raw_count() == outcome["rows_new"]
    finally:
        store.close()

    broken = {**env, "FORESTOPS_GROUP_NUMBER": "10", "FORESTOPS_DATASOURCE_URL": data_api.url + "/nothing-here"}
    done = subprocess.run(forestops_argv("ingest-once"), env=broken, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "HTTP 404" in done.stderr and "FORESTOPS_DATASOURCE_URL" in done.stderr
