"""How the models table shows a version's promotion tags."""

import pytest

from forestops.ui.clients.mlflow_registry import NO_PREVIOUS_CHAMPION, promotion_cells

pytestmark = pytest.mark.unit


def test_promotion_cells_name_the_missing_champion_only_for_decided_versions():
    first = {"decision": "champion", "candidate_score": "0.9", "primary_metric": "f1_macro"}
    assert promotion_cells(first)["champion_score"] == NO_PREVIOUS_CHAMPION
    assert promotion_cells({**first, "champion_score": ""})["champion_score"] == NO_PREVIOUS_CHAMPION  # older runs
    assert promotion_cells({**first, "champion_score": "0.8"})["champion_score"] == "0.8"
    # Promoted by hand (or tagged by someone else): no decision by score, nothing to say.
    assert promotion_cells({"decision": "promoted_by_hand"}) == dict.fromkeys(
        ("decision", "candidate_score", "champion_score", "primary_metric"), None
    ) | {"decision": "promoted_by_hand"}
