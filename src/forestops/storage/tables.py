"""Table definitions of the ``covertype`` database (SQLAlchemy Core).

Feature columns take their names and types from ``forestops.schema``, so the
store cannot drift from the data contract.  The same definitions run on MySQL
(deployments, tests) and SQLite (the embedded local stack).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

from forestops import schema

metadata = MetaData()

# BIGINT AUTO_INCREMENT on MySQL, INTEGER PRIMARY KEY (rowid) on SQLite.
_Id = BigInteger().with_variant(Integer(), "sqlite")
# A quarantined payload may be a whole response body (megabytes): TEXT's
# 64 KiB on MySQL would truncate it, and quarantine must lose nothing.
_Payload = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

fetch_log = Table(
    "fetch_log",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=False), nullable=False),
    Column("finished_at", DateTime(timezone=False), nullable=True),
    Column("source_url", String(512), nullable=False),
    Column("group_number", SmallInteger, nullable=False),
    Column("batch_number", SmallInteger, nullable=True),
    Column("status", String(16), nullable=False, comment="stored | complete | error"),
    Column("rows_received", Integer, nullable=False, default=0),
    Column("rows_new", Integer, nullable=False, default=0),
    Column("rows_duplicate", Integer, nullable=False, default=0),
    Column("rows_rejected", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("detail", Text, nullable=True, comment="what happened beyond the counts (e.g. collection restarted)"),
    Column("run_id", String(250), nullable=True, index=True, comment="Airflow run id, when run by Airflow"),
)

raw_rows = Table(
    "raw_rows",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("row_hash", String(64), nullable=False, unique=True),
    *(Column(name, Integer, nullable=False) for name in schema.NUMERIC_COLUMNS),
    Column(schema.WILDERNESS_AREA, String(16), nullable=False),
    Column(schema.SOIL_TYPE, String(8), nullable=False),
    Column(schema.LABEL, SmallInteger, nullable=False),
    Column("group_number", SmallInteger, nullable=False),
    Column("batch_number", SmallInteger, nullable=False),
    Column("fetch_id", _Id, ForeignKey("fetch_log.id"), nullable=False, index=True),
    Column("fetched_at", DateTime(timezone=False), nullable=False),
)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("payload_hash", String(64), nullable=False, unique=True),
    Column("payload", _Payload, nullable=False, comment="the row (or response) exactly as received"),
    Column("reason", Text, nullable=False),
    Column("group_number", SmallInteger, nullable=False),
    Column("batch_number", SmallInteger, nullable=True),
    Column("fetch_id", _Id, ForeignKey("fetch_log.id"), nullable=False),
    Column("received_at", DateTime(timezone=False), nullable=False),
)

training_log = Table(
    "training_log",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=False), nullable=False),
    Column("finished_at", DateTime(timezone=False), nullable=True),
    Column("status", String(16), nullable=False, comment="skipped | trained | failed"),
    Column("rows_used", Integer, nullable=False, default=0),
    Column("max_raw_id", BigInteger, nullable=True, comment="highest raw_rows.id seen by this training"),
    Column("mlflow_run_id", String(64), nullable=True),
    Column("model_version", String(16), nullable=True),
    Column("decision", String(32), nullable=True, comment="champion | challenger | none"),
    Column("primary_metric", Float, nullable=True),
    Column("champion_metric", Float, nullable=True),
    Column("detail", Text, nullable=True),
    Column("run_id", String(250), nullable=True, comment="Airflow run id"),
)
