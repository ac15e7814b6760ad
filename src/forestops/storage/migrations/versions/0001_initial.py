"""The initial covertype schema: raw rows, rejected rows, fetch log, training log.

The feature columns come from ``forestops.schema`` rather than being listed
here, because the data contract is the one place that names them; a change
of contract columns needs a new revision that alters ``raw_rows`` too.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from forestops import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Payload = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "fetch_log",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("source_url", sa.String(512), nullable=False),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("batch_number", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, comment="stored | complete | error"),
        sa.Column("rows_received", sa.Integer(), nullable=False),
        sa.Column("rows_new", sa.Integer(), nullable=False),
        sa.Column("rows_duplicate", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "detail", sa.Text(), nullable=True, comment="what happened beyond the counts (e.g. collection restarted)"
        ),
        sa.Column("run_id", sa.String(250), nullable=True, comment="Airflow run id, when run by Airflow"),
    )
    op.create_index("ix_fetch_log_run_id", "fetch_log", ["run_id"])
    op.create_table(
        "raw_rows",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("row_hash", sa.String(64), nullable=False, unique=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in schema.NUMERIC_COLUMNS),
        sa.Column(schema.WILDERNESS_AREA, sa.String(16), nullable=False),
        sa.Column(schema.SOIL_TYPE, sa.String(8), nullable=False),
        sa.Column(schema.LABEL, sa.SmallInteger(), nullable=False),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("batch_number", sa.SmallInteger(), nullable=False),
        sa.Column("fetch_id", _Id, sa.ForeignKey("fetch_log.id"), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_raw_rows_fetch_id", "raw_rows", ["fetch_id"])
    op.create_table(
        "rejected_rows",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("payload_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("payload", _Payload, nullable=False, comment="the row (or response) exactly as received"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("batch_number", sa.SmallInteger(), nullable=True),
        sa.Column("fetch_id", _Id, sa.ForeignKey("fetch_log.id"), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "training_log",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, comment="skipped | trained | failed"),
        sa.Column("rows_used", sa.Integer(), nullable=False),
        sa.Column("max_raw_id", sa.BigInteger(), nullable=True, comment="highest raw_rows.id seen by this training"),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(16), nullable=True),
        sa.Column("decision", sa.String(32), nullable=True, comment="champion | challenger | none"),
        sa.Column("primary_metric", sa.Float(), nullable=True),
        sa.Column("champion_metric", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(250), nullable=True, comment="Airflow run id"),
    )


def downgrade() -> None:
    op.drop_table("training_log")
    op.drop_table("rejected_rows")
    op.drop_table("raw_rows")
    op.drop_table("fetch_log")
