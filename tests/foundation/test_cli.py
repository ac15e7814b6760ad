"""The console script: installed, and refusing bad configuration with the variable named."""

import os
import subprocess

import pytest

from tests.support.processes import forestops_argv

pytestmark = pytest.mark.unit


def test_help_lists_the_services():
    result = subprocess.run(forestops_argv("--help"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "datasource" in result.stdout


def test_bad_setting_stops_a_service_with_the_variable_named():
    env = {**os.environ, "FORESTOPS_BATCH_SECONDS": "-3"}
    result = subprocess.run(
        forestops_argv("datasource", "--port", "1"), capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "FORESTOPS_BATCH_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr
