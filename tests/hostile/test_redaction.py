"""No secret is printed: settings errors, CLI output, logs, command lines.

Every test plants a recognisable password and looks for it in what a person
(or a log collector) would see.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from forestops.redaction import MASK, RedactingFilter, redact, redact_argv, redact_mapping, redact_value
from forestops.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit

PASSWORD = "Pl4ntedS3cret"


@pytest.mark.parametrize(
    "text",
    [
        f"mysql+pymysql://forestops:{PASSWORD}@db:3306/covertype",
        f"http://admin:{PASSWORD}@127.0.0.1:8080/api/v2",
        f"s3://key:{PASSWORD}@bucket/x",
        f"FORESTOPS_ADMIN_TOKEN={PASSWORD}",
        f"AWS_SECRET_ACCESS_KEY={PASSWORD}",
        f'{{"password": "{PASSWORD}"}}',
        f"--password {PASSWORD}",
        f"Authorization: Bearer {PASSWORD}",
        f"db_password: {PASSWORD}",
    ],
)
def test_redact_masks_every_secret_shape(text):
    assert PASSWORD not in redact(text)
    assert MASK in redact(text)


def test_redact_leaves_ordinary_text_alone():
    for text in ("batch_number=3 rows_passed=10", "sqlite:////tmp/x.db", "http://127.0.0.1:8090/data?group_number=1"):
        assert redact(text) == text


def test_redact_values_by_name_and_type():
    assert redact_value("airflow_password", "x") == MASK
    assert redact_value("anything", SecretStr(PASSWORD)) == MASK
    assert redact_value("model_name", "covertype") == "covertype"
    shown = redact_mapping({"tracking_uri": f"http://u:{PASSWORD}@h", "n_estimators": 10})
    assert PASSWORD not in str(shown) and shown["n_estimators"] == 10
    assert PASSWORD not in " ".join(redact_argv(["mlflow", "--password", PASSWORD, f"mysql://u:{PASSWORD}@h/d"]))


def test_log_records_are_redacted():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "connecting to %s", (f"mysql://u:{PASSWORD}@h/d",), None)
    RedactingFilter().filter(record)
    assert PASSWORD not in record.getMessage() and "mysql://u:***@h/d" in record.getMessage()


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"FORESTOPS_GROUP_NUMBER": "11"}, "FORESTOPS_GROUP_NUMBER"),  # a model-level rule: its input is every setting
        ({"FORESTOPS_DATABASE_URL": f"forestops:{PASSWORD}@db"}, "FORESTOPS_DATABASE_URL"),  # not a URL at all
        ({"FORESTOPS_INFERENCE_URL": f"ftp://u:{PASSWORD}@h"}, "FORESTOPS_INFERENCE_URL"),
        ({"FORESTOPS_HTTP_RETRIES": "many"}, "FORESTOPS_HTTP_RETRIES"),
    ],
)
def test_settings_errors_name_the_variable_and_hide_secrets(monkeypatch, bad, named):
    monkeypatch.setenv("FORESTOPS_MYSQL_URL", f"mysql+pymysql://forestops:{PASSWORD}@db:3306")
    monkeypatch.setenv("FORESTOPS_ADMIN_TOKEN", PASSWORD)
    monkeypatch.setenv("FORESTOPS_AIRFLOW_PASSWORD", PASSWORD)
    monkeypatch.setenv("FORESTOPS_S3_SECRET_ACCESS_KEY", PASSWORD)
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert named in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_settings_errors_still_show_harmless_values(monkeypatch):
    monkeypatch.setenv("FORESTOPS_HTTP_RETRIES", "many")
    with pytest.raises(SettingsError, match="'many'"):
        load_settings()


def _cli_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORESTOPS_")}
    env.update(
        FORESTOPS_HOME=str(tmp_path),
        FORESTOPS_ADMIN_TOKEN=PASSWORD,
        FORESTOPS_AIRFLOW_PASSWORD=PASSWORD,
        FORESTOPS_HTTP_RETRIES="0",
        FORESTOPS_HTTP_TIMEOUT_SECONDS="2",
        **extra,
    )
    return env


@pytest.mark.parametrize(
    "extra",
    [
        # a configuration error (the reproduced finding)
        {
            "FORESTOPS_GROUP_NUMBER": "11",
            "FORESTOPS_DATABASE_URL": f"mysql+pymysql://forestops:{PASSWORD}@127.0.0.1:1/x",
        },
        # a valid configuration whose data API (with credentials in its URL) does not answer
        {
            "FORESTOPS_DATASOURCE_URL": f"http://collector:{PASSWORD}@127.0.0.1:1",
            "FORESTOPS_DATABASE_URL": "sqlite:///{home}/r.db",
        },
    ],
    ids=["bad-setting", "api-down"],
)
def test_ingest_once_prints_no_password(tmp_path, extra):
    extra = {k: v.replace("{home}", str(tmp_path)) for k, v in extra.items()}
    done = subprocess.run(
        [sys.executable, "-m", "forestops.cli", "ingest-once"],
        env=_cli_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert PASSWORD not in output, output[-2000:]


def test_the_shared_log_setup_masks_what_any_library_logs():
    program = (
        "import logging\n"
        "from forestops.logs import setup_logging\n"
        "setup_logging()\n"
        f"logging.getLogger('sqlalchemy.engine').warning('connecting to mysql+pymysql://app:{PASSWORD}@db/covertype')\n"
        "try:\n"
        f"    raise RuntimeError('token={PASSWORD}')\n"
        "except RuntimeError:\n"
        "    logging.getLogger('x').exception('failed')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert "mysql+pymysql://app:***@db/covertype" in done.stderr, done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_the_cli_edge_masks_an_error_message():
    program = (
        "from forestops.cli import report_error\n"
        "from forestops.errors import ServiceUnavailable\n"
        f"report_error(ServiceUnavailable('cannot reach mysql+pymysql://app:{PASSWORD}@db/covertype'))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert "app:***@db" in done.stderr, done.stderr
    assert PASSWORD not in done.stderr + done.stdout
