"""Each service gets the FORESTOPS_* variables its code reads, pointing at hosts of the compose network.

What a service "reads" is found in the code, not listed here: the modules its
command (or, for Airflow, the DAG files) imports, followed transitively, and
the Settings fields those modules access.  When a service starts reading a new
setting that has no usable default inside a container, these tests fail until
docker-compose.yml provides it.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from forestops.settings import ENV_PREFIX, Settings, load_settings
from tests.deploy import compose
from tests.deploy.test_compose import AIRFLOW

pytestmark = pytest.mark.unit

FORESTOPS_SERVICES = ("db-init", "datasource", "inference", "ui")
# Airflow services whose processes import the DAG files and run their tasks.
DAG_RUNNERS = ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
BIND_ALL = "0.0.0.0"


def env_var(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _is_secret(field: str) -> bool:
    return "SecretStr" in str(Settings.model_fields[field].annotation)


def _is_url(field: str) -> bool:
    default = Settings.model_fields[field].default
    return isinstance(default, str) and default.startswith(("http://", "https://"))


def reads_of(service_name: str, service: dict) -> set[str]:
    """The settings read by the code that runs in a service: its command and the modules that imports."""
    if service_name in DAG_RUNNERS:
        modules = compose.dag_entry_modules()
        assert modules, "no DAG file in dags/ imports forestops: nothing to check for the Airflow services"
        return compose.settings_read_by(compose.reachable_modules(modules))
    argv = compose.effective_command(service)
    assert argv[:1] == ["forestops"], f"{service_name} does not run the forestops command: {argv}"
    assert argv[1] in compose.forestops_commands(), f"`forestops {argv[1]}` does not exist (yet)"
    modules = compose.command_entry_modules(argv[1])
    assert modules, f"`forestops {argv[1]}` imports no forestops module that exists"
    return compose.command_reads(argv[1]) | compose.settings_read_by(compose.reachable_modules(modules))


def test_every_forestops_variable_in_compose_is_a_setting(services) -> None:
    unknown = {
        (name, key)
        for name, service in services.items()
        for key in compose.environment(service)
        if key.startswith(ENV_PREFIX) and key.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields
    }
    assert unknown == set(), f"variables no setting reads (renamed or misspelt?): {sorted(unknown)}"


@pytest.mark.parametrize("name", [*FORESTOPS_SERVICES, *sorted(AIRFLOW)])
def test_settings_load_from_the_service_environment(services, name, monkeypatch) -> None:
    """The values are valid for forestops.settings (the service would not stop at start-up)."""
    for key in [k for k in __import__("os").environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in compose.environment(services[name]).items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)
    load_settings()


@pytest.mark.parametrize("name", [*FORESTOPS_SERVICES, *DAG_RUNNERS])
def test_service_gets_every_setting_its_code_needs(services, name) -> None:
    service = services[name]
    env = compose.environment(service)
    reads = reads_of(name, service)
    problems = []
    for field in sorted(reads):
        variable = env_var(field)
        value = env.get(variable)
        if _is_url(field):
            # the default points at 127.0.0.1: inside a container that is the container itself
            if value is None:
                problems.append(f"{variable} is read but not set (default {Settings.model_fields[field].default})")
                continue
            host, port = compose.url_host_port(value)
            if host not in services:
                problems.append(f"{variable}={value}: {host} is not a service of the compose network")
            elif port not in compose.listening_ports(services[host]):
                problems.append(f"{variable}={value}: {host} does not listen on {port}")
        elif field.endswith("_host"):
            if value != BIND_ALL:
                problems.append(f"{variable} must be {BIND_ALL} in a container (got {value!r})")
        elif field.endswith("_port") and value is not None:
            if int(value) not in compose.listening_ports(service):
                problems.append(f"{variable}={value} is not a port this service publishes")
        elif _is_secret(field) and Settings.model_fields[field].default is None and value is None:
            problems.append(f"{variable} (a secret) is read but not set")
        elif field in {"state_dir", "data_cache_dir"}:
            mounts = {v["target"]: v for v in service.get("volumes", [])}
            if value is None or mounts.get(value, {}).get("type") != "volume":
                problems.append(f"{variable}={value!r} is not on a named volume: the data would not survive")
    if reads & {"database_url", "mysql_url"}:
        url = env.get(env_var("database_url")) or env.get(env_var("mysql_url"))
        if url is None:
            problems.append("reads the raw database but neither FORESTOPS_DATABASE_URL nor FORESTOPS_MYSQL_URL is set")
        else:
            host, _ = compose.url_host_port(url.replace("+pymysql", ""))
            if host != "mysql":
                problems.append(f"database URL points at {host}, not the mysql service")
    assert problems == [], f"{name}:\n  " + "\n  ".join(problems)


def test_the_read_detection_sees_settings_through_properties() -> None:
    """Guard for the check above: reading raw_database_url counts as reading database_url."""
    assert {"database_url", "mysql_url"} <= compose.settings_properties()["raw_database_url"]
    assert all(isinstance(v, set) for v in compose.settings_properties().values())
    assert SecretStr  # secrets are recognised by their annotation
    assert _is_secret("admin_token") and _is_url("datasource_url") and not _is_url("database_url")
