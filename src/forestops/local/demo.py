"""Settings of ``make demo``: short windows so one cycle fits in minutes.

With 10 batches of ``BATCH_SECONDS`` each, the collection cycle takes about
10 x 40 s = 7 minutes; the ingest DAG calls the data API every
``INGEST_EVERY`` seconds, so each batch is asked for about 40 / 5 = 8 times;
each answer is a random 10% portion of the batch, so about 1 - 0.9**8 = 57%
of a batch's distinct rows get stored.  Values already in the environment
win, so a user can stretch or shrink any of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEMO_DEFAULTS: dict[str, str] = {
    "FORESTOPS_BATCH_SECONDS": "40",
    "FORESTOPS_INGEST_EVERY": "5",
    "FORESTOPS_SEARCH_SECONDS": "30",
    "FORESTOPS_MODEL_POLL_SECONDS": "5",
}


def demo_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The demo defaults that the environment does not already set."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in DEMO_DEFAULTS.items() if name not in environ}


def expected_calls_per_batch(batch_seconds: float, ingest_every: float) -> float:
    """How often the ingest DAG asks for one batch (before Airflow's own overhead)."""
    return batch_seconds / ingest_every


def expected_coverage(calls: float, portion_fraction: float) -> float:
    """Expected share of a batch's distinct rows seen after ``calls`` random portions."""
    return 1.0 - (1.0 - portion_fraction) ** calls
