"""Reading the store back and computing what it should hold, for the ingestion tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from forestops import schema
from forestops.storage.db import make_engine
from forestops.storage.tables import fetch_log, raw_rows, rejected_rows


def contract_rows(rows: Iterable[list[str]], label_base: int = 0) -> dict[str, tuple]:
    """Row hash -> the 13 normalised values, straight from the data contract."""
    expected = {}
    for values in rows:
        row = schema.normalise_raw_row(values, label_base)
        expected[schema.row_digest(row)] = tuple(row[c] for c in schema.RAW_COLUMNS)
    return expected


class Store:
    """Read-only view of a test database."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def raw(self) -> dict[str, tuple]:
        columns = [raw_rows.c.row_hash, *(raw_rows.c[c] for c in schema.RAW_COLUMNS)]
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(*columns)).all()
        stored = {row[0]: tuple(row[1:]) for row in rows}
        assert len(stored) == len(rows), "a row hash is stored twice"
        return stored

    def raw_count(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(raw_rows)).scalar_one()

    def rejected(self) -> dict[str, str]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(rejected_rows.c.payload, rejected_rows.c.reason)).all()
        return {payload: reason for payload, reason in rows}

    def fetches(self) -> list[dict]:
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(sa.select(fetch_log).order_by(fetch_log.c.id)).mappings()]


def assert_fetch_log_adds_up(fetches: list[dict], stored_rows: int) -> None:
    for fetch in fetches:
        assert fetch["rows_received"] == fetch["rows_new"] + fetch["rows_duplicate"] + fetch["rows_rejected"], fetch
    assert sum(f["rows_new"] for f in fetches) == stored_rows


def collect_until_complete(step: Callable[[int], str], pause: float, limit: int = 200) -> list[str]:
    """Call ``step(i)`` (one fetch, returning its status) until it reports ``complete``."""
    statuses = []
    for i in range(limit):
        statuses.append(step(i))
        if statuses[-1] == "complete":
            return statuses
        time.sleep(pause)
    raise AssertionError(f"the collection did not complete in {limit} fetches: {statuses[-20:]}")
