"""The UI's upload limit is sized for its row limit, not Streamlit's 200 MB default."""

from __future__ import annotations

import pytest

from forestops.settings import load_settings
from forestops.ui.server import streamlit_argv

pytestmark = pytest.mark.unit


def _option(argv: list[str], name: str) -> str:
    assert name in argv, argv
    return argv[argv.index(name) + 1]


def test_upload_limit_defaults_to_what_the_row_limit_needs():
    assert _option(streamlit_argv(load_settings()), "--server.maxUploadSize") == "16"


def test_upload_limit_follows_the_setting():
    argv = streamlit_argv(load_settings(ui_max_upload_mb=3))
    assert _option(argv, "--server.maxUploadSize") == "3"
