"""The batch state machine, driven by a fake clock, with its state on a real disk."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from forestops.datasource.batches import (
    AllBatchesServed,
    BatchSchedule,
    InvalidGroup,
    StateError,
    exclusive_state_dir,
)

pytestmark = pytest.mark.unit

ROWS = 1000  # 10 batches of 100 rows, portions of 10


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_schedule(state_dir: Path, clock: FakeClock, **options) -> BatchSchedule:
    return BatchSchedule(state_dir, ROWS, batch_seconds=60, clock=clock, **options)


def test_first_call_starts_batch_one_with_a_portion_inside_it(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock)
    portion = schedule.next_portion(3)
    assert (portion.group_number, portion.batch_number) == (3, 1)
    assert len(portion.indices) == 10 == len(set(portion.indices))
    assert all(0 <= index < 100 for index in portion.indices)


def test_batches_are_contiguous_slices_covering_every_row_once(tmp_path, clock):
    schedule = BatchSchedule(tmp_path, 1003, batch_count=10, clock=clock)
    bounds = [schedule.batch_bounds(b) for b in range(1, 11)]
    assert bounds[0][0] == 0 and bounds[-1][1] == 1003
    assert all(stop == next_start for (_, stop), (next_start, _) in itertools.pairwise(bounds))
    assert {stop - start for start, stop in bounds} <= {100, 101}


def test_portions_of_one_batch_differ_and_stay_in_the_batch(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock)
    portions = [schedule.next_portion(1) for _ in range(5)]
    clock.advance(59.9)
    portions.append(schedule.next_portion(1))
    assert {p.batch_number for p in portions} == {1}
    assert len({tuple(sorted(p.indices)) for p in portions}) == len(portions)
    assert all(0 <= i < 100 for p in portions for i in p.indices)


def test_the_batch_moves_at_the_end_of_the_window_not_before(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock)
    schedule.next_portion(1)
    clock.advance(59.999)
    assert schedule.next_portion(1).batch_number == 1
    clock.advance(0.001)
    second = schedule.next_portion(1)
    assert second.batch_number == 2
    assert all(100 <= i < 200 for i in second.indices)
    # The window restarts with the call that moved the batch.
    clock.advance(59.0)
    assert schedule.next_portion(1).batch_number == 2


def test_a_long_pause_moves_one_batch_only(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock)
    schedule.next_portion(1)
    clock.advance(3600)
    assert schedule.next_portion(1).batch_number == 2


def walk_to_last_batch(schedule: BatchSchedule, clock: FakeClock, group: int) -> None:
    for expected in range(1, schedule.batch_count + 1):
        assert schedule.next_portion(group).batch_number == expected
        clock.advance(schedule.batch_seconds)


def test_after_the_last_window_the_group_is_finished_until_restarted(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock)
    walk_to_last_batch(schedule, clock, 2)
    with pytest.raises(AllBatchesServed) as raised:
        schedule.next_portion(2)
    assert str(raised.value) == (
        "All 10 batches of group 2 have been served; call /restart_data_generation?group_number=2 to start again"
    )
    clock.advance(10_000)
    with pytest.raises(AllBatchesServed):
        schedule.next_portion(2)
    status = schedule.status(2)
    assert status["finished"] is True and status["batches_remaining"] == 0

    schedule.restart(2)
    assert schedule.status(2)["batch_number"] is None
    assert schedule.next_portion(2).batch_number == 1


def test_groups_do_not_disturb_each_other(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock)
    schedule.next_portion(1)
    clock.advance(60)
    assert schedule.next_portion(1).batch_number == 2
    assert schedule.next_portion(2).batch_number == 1
    schedule.restart(2)
    assert schedule.status(1)["batch_number"] == 2
    assert schedule.status(5)["batch_number"] is None


def test_invalid_groups_are_refused_with_the_allowed_range(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock)
    for group in (0, 11, -1):
        for call in (schedule.next_portion, schedule.restart, schedule.status):
            with pytest.raises(InvalidGroup, match=rf"^group_number must be an integer from 1 to 10, got {group}$"):
                call(group)


def test_status_says_where_the_group_is_and_when_it_moves(tmp_path, clock):
    schedule = make_schedule(tmp_path, clock, portion_fraction=0.25)
    before = schedule.status(4)
    assert before["batch_number"] is None and before["batch_started_at"] is None
    assert before["batches_remaining"] == 10 and before["finished"] is False
    assert before["rows_per_batch"] == 100 and before["portion_size"] == 25

    schedule.next_portion(4)
    clock.advance(20)
    status = schedule.status(4)
    assert status["batch_number"] == 1 and status["batches_remaining"] == 9
    assert status["seconds_to_next_batch"] == pytest.approx(40)
    assert status["batch_started_at"].endswith("+00:00")
    assert status["next_batch_at"] == status["window_ends_at"]
    clock.advance(100)
    assert schedule.status(4)["batch_number"] == 1, "reading the status must not move the batch"
    assert schedule.status(4)["seconds_to_next_batch"] == 0

    walk_to_last_batch(schedule, clock, 6)
    clock.advance(-1)
    last = schedule.status(6)
    assert last["batch_number"] == 10 and last["next_batch_at"] is None and last["finished"] is False
    clock.advance(1)
    assert schedule.status(6)["finished"] is True


def test_a_new_schedule_on_the_same_directory_continues_where_the_old_one_was(tmp_path, clock):
    first = make_schedule(tmp_path, clock)
    walk_to_last_batch(first, clock, 2)
    with pytest.raises(AllBatchesServed):
        first.next_portion(2)
    first.next_portion(1)
    clock.advance(60)
    first.next_portion(1)
    clock.advance(5)

    second = make_schedule(tmp_path, clock)
    assert second.status(1) == first.status(1)
    assert second.next_portion(1).batch_number == 2
    with pytest.raises(AllBatchesServed):
        second.next_portion(2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["group-1.json", "group-2.json"], "no temporary files left"
    stored = json.loads((tmp_path / "group-1.json").read_text())
    assert stored["batch_number"] == 2 and stored["finished"] is False


def test_fewer_batches_than_stored_means_finished(tmp_path, clock):
    walk_to_last_batch(make_schedule(tmp_path, clock), clock, 1)
    smaller = make_schedule(tmp_path, clock, batch_count=5)
    with pytest.raises(AllBatchesServed, match="All 5 batches of group 1"):
        smaller.next_portion(1)


def test_a_damaged_state_file_is_named_with_what_to_do(tmp_path, clock):
    (tmp_path / "group-3.json").write_text('{"batch_number": "two"')
    with pytest.raises(StateError, match=r"group-3\.json: not a valid group state .*delete the file"):
        make_schedule(tmp_path, clock)


def test_a_state_directory_serves_one_process_at_a_time(tmp_path):
    # flock locks belong to the open file, so a second open in this process conflicts too.
    with (
        exclusive_state_dir(tmp_path),
        pytest.raises(StateError, match="in use by another data API process"),
        exclusive_state_dir(tmp_path),
    ):
        pass
    with exclusive_state_dir(tmp_path):
        pass
