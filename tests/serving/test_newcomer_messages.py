"""/predict's 422 wording for the two mistakes a newcomer makes first."""

import json

import pytest
from fastapi.exceptions import RequestValidationError

from forestops import schema
from forestops.serving import validation_errors
from forestops.serving.predict_route import parse_request

pytestmark = pytest.mark.unit


def _messages(body: object) -> list[str]:
    with pytest.raises(RequestValidationError) as refused:
        parse_request(json.dumps(body).encode())
    return [item["message"] for item in validation_errors.describe(refused.value.errors())]


def test_a_row_with_its_label_says_drop_cover_type():
    [message] = _messages({"instances": [{**schema.example_features(), schema.LABEL: 2}]})
    assert message.startswith("instances[0].Cover_Type:") and "drop Cover_Type from each instance" in message


def test_a_bare_list_is_told_that_the_list_goes_inside_instances():
    [message] = _messages([schema.example_features()])
    assert 'a JSON object {"instances": [...]} whose "instances" is a list of' in message
