"""The data API as users meet it: the real ``forestops datasource`` process over real HTTP.

Two services run for the module: a "fast" one with a 1 s batch window for
everything that must see batches change, and a "slow" one with a window far
longer than the tests, where a batch cannot change under a test's feet.
Assertions about time use the server's own timestamps from ``/status``, so
they hold however loaded the machine is.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from forestops import schema
from tests.support.data import sample_rows, write_csv
from tests.support.processes import ServiceProcess, forestops_argv, free_port, running

pytestmark = pytest.mark.integration

ROW_COUNT = 1000  # 10 batches of 100 rows; portions of 10
BATCH_ROWS = 100
PORTION = 10
ALL_SERVED_400 = (
    "All 10 batches of group {g} have been served; call /restart_data_generation?group_number={g} to start again"
)


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    return sample_rows(ROW_COUNT)


def batch_of(rows: list[list[str]], batch_number: int) -> set[tuple[str, ...]]:
    """The rows a batch must hold: the file's rows, cut into 10 contiguous slices."""
    return {tuple(row) for row in rows[(batch_number - 1) * BATCH_ROWS : batch_number * BATCH_ROWS]}


def service_env(data_path: Path, state_dir: Path, batch_seconds: float) -> dict[str, str]:
    return {
        "FORESTOPS_HOME": str(state_dir.parent),
        "FORESTOPS_DATA_PATH": str(data_path),
        "FORESTOPS_STATE_DIR": str(state_dir),
        "FORESTOPS_BATCH_SECONDS": str(batch_seconds),
        "FORESTOPS_BATCH_COUNT": "10",
        "FORESTOPS_GROUP_COUNT": "10",
        "FORESTOPS_PORTION_FRACTION": "0.1",
        "FORESTOPS_HOLDOUT_FRACTION": "0",
    }


@dataclass
class Api:
    url: str
    data_path: Path
    process: ServiceProcess

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, timeout=30)

    def data(self, group: int) -> dict:
        response = self.get("/data", group_number=group)
        assert response.status_code == 200, response.text
        return response.json()

    def status(self, group: int) -> dict:
        response = self.get("/status", group_number=group)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_next_window(self, group: int) -> None:
        """Sleep until the server's window for the group's current batch is over."""
        ends = datetime.fromisoformat(self.status(group)["window_ends_at"]).timestamp()
        time.sleep(max(0.0, ends - time.time()) + 0.05)


def start_api(tmp: Path, name: str, rows: list[list[str]], batch_seconds: float, state_dir: Path | None = None):
    data_path = tmp / f"{name}.csv.gz"
    if not data_path.exists():
        write_csv(data_path, rows)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(data_path, state_dir or tmp / f"{name}-state", batch_seconds)
    context = running(
        name, forestops_argv("datasource", "--port", str(port)), tmp / f"{name}.log", f"{url}/health", env, 120
    )
    return context, url, data_path


@pytest.fixture(scope="module")
def fast(tmp_path_factory, rows) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("fast")
    context, url, data_path = start_api(tmp, "fast", rows, batch_seconds=1.0)
    with context as process:
        yield Api(url, data_path, process)


@pytest.fixture(scope="module")
def slow(tmp_path_factory, rows) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("slow")
    context, url, data_path = start_api(tmp, "slow", rows, batch_seconds=3600.0)
    with context as process:
        yield Api(url, data_path, process)


# -- shape and content ---------------------------------------------------------------


def test_a_portion_is_rows_of_13_strings_in_header_order(slow, rows):
    answer = slow.data(1)
    assert list(answer) == ["group_number", "batch_number", "data"]
    assert (answer["group_number"], answer["batch_number"]) == (1, 1)
    assert len(answer["data"]) == PORTION
    for row in answer["data"]:
        assert len(row) == 13 and all(isinstance(value, str) for value in row)
        schema.normalise_raw_row(row)
    # Each served row is a row of the file, value for value: the header's order.
    assert {tuple(row) for row in answer["data"]} <= batch_of(rows, 1)


def test_portions_of_one_batch_differ_and_the_batch_holds_until_its_window_ends(slow, rows):
    answers = [slow.data(2) for _ in range(4)]
    assert {a["batch_number"] for a in answers} == {1}
    portions = [frozenset(map(tuple, a["data"])) for a in answers]
    assert len(set(portions)) == len(portions)
    assert set().union(*portions) <= batch_of(rows, 1)
    status = slow.status(2)
    assert status["batch_number"] == 1 and status["seconds_to_next_batch"] > 0
    assert (status["rows_per_batch"], status["portion_size"], status["batches_remaining"]) == (BATCH_ROWS, PORTION, 9)


def test_a_call_never_reads_the_file_again(slow, rows):
    moved = slow.data_path.with_suffix(".moved")
    slow.data_path.rename(moved)
    try:
        assert {tuple(r) for r in slow.data(9)["data"]} <= batch_of(rows, 1)
    finally:
        moved.rename(slow.data_path)


def test_health_reports_the_data_set(slow):
    health = slow.get("/health").json()
    assert health["status"] == "ok" and health["rows"] == ROW_COUNT and health["batch_count"] == 10


