"""Write one fetch to the raw data store: all of it or none of it.

The fetch log row, the new raw rows and the quarantined rows go in one
transaction, so a crash mid-insert leaves no trace of the fetch and a retry
starts clean.  Duplicates (resamples, retries) are skipped by the database
itself on the unique content hash, in bulk, with the dialect's own
"ignore the duplicate key" form (MySQL/MariaDB: multi-row ``INSERT IGNORE``
statements of validated literals, see ``_literal_values``; SQLite and
PostgreSQL: ``ON CONFLICT DO NOTHING`` with bound parameters).
New rows are counted by their fetch id afterwards, which is exact whatever
the driver reports as affected rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from forestops.ingest.rows import RejectedRow
from forestops.names import FetchStatus
from forestops.storage.tables import fetch_log, raw_rows, rejected_rows


def utcnow() -> dt.datetime:
    """Naive UTC, the way the store's DateTime columns hold time."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class FetchCounts:
    fetch_id: int
    received: int
    new: int
    duplicate: int
    rejected: int


def insert_skipping_duplicates(connection: Connection, table: Table, key: str, rows: Sequence[dict]) -> None:
    """Bulk insert; rows whose ``key`` already exists are skipped, not errors."""
    if not rows:
        return
    dialect = connection.dialect.name
    statement: Insert
    if dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    elif dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    elif dialect in ("mysql", "mariadb"):
        if _insert_ignore_literal_rows(connection, table, rows):
            return
        # Rows are validated to the column types before they get here, so
        # the only error IGNORE can swallow is the duplicate key.
        statement = insert(table).prefix_with("IGNORE")
    else:
        raise NotImplementedError(f"no duplicate-skipping insert for {dialect}")
    connection.execute(statement, list(rows))


# Multi-row INSERT statements of at most this many rows (about 1.5 MB for raw
# rows: well under MySQL's smallest usual max_allowed_packet of 4 MB).
LITERAL_CHUNK_ROWS = 5000
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_]*\Z")


def _literal_values(columns: list[str], rows: Sequence[dict]) -> list[tuple] | None:
    """Rows as SQL literals, or None when any value is not trivially safe to inline.

    Validated raw rows hold only integers, category codes, hex digests and
    a timestamp; such values need no escaping, so the statement text can be
    built with one C-level format per row instead of the driver's per-value
    escaping in Python, which otherwise dominates a bulk insert.  Anything
    else (quarantined payloads, NULLs) goes through bound parameters.
    """
    literal_columns = []
    for column in columns:
        values = [row[column] for row in rows]
        kinds = {type(v) for v in values}
        if kinds == {int}:
            literal_columns.append([str(v) for v in values])
        elif kinds == {str} and _PLAIN_TEXT.match("".join(values)):
            literal_columns.append([f"'{v}'" for v in values])
        elif kinds == {dt.datetime}:
            rendered = {v: f"'{v:%Y-%m-%d %H:%M:%S.%f}'" for v in set(values)}
            literal_columns.append([rendered[v] for v in values])
        else:
            return None
    return list(zip(*literal_columns, strict=True))


def _insert_ignore_literal_rows(connection: Connection, table: Table, rows: Sequence[dict]) -> bool:
    columns = list(rows[0])
    literal_rows = _literal_values(columns, rows)
    if literal_rows is None:
        return False
    preparer = connection.dialect.identifier_preparer
    head = (
        f"INSERT IGNORE INTO {preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)}) VALUES "
    )
    for start in range(0, len(literal_rows), LITERAL_CHUNK_ROWS):
        chunk = literal_rows[start : start + LITERAL_CHUNK_ROWS]
        connection.exec_driver_sql(head + ",".join("(" + ",".join(values) + ")" for values in chunk))
    return True


def _open_fetch(
    connection: Connection, source_url: str, group: int, batch: int | None, run_id: str | None, started_at: dt.datetime
) -> int:
    result = connection.execute(
        insert(fetch_log).values(
            started_at=started_at,
            source_url=source_url,
            group_number=group,
            batch_number=batch,
            status=FetchStatus.STORED,
            rows_received=0,
            rows_new=0,
            rows_duplicate=0,
            rows_rejected=0,
            run_id=run_id,
        )
    )
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has its key
    return int(key[0])


