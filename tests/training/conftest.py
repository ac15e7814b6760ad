"""Fixtures for training tests: a fresh covertype database with rows, and settings.

Each test gets its own database and its own registered model / experiment
name on the session's real MLflow server, so tests never see each other's
versions or aliases.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from forestops import schema
from forestops.settings import Settings, load_settings
from forestops.storage import tables
from forestops.storage.db import ensure_schema, make_engine
from tests.support import data
from tests.support.processes import settings_env

# Small and quick: the search gets a token budget, HistGradientBoosting (the
# slowest fit) is covered by the unit tests instead.
TEST_CANDIDATES = "lightgbm,random_forest,baseline"


def insert_raw_rows(url: str, raw: Sequence[Sequence[str]], batch_number: int = 1) -> int:
    """Store raw rows the way ingestion does (normalised, hashed, one fetch); returns the count stored."""
    engine = make_engine(url)
    ensure_schema(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    records = []
    seen: set[str] = set()
    for values in raw:
        row = schema.normalise_raw_row(values)
        digest = schema.row_digest(row)
        if digest in seen:
            continue
        seen.add(digest)
        records.append({**row, "row_hash": digest, "group_number": 1, "batch_number": batch_number})
    with engine.begin() as connection:
        fetch_id = connection.execute(
            tables.fetch_log.insert().values(
                started_at=now, source_url="test", group_number=1, batch_number=batch_number, status="stored"
            )
        ).inserted_primary_key[0]
        connection.execute(tables.raw_rows.insert(), [{**r, "fetch_id": fetch_id, "fetched_at": now} for r in records])
    engine.dispose()
    return len(records)


@pytest.fixture(scope="session")
def training_rows() -> list[list[str]]:
    """3,000 raw rows (real when ../shared is present), spread over three batches."""
    return data.sample_rows(3000)


@pytest.fixture
def stocked_database(fresh_database_url: str, training_rows) -> str:
    for batch in range(3):
        insert_raw_rows(fresh_database_url, training_rows[batch::3], batch_number=batch + 1)
    return fresh_database_url


@pytest.fixture
def settings_for(mlflow_server, tmp_path: Path) -> Callable[..., Settings]:
    """Settings pointing at a database, the session's MLflow server and a unique model name."""

    def make(database_url: str, **overrides) -> Settings:
        name = f"covertype_{uuid.uuid4().hex[:8]}"
        values = {
            "home": tmp_path / "home",
            "database_url": database_url,
            "mlflow_tracking_uri": mlflow_server.url,
            "model_name": name,
            "experiment_name": name,
            "search_seconds": 2.0,
            "training_candidates": TEST_CANDIDATES,
            **overrides,
        }
        return load_settings(**values)

    return make


# What a training child process (the CLI, a DAG run) needs of a test's settings.
CHILD_SETTINGS = (
    "home",
    "database_url",
    "mlflow_tracking_uri",
    "model_name",
    "experiment_name",
    "search_seconds",
    "training_candidates",
)


def env_of(settings: Settings) -> dict[str, str]:
    """The FORESTOPS_* environment that reproduces ``settings`` in a child process."""
    return settings_env(settings, CHILD_SETTINGS)


def training_log(url: str) -> list[sa.Row]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(tables.training_log).order_by(tables.training_log.c.id)).all()
    engine.dispose()
    return rows