# -- bad requests --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/data", "/status", "/restart_data_generation"])
@pytest.mark.parametrize("group", [0, 11, -2])
def test_a_group_out_of_range_is_a_400_naming_the_range(slow, path, group):
    response = slow.get(path, group_number=group)
    assert response.status_code == 400
    assert response.json() == {"detail": f"group_number must be an integer from 1 to 10, got {group}"}


@pytest.mark.parametrize("params", [{}, {"group_number": "three"}, {"group_number": "1.5"}])
def test_a_missing_or_non_integer_group_is_a_422_naming_the_field(slow, params):
    response = httpx.get(f"{slow.url}/data", params=params, timeout=30)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "group_number"]


# -- batches over time ---------------------------------------------------------------


def test_batches_advance_after_each_window_then_400_then_restart(fast, rows):
    group = 1
    for batch_number in range(1, 11):
        answer = fast.data(group)
        assert answer["batch_number"] == batch_number
        assert {tuple(r) for r in answer["data"]} <= batch_of(rows, batch_number)
        fast.wait_for_next_window(group)

    finished = fast.get("/data", group_number=group)
    assert finished.status_code == 400
    assert finished.json() == {"detail": ALL_SERVED_400.format(g=group)}
    status = fast.status(group)
    assert status["finished"] is True and status["batches_remaining"] == 0 and status["next_batch_at"] is None

    restarted = fast.get("/restart_data_generation", group_number=group)
    assert restarted.status_code == 200 and restarted.json()["restarted"] is True
    assert fast.status(group)["batch_number"] is None
    assert fast.data(group)["batch_number"] == 1


def test_restart_in_the_middle_starts_again_at_batch_one(fast, rows):
    group = 8
    fast.data(group)
    fast.wait_for_next_window(group)
    assert fast.data(group)["batch_number"] == 2
    assert fast.get("/restart_data_generation", group_number=group).status_code == 200
    answer = fast.data(group)
    assert answer["batch_number"] == 1 and {tuple(r) for r in answer["data"]} <= batch_of(rows, 1)


def test_groups_do_not_disturb_each_other(fast):
    fast.data(5)
    fast.data(6)
    for _ in range(2):
        fast.wait_for_next_window(6)
        fast.data(6)
    assert fast.status(6)["batch_number"] == 3
    # Group 5's window ran out long ago, yet it moves by one batch, on its own call.
    assert fast.status(5)["batch_number"] == 1
    assert fast.data(5)["batch_number"] == 2
    assert fast.data(7)["batch_number"] == 1
    fast.get("/restart_data_generation", group_number=7)
    assert fast.status(6)["batch_number"] == 3 and fast.status(5)["batch_number"] == 2


# -- crashes and bad data ------------------------------------------------------------


def test_the_state_survives_kill_9(tmp_path, rows):
    state_dir = tmp_path / "state"
    context, url, _ = start_api(tmp_path, "crashing", rows, batch_seconds=1.0, state_dir=state_dir)
    with context as process:
        api = Api(url, tmp_path, process)
        api.data(1)
        api.wait_for_next_window(1)
        assert api.data(1)["batch_number"] == 2
        before = api.status(1)
        api.data(2)
        process.kill()
        assert process.process is not None and process.process.returncode == -9

    context, url, _ = start_api(tmp_path, "crashing", rows, batch_seconds=1.0, state_dir=state_dir)
    with context as process:
        api = Api(url, tmp_path, process)
        after = api.status(1)
        assert (after["batch_number"], after["batch_started_at"]) == (2, before["batch_started_at"])
        assert api.status(2)["batch_number"] == 1
        sent = time.time()
        answer = api.data(1)
        answered = time.time()
        window_ends = datetime.fromisoformat(before["window_ends_at"]).timestamp()
        # The server reads its clock somewhere between sending and answering.
        possible = {3} if sent >= window_ends else {2} if answered < window_ends else {2, 3}
        assert answer["batch_number"] in possible
        assert {tuple(r) for r in answer["data"]} <= batch_of(rows, answer["batch_number"])


def run_refusing(tmp_path: Path, data_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **service_env(data_path, tmp_path / "state", 1.0)}
    return subprocess.run(
        forestops_argv("datasource", "--port", str(free_port())), capture_output=True, text=True, env=env, timeout=120
    )


def test_a_corrupt_data_file_stops_the_service_naming_the_line(tmp_path, rows):
    broken = [list(row) for row in rows[:200]]
    broken[40][schema.RAW_COLUMNS.index(schema.SOIL_TYPE)] = "C1234"  # line 42: the header is line 1
    data_path = write_csv(tmp_path / "corrupt.csv.gz", broken)
    result = run_refusing(tmp_path, data_path)
    assert result.returncode == 2, result.stderr
    assert f"{data_path}, line 42, column Soil_Type: 'C1234' is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_data_file_stops_the_service_naming_the_variable(tmp_path):
    result = run_refusing(tmp_path, tmp_path / "absent.csv")
    assert result.returncode == 2
    assert "absent.csv: no such file (check FORESTOPS_DATA_PATH)" in result.stderr
