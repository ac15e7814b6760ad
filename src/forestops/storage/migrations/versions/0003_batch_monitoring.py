"""batch_monitoring: how the serving champion did on each newly collected batch.

One row per (group, batch, scoring version), unique, so the monitor's retries
upsert instead of adding rows.  ``max_raw_id`` is the monitor's watermark:
the next run looks only at batches with rows above it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "batch_monitoring",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("group_number", sa.SmallInteger(), nullable=False),
        sa.Column("batch_number", sa.SmallInteger(), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False, comment="the champion version that scored the rows"),
        sa.Column("rows_scored", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("macro_f1", sa.Float(), nullable=False),
        sa.Column("recall_per_class", sa.JSON(), nullable=False, comment='{"0": recall, ...} for the classes present'),
        sa.Column(
            "drift_share",
            sa.Float(),
            nullable=True,
            comment="share of feature columns that drifted; null: not measured",
        ),
        sa.Column("drifted_columns", sa.JSON(), nullable=True),
        sa.Column("report_uri", sa.String(1024), nullable=True, comment="the drift report in MLflow"),
        sa.Column("scored_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column(
            "max_raw_id",
            sa.BigInteger(),
            nullable=False,
            comment="highest raw_rows.id scored (the monitor's watermark)",
        ),
        sa.Column("monitoring_run_id", sa.String(64), nullable=True, comment="MLflow run holding the report"),
        sa.Column("drift_seconds", sa.Float(), nullable=True, comment="time the drift computation took"),
        sa.Column("detail", sa.Text(), nullable=True, comment="why drift is missing, when it is"),
        sa.UniqueConstraint("group_number", "batch_number", "model_version", name="uq_batch_monitoring_batch_version"),
    )


def downgrade() -> None:
    op.drop_table("batch_monitoring")