def store_fetch(
    engine: Engine,
    *,
    source_url: str,
    group_number: int,
    batch_number: int | None,
    valid: Sequence[dict[str, Any]],
    rejected: Sequence[RejectedRow],
    run_id: str | None = None,
    started_at: dt.datetime | None = None,
    error: str | None = None,
) -> FetchCounts:
    """Store a portion (valid rows + quarantined ones) and its log entry atomically."""
    now = utcnow()
    with engine.begin() as connection:
        fetch_id = _open_fetch(connection, source_url, group_number, batch_number, run_id, started_at or now)
        unique = {row["row_hash"]: row for row in valid}
        context = {"group_number": group_number, "fetch_id": fetch_id}
        insert_skipping_duplicates(
            connection,
            raw_rows,
            "row_hash",
            [{**row, **context, "batch_number": batch_number, "fetched_at": now} for row in unique.values()],
        )
        quarantined = {r.payload_hash: r for r in rejected}
        insert_skipping_duplicates(
            connection,
            rejected_rows,
            "payload_hash",
            [
                {
                    "payload_hash": digest,
                    "payload": r.payload,
                    "reason": r.reason,
                    "batch_number": batch_number,
                    "received_at": now,
                    **context,
                }
                for digest, r in quarantined.items()
            ],
        )
        new = connection.execute(select(func.count()).where(raw_rows.c.fetch_id == fetch_id)).scalar_one()
        counts = FetchCounts(
            fetch_id=fetch_id,
            received=len(valid) + len(rejected),
            new=int(new),
            duplicate=len(valid) - int(new),
            rejected=len(rejected),
        )
        connection.execute(
            update(fetch_log)
            .where(fetch_log.c.id == fetch_id)
            .values(
                finished_at=utcnow(),
                rows_received=counts.received,
                rows_new=counts.new,
                rows_duplicate=counts.duplicate,
                rows_rejected=counts.rejected,
                error=error,
            )
        )
    return counts


def record_status(
    engine: Engine,
    *,
    status: FetchStatus,
    source_url: str,
    group_number: int,
    run_id: str | None = None,
    started_at: dt.datetime | None = None,
    error: str | None = None,
    detail: str | None = None,
) -> int:
    """Log a fetch that stored nothing: the collection is complete, or the API failed."""
    with engine.begin() as connection:
        fetch_id = _open_fetch(connection, source_url, group_number, None, run_id, started_at or utcnow())
        connection.execute(
            update(fetch_log)
            .where(fetch_log.c.id == fetch_id)
            .values(status=status, finished_at=utcnow(), error=error, detail=detail)
        )
    return fetch_id


def finished_fetch_of_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The stored or complete fetch already made by this run id, if any."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                select(fetch_log)
                .where(fetch_log.c.run_id == run_id, fetch_log.c.status.in_((FetchStatus.STORED, FetchStatus.COMPLETE)))
                .order_by(fetch_log.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def newest_status(engine: Engine, group_number: int) -> FetchStatus | None:
    """The status of the group's newest fetch, if it has one."""
    with engine.connect() as connection:
        status = connection.execute(
            select(fetch_log.c.status)
            .where(fetch_log.c.group_number == group_number)
            .order_by(fetch_log.c.id.desc())
            .limit(1)
        ).scalar()
    return FetchStatus(status) if status is not None else None


def record_complete(
    engine: Engine,
    *,
    source_url: str,
    group_number: int,
    detail: str,
    run_id: str | None = None,
    started_at: dt.datetime | None = None,
    merge: bool = True,
) -> int:
    """Log that the collection is complete, once per stretch of completeness.

    When the group's newest fetch_log row already says "complete" (nothing
    was stored, failed or restarted since), that row is confirmed instead of
    a new one added: its ``finished_at`` becomes the last time the API said
    so and ``run_id`` the run that last asked.  Its ``started_at`` stays the
    moment the collection was first found complete.  Without this, a
    finished collection added one row per ingest run forever.  ``merge=False``
    (the run restarted the collection: an event of its own) always adds a row.
    """
    with engine.begin() as connection:
        if merge:
            newest = connection.execute(
                select(fetch_log.c.id, fetch_log.c.status, fetch_log.c.detail)
                .where(fetch_log.c.group_number == group_number)
                .order_by(fetch_log.c.id.desc())
                .limit(1)
                .with_for_update()
            ).first()
            if newest is not None and newest.status == FetchStatus.COMPLETE and newest.detail == detail:
                connection.execute(
                    update(fetch_log).where(fetch_log.c.id == newest.id).values(finished_at=utcnow(), run_id=run_id)
                )
                return newest.id
    return record_status(
        engine,
        status=FetchStatus.COMPLETE,
        source_url=source_url,
        group_number=group_number,
        run_id=run_id,
        started_at=started_at,
        detail=detail,
    )
