"""Table definitions of the ``covertype`` database (SQLAlchemy Core).

Feature columns take their names and types from ``forestops.schema``, so the
store cannot drift from the data contract.  The same definitions run on MySQL
(deployments, tests) and SQLite (the embedded local stack).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
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

# Every move of a registry alias (automatic promotion, shadow decisions,
# manual promote, rollback), one row each and never changed afterwards: the
# application's MySQL user may only INSERT and SELECT here (see
# ``forestops.storage.provision``), and SQLite refuses UPDATE/DELETE by trigger.
alias_history = Table(
    "alias_history",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("changed_at", DateTime(timezone=False), nullable=False, comment="UTC"),
    Column("model_name", String(256), nullable=False, index=True),
    Column("alias", String(64), nullable=False, comment="champion | challenger"),
    Column("action", String(32), nullable=False, comment="promoted | challenger | shadow_* | manual | rollback"),
    Column("from_version", String(16), nullable=True, comment="who held the alias before (none: nobody)"),
    Column("to_version", String(16), nullable=True, comment="who holds it after (none: alias removed)"),
    Column("actor", String(250), nullable=False, comment="Airflow run id, cli:<user> or ui:<user>"),
    Column("policy", String(16), nullable=True, comment="immediate | shadow"),
    Column("candidate_score", Float, nullable=True),
    Column("champion_score", Float, nullable=True),
    Column("reason", Text, nullable=True, comment="why, with the figures the decision used"),
)

# What inference workers measured while shadow-scoring the challenger:
# each worker appends its counts every few seconds, the promotion decision
# sums them per challenger version.
shadow_tallies = Table(
    "shadow_tallies",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("flushed_at", DateTime(timezone=False), nullable=False, comment="UTC"),
    Column("model_name", String(256), nullable=False),
    Column("champion_version", String(16), nullable=False),
    Column("challenger_version", String(16), nullable=False),
    Column("worker", String(128), nullable=False, comment="host:pid of the inference worker"),
    Column("requests", Integer, nullable=False, comment="shadowed requests in this flush"),
    Column("rows", Integer, nullable=False),
    Column("rows_agreeing", Integer, nullable=False),
    Column("latency_seconds_sum", Float, nullable=False, comment="challenger scoring time"),
    Column("latency_seconds_max", Float, nullable=False),
    Column("failures", Integer, nullable=False, comment="challenger errors (counted as disagreement)"),
)
Index("ix_shadow_tallies_challenger", shadow_tallies.c.model_name, shadow_tallies.c.challenger_version)

# How the champion of the moment did on each newly collected batch, before
# any training on those rows (covertype_monitor): one row per group, batch and
# scoring version, upserted, so a retried run rewrites its row instead of adding one.
batch_monitoring = Table(
    "batch_monitoring",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("group_number", SmallInteger, nullable=False),
    Column("batch_number", SmallInteger, nullable=False),
    Column("model_version", String(16), nullable=False, comment="the champion version that scored the rows"),
    Column("rows_scored", Integer, nullable=False),
    Column("accuracy", Float, nullable=False),
    Column("macro_f1", Float, nullable=False),
    Column("recall_per_class", JSON, nullable=False, comment='{"0": recall, ...} for the classes present'),
    Column("drift_share", Float, nullable=True, comment="share of feature columns that drifted; null: not measured"),
    Column("drifted_columns", JSON, nullable=True),
    Column("report_uri", String(1024), nullable=True, comment="the drift report in MLflow"),
    Column("scored_at", DateTime(timezone=False), nullable=False, comment="UTC"),
    Column("max_raw_id", BigInteger, nullable=False, comment="highest raw_rows.id scored (the monitor's watermark)"),
    Column("monitoring_run_id", String(64), nullable=True, comment="MLflow run holding the report"),
    Column("drift_seconds", Float, nullable=True, comment="time the drift computation took"),
    Column("detail", Text, nullable=True, comment="why drift is missing, when it is"),
    UniqueConstraint("group_number", "batch_number", "model_version", name="uq_batch_monitoring_batch_version"),
)
