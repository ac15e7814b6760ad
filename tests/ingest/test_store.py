"""One fetch, one transaction: retries insert nothing new, a killed insert leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from forestops.ingest.pipeline import ingest_once
from forestops.ingest.rows import check_rows
from forestops.ingest.store import _literal_values, store_fetch
from forestops.storage.db import ensure_schema, make_engine
from tests.ingest.helpers import Store, assert_fetch_log_adds_up, contract_rows
from tests.support import data
from tests.support.airflow import REPO

pytestmark = pytest.mark.integration


def _store_twice(url: str) -> None:
    rows = data.generate_rows(300, seed=11)
    bad = [rows[0][:12], [*rows[1][:11], "C0000", rows[1][12]]]
    portion = rows + rows[:50] + bad  # duplicates inside one portion too
    engine = make_engine(url)
    try:
        ensure_schema(engine)
        checked = check_rows(portion)
        first = store_fetch(
            engine, source_url="test", group_number=1, batch_number=1, valid=checked.valid, rejected=checked.rejected
        )
        assert (first.received, first.new, first.duplicate, first.rejected) == (352, 300, 50, 2)
        # The same portion again (a retried fetch, a resample): nothing new anywhere.
        second = store_fetch(
            engine, source_url="test", group_number=1, batch_number=1, valid=checked.valid, rejected=checked.rejected
        )
        assert (second.received, second.new, second.duplicate, second.rejected) == (352, 0, 350, 2)
    finally:
        engine.dispose()
    store = Store(url)
    try:
        assert store.raw() == contract_rows(rows)
        assert len(store.rejected()) == 2
        assert_fetch_log_adds_up(store.fetches(), 300)
    finally:
        store.close()


@pytest.mark.unit
def test_only_plain_values_are_inlined_in_sql_text():
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 6)
    rows = [{"n": 1, "code": "C7745", "at": now}, {"n": -2, "code": "Rawah", "at": now}]
    assert _literal_values(["n", "code", "at"], rows) == [
        ("1", "'C7745'", "'2026-01-02 03:04:05.000006'"),
        ("-2", "'Rawah'", "'2026-01-02 03:04:05.000006'"),
    ]
    for unsafe in ("x'); DROP TABLE raw_rows; --", "a b", "é", None, 1.5, True):
        assert _literal_values(["v"], [{"v": "ok"}, {"v": unsafe}]) is None


def test_storing_the_same_portion_twice_adds_nothing_on_mysql(app_database):
    _store_twice(app_database.url)


def test_the_same_code_runs_on_sqlite(tmp_path):
    _store_twice(f"sqlite:///{tmp_path / 'covertype.db'}")


def test_a_retried_run_does_not_fetch_again(data_api, fresh_group, app_database, ingest_settings):
    settings = ingest_settings(datasource_url=data_api.url, group_number=fresh_group, database_url=app_database.url)
    first = ingest_once(settings, run_id="manual__retry")
    store = Store(app_database.url)
    try:
        before = (store.raw(), store.fetches())
        again = ingest_once(settings, run_id="manual__retry")
        assert again.replayed and again.fetch_id == first.fetch_id and again.rows_new == first.rows_new
        assert (store.raw(), store.fetches()) == before
        assert data_api.status(fresh_group)["batch_number"] == 1
    finally:
        store.close()


_BIG_INSERT = r"""
import sys
from forestops.ingest.rows import check_rows
from forestops.ingest.store import _literal_values, store_fetch
from forestops.storage.db import make_engine
from tests.support.data import generate_rows
checked = check_rows(generate_rows(int(sys.argv[2]), seed=5))
print("READY", flush=True)
store_fetch(make_engine(sys.argv[1]), source_url="kill-test", group_number=1, batch_number=1,
            valid=checked.valid, rejected=checked.rejected)
print("STORED", flush=True)
"""


def test_killing_the_process_mid_insert_leaves_no_partial_fetch(app_database):
    admin = sa.create_engine(app_database.admin_url)
    engine = make_engine(app_database.url)
    ensure_schema(engine)
    child = subprocess.Popen(
        [sys.executable, "-c", _BIG_INSERT, app_database.url, "60000"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout.readline().strip() == "READY"
        # Wait until the child's open transaction has written rows (visible to a dirty read), then
        # kill it as a crash would.
        dirty = sa.text(f"SELECT COUNT(*) FROM `{app_database.name}`.raw_rows")
        deadline = time.monotonic() + 120
        uncommitted = 0
        with admin.connect() as connection:
            connection.execute(sa.text("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED"))
            while time.monotonic() < deadline and uncommitted == 0:
                assert child.poll() is None, "the insert finished before it could be interrupted"
                uncommitted = connection.execute(dirty).scalar_one()
                connection.rollback()
                time.sleep(0.005)
        assert 0 < uncommitted < 60000, uncommitted
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        # The server notices the dead connection and rolls its transaction back.
        deadline = time.monotonic() + 60
        with admin.connect() as connection:
            connection.execute(sa.text("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED"))
            while time.monotonic() < deadline and connection.execute(dirty).scalar_one() > 0:
                connection.rollback()
                time.sleep(0.1)
        store = Store(app_database.url)
        try:
            assert store.fetches() == [] and store.raw_count() == 0 and store.rejected() == {}
        finally:
            store.close()
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        admin.dispose()
        engine.dispose()
