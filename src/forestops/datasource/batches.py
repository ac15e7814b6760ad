"""Each group's progress through the batches, kept on disk.

The served rows are cut into ``batch_count`` contiguous batches.  A group's
first ``/data`` call starts batch 1; for ``batch_seconds`` from then, every
call gets a fresh random portion of that batch; the first call after the
window moves the group to the next batch and restarts the window there.
After the last batch's window the group is finished until it is restarted.

The state changes only at those moments, and each change is written to
``<state dir>/group-<N>.json`` (temporary file, fsync, rename) before the
answer goes out, so a killed process comes back exactly where it was and a
crash can never replay batches.  Times are wall-clock (they must survive a
restart); the clock is injectable for tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from forestops.errors import ConfigurationError, DataError
from forestops.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class InvalidGroup(ConfigurationError, ValueError):
    """A group number outside 1..group_count (a client mistake: HTTP 400)."""


class AllBatchesServed(DataError):
    """The group's last batch window is over (HTTP 400, as the course's API answers)."""


class StateError(ConfigurationError):
    """A state file or directory that cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class GroupState:
    batch_number: int | None = None  # None: no call since the start or the last restart
    batch_started_at: float | None = None  # epoch seconds of the call that started the batch
    finished: bool = False


@dataclass(frozen=True)
class Portion:
    group_number: int
    batch_number: int
    indices: list[int]  # positions in the served rows, all inside the batch


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _write_atomically(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so that readers see the old or the new file, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def exclusive_state_dir(state_dir: Path) -> Iterator[Path]:
    """Hold the state directory for this process: two services on one state would overwrite each other.

    The lock is an ``flock`` that the kernel drops when the process dies, so
    a killed service never blocks its successor.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(
                f"{state_dir} is in use by another data API process; stop it or set FORESTOPS_STATE_DIR"
            ) from None
        yield state_dir


class BatchSchedule:
    """The batch state machine of every group, one lock around all of it."""

    def __init__(
        self,
        state_dir: Path,
        row_count: int,
        *,
        batch_count: int = 10,
        group_count: int = 10,
        batch_seconds: float = 300.0,
        portion_fraction: float = 0.1,
        clock: Clock = time.time,
        rng: np.random.Generator | None = None,
    ) -> None:
        if row_count < batch_count:
            raise ValueError(f"{row_count} rows cannot fill {batch_count} batches")
        self.state_dir = state_dir
        self.row_count = row_count
        self.batch_count = batch_count
        self.group_count = group_count
        self.batch_seconds = batch_seconds
        self.portion_fraction = portion_fraction
        self._clock = clock
        self._rng = rng or np.random.default_rng()
        self._lock = threading.Lock()
        state_dir.mkdir(parents=True, exist_ok=True)
        self._states = {group: self._load(group) for group in range(1, group_count + 1)}

    @classmethod
    def from_settings(cls, settings: Settings, row_count: int, clock: Clock = time.time) -> BatchSchedule:
        return cls(
            settings.resolved_state_dir,
            row_count,
            batch_count=settings.batch_count,
            group_count=settings.group_count,
            batch_seconds=settings.batch_seconds,
            portion_fraction=settings.portion_fraction,
            clock=clock,
        )

    # -- the batches --------------------------------------------------------
    def batch_bounds(self, batch_number: int) -> tuple[int, int]:
        """Row positions [start, stop) of a batch (1-based); sizes differ by at most one row."""
        index = batch_number - 1
        return index * self.row_count // self.batch_count, (index + 1) * self.row_count // self.batch_count

    def portion_size(self, batch_number: int) -> int:
        start, stop = self.batch_bounds(batch_number)
        return max(1, round((stop - start) * self.portion_fraction))

    # -- state on disk ------------------------------------------------------
    def state_path(self, group: int) -> Path:
        return self.state_dir / f"group-{group}.json"

    def _load(self, group: int) -> GroupState:
        path = self.state_path(group)
        if not path.exists():
            return GroupState()
        try:
            stored = json.loads(path.read_text())
            number = stored["batch_number"]
            started = stored["batch_started_at"]
            finished = stored["finished"]
            if number is None:
                return GroupState()
            if not isinstance(number, int) or number < 1 or not isinstance(finished, bool):
                raise ValueError("batch_number must be a positive integer and finished a boolean")
            state = GroupState(number, datetime.fromisoformat(started).timestamp(), finished)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StateError(
                f"{path}: not a valid group state ({error}); delete the file to start group {group} again"
            ) from None
        if number > self.batch_count:
            log.warning("group %d was at batch %d of %d; it is finished", group, number, self.batch_count)
            state = GroupState(self.batch_count, state.batch_started_at, True)
        log.info("group %d continues at batch %s (finished: %s)", group, state.batch_number, state.finished)
        return state

    def _save(self, group: int, state: GroupState) -> None:
        payload = {
            "group_number": group,
            "batch_number": state.batch_number,
            "batch_started_at": _iso(state.batch_started_at),
            "finished": state.finished,
        }
        _write_atomically(self.state_path(group), json.dumps(payload, indent=1).encode())
        self._states[group] = state

    # -- what the endpoints call ----------------------------------------------
    def check_group(self, group: int) -> None:
        if not 1 <= group <= self.group_count:
            raise InvalidGroup(f"group_number must be an integer from 1 to {self.group_count}, got {group}")

    def _all_served(self, group: int) -> AllBatchesServed:
        return AllBatchesServed(
            f"All {self.batch_count} batches of group {group} have been served; "
            f"call /restart_data_generation?group_number={group} to start again"
        )

    def next_portion(self, group: int) -> Portion:
        """A random portion of the group's current batch, moving to the next batch when the window is over."""
        self.check_group(group)
        with self._lock:
            state = self._states[group]
            now = self._clock()
            if state.finished:
                raise self._all_served(group)
            if state.batch_number is None or state.batch_started_at is None:
                self._save(group, GroupState(1, now))
            elif now - state.batch_started_at >= self.batch_seconds:
                if state.batch_number >= self.batch_count:
                    self._save(group, GroupState(state.batch_number, state.batch_started_at, finished=True))
                    raise self._all_served(group)
                self._save(group, GroupState(state.batch_number + 1, now))
                log.info("group %d moves to batch %d", group, state.batch_number + 1)
            batch_number = self._states[group].batch_number
            assert batch_number is not None
            start, stop = self.batch_bounds(batch_number)
            chosen = self._rng.choice(stop - start, self.portion_size(batch_number), replace=False)
        indices = (chosen + start).tolist()
        return Portion(group, batch_number, indices)

    def restart(self, group: int) -> None:
        """Forget the group's progress: its next call starts batch 1 again."""
        self.check_group(group)
        with self._lock:
            self._save(group, GroupState())
        log.info("group %d restarted", group)

    def status(self, group: int) -> dict[str, Any]:
        """Where the group is, read-only: the next ``/data`` call is the one that moves it."""
        self.check_group(group)
        with self._lock:
            state = self._states[group]
            now = self._clock()
        number = state.batch_number
        window_end = None if state.batch_started_at is None else state.batch_started_at + self.batch_seconds
        window_over = window_end is not None and now >= window_end
        last = number == self.batch_count
        has_next = number is not None and not last and not state.finished
        start, stop = self.batch_bounds(number or 1)
        return {
            "group_number": group,
            "batch_number": number,
            "batch_count": self.batch_count,
            "batches_remaining": 0 if state.finished else self.batch_count - (number or 0),
            "finished": state.finished or (last and window_over),
            "batch_started_at": _iso(state.batch_started_at),
            "window_ends_at": _iso(window_end),
            "next_batch_at": _iso(window_end) if has_next else None,
            "seconds_to_next_batch": round(max(0.0, window_end - now), 3)
            if has_next and window_end is not None
            else None,
            "batch_seconds": self.batch_seconds,
            "rows_per_batch": stop - start,
            "portion_size": self.portion_size(number or 1),
        }
