"""The batcher's model calls: small batches overlap (one per CPU slot), a big block runs alone.

The served model is a real LightGBM pipeline through its real fast
predictor; a wrapper around that predictor records which calls were in
flight together (the point of the test is the scheduling, not the trees).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import numpy as np
import pytest

from forestops import schema
from forestops.serving.batching import Batcher
from forestops.serving.champion import ChampionHolder, ServedModel
from forestops.serving.predictors import PARALLEL_FROM_ROWS, RowBlock, build_predictor
from forestops.training.candidates import build_pipeline, fit_pipeline
from tests.support.data import sample_rows

pytestmark = pytest.mark.unit


class Recording:
    """The real predictor, plus which calls overlapped; the first call waits for a second to start."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.kind = predictor.kind
        self.lock = threading.Lock()
        self.in_flight: list[int] = []
        self.overlaps: list[tuple[int, tuple[int, ...]]] = []  # (rows of a call, rows of the calls running then)
        self.second_started = threading.Event()

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        with self.lock:
            self.overlaps.append((len(rows), tuple(self.in_flight)))
            self.in_flight.append(len(rows))
            calls = len(self.overlaps)
        if calls == 2:
            self.second_started.set()
        try:
            if calls == 1:
                self.second_started.wait(timeout=10)  # without overlap this times out and the test fails below
            return self.predictor.predict_proba(rows)
        finally:
            with self.lock:
                self.in_flight.remove(len(rows))


@pytest.fixture(scope="module")
def served() -> tuple[ServedModel, Recording, RowBlock]:
    rows = [schema.normalise_raw_row(r) for r in sample_rows(2_000)]
    features = schema.feature_frame(rows)
    pipeline = fit_pipeline(
        build_pipeline("lightgbm", {"n_estimators": 20, "num_leaves": 15}), features, [r[schema.LABEL] for r in rows]
    )
    recording = Recording(build_predictor(pipeline).predictor)
    model = ServedModel(
        name="m",
        version="1",
        run_id=None,
        metrics={},
        loaded_at=datetime.now(UTC),
        estimator=pipeline,
        class_ids=np.asarray(pipeline.classes_, dtype=int),
        predictor=recording,
    )
    return model, recording, RowBlock.from_frame(features)


def test_small_batches_overlap_and_a_big_block_runs_alone(served):
    model, recording, block = served

    def rows(start: int, n: int) -> RowBlock:
        return RowBlock(block.numbers[start : start + n], block.codes[start : start + n])

    async def scenario() -> list:
        batcher = Batcher(ChampionHolder("m", current=model), max_calls=2)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.predict(rows(0, 1)))
            await asyncio.sleep(0.05)  # the first call is running (and waiting for a second one)
            second = asyncio.ensure_future(batcher.predict(rows(1, 1)))
            answers = await asyncio.gather(first, second)
            big = asyncio.ensure_future(batcher.predict(rows(2, PARALLEL_FROM_ROWS)))
            await asyncio.sleep(0)
            small = [asyncio.ensure_future(batcher.predict(rows(200 + i, 1))) for i in range(3)]
            answers += await asyncio.gather(big, *small)
            return answers
        finally:
            await batcher.stop()

    answers = asyncio.run(scenario())
    calls = recording.overlaps
    assert calls[:2] == [(1, ()), (1, (1,))], calls  # the second started while the first ran
    assert (PARALLEL_FROM_ROWS, ()) in calls, calls  # the big block started alone ...
    assert all(PARALLEL_FROM_ROWS not in running for _, running in calls), calls  # ... and nothing joined it
    # Each request got its own rows' answers, equal to predicting them alone.
    expected = [rows(0, 1), rows(1, 1), rows(2, PARALLEL_FROM_ROWS), *(rows(200 + i, 1) for i in range(3))]
    for answer, block_ in zip(answers, expected, strict=True):
        want_ids, want_proba = model.predict(block_)
        np.testing.assert_array_equal(answer.class_ids, want_ids)
        np.testing.assert_array_equal(answer.probabilities, want_proba)
