"""A periodic training gives way when the collection completes under it.

Trainings run one at a time.  When the last batch arrives, the training then
running was started on part of the rows; letting it finish (4-5 minutes on a
busy 2-core machine) only delays the final training on every row, which
queues behind it, and its model is replaced minutes later anyway (measured:
the champion settled 449 s after the last batch, two trainings later).  So a
training that is not itself the final one checks, between search trials,
between candidates and every few seconds inside a LightGBM fit, whether the
collection has completed with rows it did not read; if so it stops, its log
row says why, and the final training starts at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from forestops.errors import ForestopsError
from forestops.storage import tables
from forestops.training import gate

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 5.0


class Superseded(ForestopsError):
    """The collection completed during this training: the final training on every row replaces it."""


@dataclass
class SupersedeWatch:
    """Asks the database, at most every ``every_seconds``, whether a final training will replace this one."""

    engine: sa.Engine
    group_number: int | None
    max_raw_id: int | None  # the newest row this training read
    active: bool = True  # False for the final training itself (and for runs outside a collection)
    every_seconds: float = CHECK_EVERY_SECONDS
    _last_check: float = field(default=float("-inf"), init=False)

    def superseded(self) -> bool:
        if not self.active or self.group_number is None:
            return False
        now = time.monotonic()
        if now - self._last_check < self.every_seconds:
            return False
        self._last_check = now
        raw = tables.raw_rows
        with self.engine.connect() as connection:
            if not gate.collection_complete(connection, self.group_number):
                return False
            newest = connection.execute(sa.select(sa.func.max(raw.c.id))).scalar()
        return newest is not None and newest > (self.max_raw_id or 0)

    def check(self) -> None:
        """Raise ``Superseded`` when the final training is due; cheap when called often."""
        if self.superseded():
            raise Superseded(
                "superseded: the collection completed during this training; "
                "the final training on every collected row replaces it"
            )

    def lightgbm_callback(self):
        """A LightGBM callback that ends the fit (by raising) once the training is superseded."""

        def callback(_env) -> None:
            self.check()

        callback.order = 5  # any order: it only reads the database
        return callback
