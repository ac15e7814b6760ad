"""Settings: defaults that run the local stack, and errors that name the variable."""

import pytest

from forestops.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_run_the_local_stack(monkeypatch):
    for name in ("FORESTOPS_DATABASE_URL", "FORESTOPS_MYSQL_URL", "FORESTOPS_HOME"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.batch_seconds == 300 and settings.portion_fraction == 0.1
    assert settings.datasource_port == 8090 and settings.inference_port == 8000 and settings.ui_port == 8501
    assert settings.raw_database_url.startswith("sqlite:///")


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("FORESTOPS_BATCH_SECONDS", "2.5")
    monkeypatch.setenv("FORESTOPS_DATASOURCE_URL", "http://10.43.101.108:80/")
    monkeypatch.setenv("FORESTOPS_MYSQL_URL", "mysql+pymysql://app:pw@db:3306")
    settings = load_settings()
    assert settings.batch_seconds == 2.5
    assert settings.datasource_url == "http://10.43.101.108:80"
    assert settings.raw_database_url == "mysql+pymysql://app:pw@db:3306/covertype"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("FORESTOPS_BATCH_SECONDS", "soon", "FORESTOPS_BATCH_SECONDS"),
        ("FORESTOPS_BATCH_SECONDS", "0", "FORESTOPS_BATCH_SECONDS"),
        ("FORESTOPS_DATASOURCE_PORT", "70000", "FORESTOPS_DATASOURCE_PORT"),
        ("FORESTOPS_DATASOURCE_URL", "localhost:8090", "FORESTOPS_DATASOURCE_URL"),
        ("FORESTOPS_LABEL_BASE", "2", "FORESTOPS_LABEL_BASE"),
        ("FORESTOPS_MYSQL_URL", "db:3306", "FORESTOPS_MYSQL_URL"),
        ("FORESTOPS_GROUP_NUMBER", "11", "FORESTOPS_GROUP_NUMBER"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, variable, value, fragment):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=fragment):
        load_settings()
