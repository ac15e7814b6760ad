"""Ingestion throughput: an 18k-row data API response to committed rows in MySQL/MariaDB.

Subject: what ``ingest_once`` does after the HTTP call — parse the body,
validate and hash every row (``forestops.ingest.rows``), and store the fetch
in one transaction with the bulk duplicate-skipping insert
(``forestops.ingest.store.store_fetch``).
Anchor, measured in the same run: the same parse and validation, then a
plain row-by-row insert (one ``INSERT IGNORE`` round trip per row, which is
what an ``executemany`` degrades to when the driver cannot batch it), in one
transaction too.  Each measurement gets a fresh database, dropped after.

The server is ``FORESTOPS_TEST_MYSQL_URL`` (default root@127.0.0.1:3306).
The rows are the real data set's first 18k when ../shared is there, else
generated ones.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid

import orjson
import sqlalchemy as sa
from testkit import data

from forestops import schema
from forestops.ingest.client import parse_portion
from forestops.ingest.rows import check_rows
from forestops.ingest.store import store_fetch, utcnow
from forestops.storage.db import ensure_schema, make_engine
from forestops.storage.tables import fetch_log, raw_rows

ROWS = 18_000
SERVER = os.environ.get("FORESTOPS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306").rstrip("/")


def _response_body(rows: list[list[str]]) -> bytes:
    return orjson.dumps({"group_number": 1, "batch_number": 1, "data": rows})


class FreshDatabase:
    def __init__(self) -> None:
        self.name = f"fo_bench_{uuid.uuid4().hex[:10]}"
        self.admin = sa.create_engine(SERVER)

    def __enter__(self) -> sa.Engine:
        with self.admin.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        self.engine = make_engine(f"{SERVER}/{self.name}")
        ensure_schema(self.engine)
        return self.engine

    def __exit__(self, *exc) -> None:
        self.engine.dispose()
        with self.admin.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.name}`"))
        self.admin.dispose()


def _count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(raw_rows)).scalar_one()


def bulk_store(engine: sa.Engine, body: bytes) -> None:
    """The subject: what ingest_once does with a response body."""
    portion = parse_portion(body, 1)
    checked = check_rows(portion.rows)
    store_fetch(
        engine,
        source_url="bench",
        group_number=1,
        batch_number=portion.batch_number,
        valid=checked.valid,
        rejected=checked.rejected,
    )


def row_by_row_store(engine: sa.Engine, body: bytes) -> None:
    """The anchor: same parsing and validation, then one INSERT round trip per row, one transaction."""
    portion = parse_portion(body, 1)
    checked = check_rows(portion.rows)
    now = utcnow()
    with engine.begin() as connection:
        fetch_id = connection.execute(
            sa.insert(fetch_log).values(
                started_at=now,
                source_url="bench",
                group_number=1,
                batch_number=portion.batch_number,
                status="stored",
                rows_received=0,
                rows_new=0,
                rows_duplicate=0,
                rows_rejected=0,
            )
        ).inserted_primary_key[0]
        statement = sa.insert(raw_rows).prefix_with("IGNORE")
        extra = {"group_number": 1, "batch_number": portion.batch_number, "fetch_id": fetch_id, "fetched_at": now}
        for row in checked.valid:
            connection.execute(statement, {**row, **extra})


def measure(store, bodies: list[bytes], expected: list[int]) -> tuple[float, float]:
    """Seconds for the first portion into the empty table (cold) and for the next one (steady state)."""
    with FreshDatabase() as engine:
        times = []
        for body, count in zip(bodies, expected, strict=True):
            started = time.perf_counter()
            store(engine, body)
            times.append(time.perf_counter() - started)
            assert _count(engine) == count
    return times[0], times[1]


def main() -> None:
    rows = data.sample_rows(2 * ROWS)
    bodies = [_response_body(rows[:ROWS]), _response_body(rows[ROWS:])]
    expected = [len(contract_hashes(rows[:ROWS])), len(contract_hashes(rows))]
    source = "real rows (../shared)" if data.real_data_available() else "generated rows"
    print(f"portions of {ROWS} rows (body {len(bodies[0]) / 1e6:.1f} MB), {source}; server {SERVER.split('@')[-1]}")
    print(f"machine: {os.cpu_count()} CPU cores, shared with other work; figures are medians")
    # Interleaved rounds, so that both sides see the same load on a shared machine.
    subject, anchor = [], []
    for _ in range(3):
        subject.append(measure(bulk_store, bodies, expected))
        anchor.append(measure(row_by_row_store, bodies, expected))
    for index, label in enumerate(("first portion, empty table", "next portion, steady state")):
        bulk = statistics.median(t[index] for t in subject)
        plain = statistics.median(t[index] for t in anchor)
        rounds = ", ".join(f"{a[index] / s[index]:.1f}x" for s, a in zip(subject, anchor, strict=True))
        print(f"{label}:")
        print(f"  row-by-row INSERT (anchor):  {plain:6.2f} s {ROWS / plain:9,.0f} rows/s")
        print(f"  ingest bulk store (subject): {bulk:6.2f} s {ROWS / bulk:9,.0f} rows/s")
        print(f"  speed-up: {plain / bulk:.1f}x (target >= 5x); per round: {rounds}")


def contract_hashes(rows: list[list[str]]) -> set[str]:
    return {schema.row_digest(schema.normalise_raw_row(row)) for row in rows}


if __name__ == "__main__":
    main()
