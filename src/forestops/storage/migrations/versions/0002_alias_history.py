"""Append-only history of registry alias moves, and the shadow scoring tallies.

``alias_history`` gets one row per alias change; on SQLite two triggers
refuse UPDATE and DELETE (on MySQL the application user simply has no
UPDATE/DELETE grant on it).  ``shadow_tallies`` holds what each inference
worker measured while shadow-scoring the challenger, appended in small
flushes so several workers never write the same row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alias_history",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False, comment="champion | challenger"),
        sa.Column(
            "action", sa.String(32), nullable=False, comment="promoted | challenger | shadow_* | manual | rollback"
        ),
        sa.Column("from_version", sa.String(16), nullable=True, comment="who held the alias before (none: nobody)"),
        sa.Column("to_version", sa.String(16), nullable=True, comment="who holds it after (none: alias removed)"),
        sa.Column("actor", sa.String(250), nullable=False, comment="Airflow run id, cli:<user> or ui:<user>"),
        sa.Column("policy", sa.String(16), nullable=True, comment="immediate | shadow"),
        sa.Column("candidate_score", sa.Float(), nullable=True),
        sa.Column("champion_score", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True, comment="why, with the figures the decision used"),
    )
    op.create_index("ix_alias_history_model_name", "alias_history", ["model_name"])
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER alias_history_no_{event.lower()} BEFORE {event} ON alias_history "
                "BEGIN SELECT RAISE(ABORT, 'alias_history is append-only'); END"
            )
    op.create_table(
        "shadow_tallies",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("flushed_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("champion_version", sa.String(16), nullable=False),
        sa.Column("challenger_version", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(128), nullable=False, comment="host:pid of the inference worker"),
        sa.Column("requests", sa.Integer(), nullable=False, comment="shadowed requests in this flush"),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("rows_agreeing", sa.Integer(), nullable=False),
        sa.Column("latency_seconds_sum", sa.Float(), nullable=False, comment="challenger scoring time"),
        sa.Column("latency_seconds_max", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, comment="challenger errors (counted as disagreement)"),
    )
    op.create_index("ix_shadow_tallies_challenger", "shadow_tallies", ["model_name", "challenger_version"])


def downgrade() -> None:
    op.drop_index("ix_shadow_tallies_challenger", "shadow_tallies")
    op.drop_table("shadow_tallies")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS alias_history_no_update")
        op.execute("DROP TRIGGER IF EXISTS alias_history_no_delete")
    op.drop_index("ix_alias_history_model_name", "alias_history")
    op.drop_table("alias_history")
