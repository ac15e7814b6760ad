"""Where the batcher runs the model: a lone one-row request on the event loop, everything else in a worker thread.

The thread hop cost as much CPU as the rest of a single-row request, so a
lone row with a compiled predictor is answered on the loop; concurrent
requests still share one call in a worker thread, big requests and slow
predictors (the pipeline) never block the loop.  Answers are the same
either way (checked against direct prediction).
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
from forestops.serving.predictors import LIGHTGBM_BOOSTER, PIPELINE, RowBlock

pytestmark = pytest.mark.unit


class RecordingPredictor:
    """Probabilities from the rows' numbers; remembers the thread and the size of every call."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls: list[tuple[int, int]] = []  # (thread id, rows)

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        self.calls.append((threading.get_ident(), len(rows)))
        scores = (rows.numbers[:, :7] % 10 + 1).astype(np.float64)
        return scores / scores.sum(axis=1, keepdims=True)


def _model(kind: str) -> tuple[ServedModel, RecordingPredictor]:
    predictor = RecordingPredictor(kind)
    model = ServedModel(
        name="covertype", version="1", run_id=None, metrics={}, loaded_at=datetime.now(UTC), estimator=None,
        class_ids=np.arange(schema.N_CLASSES), predictor=predictor,
    )  # fmt: skip
    return model, predictor


def _rows(n: int, seed: int) -> RowBlock:
    rng = np.random.default_rng(seed)
    numbers = rng.integers(0, 1000, size=(n, len(schema.NUMERIC_COLUMNS)), dtype=np.int64)
    return RowBlock(numbers, np.zeros((n, len(schema.CATEGORICAL_COLUMNS)), dtype=np.int16))


async def _serve(kind: str, blocks: list[RowBlock]):
    model, predictor = _model(kind)
    batcher = Batcher(ChampionHolder(name="covertype", current=model))
    batcher.start()
    try:
        answers = await asyncio.gather(*(batcher.predict(block) for block in blocks))
    finally:
        await batcher.stop()
    return model, predictor, answers


def _check_answers(model: ServedModel, blocks: list[RowBlock], answers) -> None:
    for block, answer in zip(blocks, answers, strict=True):
        class_ids, probabilities = model.predict(block)
        np.testing.assert_array_equal(answer.class_ids, class_ids)
        np.testing.assert_array_equal(answer.probabilities, probabilities)


def test_a_lone_row_is_predicted_on_the_event_loop():
    async def scenario():
        blocks = [_rows(1, 0)]
        model, predictor, answers = await _serve(LIGHTGBM_BOOSTER, blocks)
        return threading.get_ident(), model, predictor, blocks, answers

    loop_thread, model, predictor, blocks, answers = asyncio.run(scenario())
    assert predictor.calls == [(loop_thread, 1)]
    _check_answers(model, blocks, answers)


def test_concurrent_rows_share_one_call_in_a_worker_thread():
    async def scenario():
        blocks = [_rows(1, seed) for seed in range(5)]
        model, predictor, answers = await _serve(LIGHTGBM_BOOSTER, blocks)
        return threading.get_ident(), model, predictor, blocks, answers

    loop_thread, model, predictor, blocks, answers = asyncio.run(scenario())
    # All five were queued before the consumer ran: one call, off the loop.
    assert [rows for _, rows in predictor.calls] == [5]
    assert all(thread != loop_thread for thread, _ in predictor.calls)
    _check_answers(model, blocks, answers)


@pytest.mark.parametrize(("kind", "rows"), [(LIGHTGBM_BOOSTER, 200), (PIPELINE, 1)])
def test_big_requests_and_slow_predictors_stay_off_the_event_loop(kind, rows):
    async def scenario():
        blocks = [_rows(rows, 3)]
        model, predictor, answers = await _serve(kind, blocks)
        return threading.get_ident(), model, predictor, blocks, answers

    loop_thread, model, predictor, blocks, answers = asyncio.run(scenario())
    assert len(predictor.calls) == 1 and predictor.calls[0][0] != loop_thread
    _check_answers(model, blocks, answers)
