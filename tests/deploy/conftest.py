"""Fixtures for the compose deployment checks: a generated .env and the resolved compose model."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestops.deploy.envfile import create_env_file, parse_env
from tests.deploy import compose


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def env_file(deploy_dir: Path) -> Path:
    """A .env made from .env.example exactly as `make up` makes it."""
    target = deploy_dir / ".env"
    assert create_env_file(compose.ENV_EXAMPLE, target)
    return target


@pytest.fixture(scope="session")
def env_values(env_file: Path) -> dict[str, str]:
    return parse_env(env_file.read_text())


@pytest.fixture(scope="session")
def model(env_file: Path) -> dict:
    """docker-compose.yml as Compose resolves it with that .env."""
    return compose.load_model(env_file)


@pytest.fixture(scope="session")
def services(model: dict) -> dict[str, dict]:
    return model["services"]


@pytest.fixture(scope="session")
def opened_model(env_file: Path, deploy_dir: Path) -> dict:
    """The same deployment with the documented opt-in: FORESTOPS_BIND_INTERNAL=0.0.0.0 in .env."""
    opened = deploy_dir / "opened.env"
    text = env_file.read_text()
    assert "\nFORESTOPS_BIND_INTERNAL=127.0.0.1\n" in text, "the .env switch is missing from .env.example"
    opened.write_text(text.replace("\nFORESTOPS_BIND_INTERNAL=127.0.0.1\n", "\nFORESTOPS_BIND_INTERNAL=0.0.0.0\n"))
    return compose.load_model(opened)


@pytest.fixture(scope="session")
def celery_model(env_file: Path) -> dict:
    return compose.load_model(env_file, files=(compose.COMPOSE_FILE, compose.CELERY_OVERRIDE))


@pytest.fixture(scope="session")
def metrics_model(env_file: Path) -> dict:
    return compose.load_model(env_file, files=(compose.COMPOSE_FILE, compose.METRICS_OVERRIDE))
