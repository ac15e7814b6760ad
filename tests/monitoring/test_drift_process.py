"""Drift is measured from any main program, including one that must not be imported twice (Airflow's)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Like Airflow's `airflow` command inside a task process: importing it again (as a spawn or fork-server
# child does with its parent's main script) fails, because the task has no metadata-database URL.
MAIN = """
if __name__ != "__main__":
    raise SystemExit("the main script was imported again by a child process")
from forestops.monitoring import drift
from tests.monitoring.support import shifted
from testkit.data import sample_rows
import pandas as pd
from forestops import schema

def frame(rows):
    return pd.DataFrame([schema.normalise_raw_row(r) for r in rows])

rows = sample_rows(2000)
result = drift.measure(frame(rows[:1000]), frame(shifted(rows[1000:])), budget_seconds=240)
print(f"DRIFT {result.share:.2f} {','.join(result.drifted_columns)} {len(result.html)}")
"""


def test_drift_is_measured_from_a_main_script_that_cannot_be_imported_twice(tmp_path):
    script = tmp_path / "airflow_like_main.py"
    script.write_text(MAIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("DRIFT "))
    _, share, columns, html_size = line.split(" ")
    assert float(share) > 0 and columns, line  # the shifted half drifted, named by column
    assert int(html_size) > 10_000  # with its report
