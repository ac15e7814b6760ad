"""Each training step's result survives XCom: to_xcom() is plain JSON and from_xcom() gives the same value back."""

from __future__ import annotations

import json

import pytest

from forestops.training import steps
from forestops.training.gate import GateDecision

pytestmark = pytest.mark.unit

RESULTS = [
    GateDecision(True, "first training", 1200, 1200, 1, 1200, 7, "drift alert"),
    steps.Loaded(7, "/tmp/training-7/rows.parquet", 1200, 1200, (1, 2, 3), "ab12", "drift alert"),
    steps.Checked(("class 4 has 3 rows",), "/tmp/training-7/data_report.json"),
    steps.Trained(
        "parent",
        (
            steps.TrainedCandidate("baseline", "run-a", "/tmp/training-7/baseline.skops", 1.5),
            steps.TrainedCandidate("lightgbm", "run-b", "/tmp/training-7/lightgbm.skops", 30.25),
        ),
    ),
    steps.Evaluated("lightgbm", "f1_macro", 0.9, {"baseline": {"accuracy": 0.7, "f1_macro": 0.5}}),
    steps.Registered("3", "run-b", "lightgbm"),
    steps.Promoted("3", "champion", 0.9, None, "2"),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_a_step_result_round_trips_through_json(result):
    carried = json.loads(json.dumps(result.to_xcom()))
    assert type(result).from_xcom(carried) == result


def test_a_trained_result_finds_each_candidate_by_name():
    trained = RESULTS[3]
    assert trained.candidate("lightgbm").run_id == "run-b"
    with pytest.raises(KeyError, match="no trained candidate 'random_forest'"):
        trained.candidate("random_forest")
