"""Monitoring tests reuse the training fixtures: a fresh database, test rows, settings per test."""

from tests.training.conftest import settings_for, training_rows  # noqa: F401  (fixtures)
