"""Where the batcher runs a model call: small batches of a compiled forest on the event loop, the rest in a thread.

A predictor records the thread of each call; a slow one must not hold up
the event loop, which keeps ticking while it works.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from forestops import schema
from forestops.serving.batching import Batcher
from forestops.serving.champion import ChampionHolder, ServedModel
from forestops.serving.predictors import INLINE_FOREST_ROWS, RowBlock

pytestmark = pytest.mark.unit


class Recording:
    kind = "recording"

    def __init__(self, inline_rows: int, seconds: float = 0.0) -> None:
        self.inline_rows = inline_rows
        self.seconds = seconds
        self.threads: list[tuple[int, int]] = []  # (rows, thread id) per call

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        self.threads.append((len(rows), threading.get_ident()))
        time.sleep(self.seconds)
        return np.full((len(rows), schema.N_CLASSES), 1 / schema.N_CLASSES)


def _rows(n: int) -> RowBlock:
    return RowBlock(np.zeros((n, len(schema.NUMERIC_COLUMNS)), np.int64), np.zeros((n, 2), np.int16))


def _holder(predictor: Recording) -> ChampionHolder:
    model = ServedModel("m", "1", None, {}, datetime.now(UTC), object(), np.arange(schema.N_CLASSES), predictor)
    return ChampionHolder(name="m", current=model)


def test_small_batches_of_a_forest_run_on_the_loop_and_big_ones_in_a_thread():
    predictor = Recording(inline_rows=INLINE_FOREST_ROWS)

    async def scenario() -> int:
        batcher = Batcher(_holder(predictor))
        batcher.start()
        try:
            await batcher.predict(_rows(1))
            await batcher.predict(_rows(INLINE_FOREST_ROWS))
            await batcher.predict(_rows(INLINE_FOREST_ROWS + 1))
        finally:
            await batcher.stop()
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert [(rows, thread == loop_thread) for rows, thread in predictor.threads] == [
        (1, True),
        (INLINE_FOREST_ROWS, True),
        (INLINE_FOREST_ROWS + 1, False),
    ]


def test_a_slow_predictor_runs_in_a_thread_and_the_loop_keeps_answering():
    predictor = Recording(inline_rows=0, seconds=0.5)

    async def scenario() -> tuple[int, int]:
        batcher = Batcher(_holder(predictor))
        batcher.start()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            answer = await batcher.predict(_rows(1))
        finally:
            ticker.cancel()
            await batcher.stop()
        assert answer.probabilities.shape == (1, schema.N_CLASSES)
        return threading.get_ident(), ticks

    loop_thread, ticks = asyncio.run(scenario())
    [(_, thread)] = predictor.threads
    assert thread != loop_thread
    assert ticks >= 3  # during 0.5 s of model call the loop went on (blocked, it would not tick at all)
