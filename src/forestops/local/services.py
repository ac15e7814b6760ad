"""What the local stack runs: each service's command, port, URL and health check.

Everything is derived from settings, so every port and URL can be moved with
``FORESTOPS_*`` variables (the tests run a whole stack on free ports), and
each child process gets the same derived values in its environment, so DAG
tasks, the inference API and the UI all find each other.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from forestops.local import airflow, mlflow_server
from forestops.private_files import write_private
from forestops.settings import Settings

LOCALHOST = "127.0.0.1"
UI_PASSWORD_FILE = "ui-password"  # under FORESTOPS_HOME: the UI's generated sign-in password


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the stack; its health URL is declared here once and recorded at start."""

    name: str
    title: str
    argv: list[str]
    port: int | None
    url: str | None
    health_url: str | None  # None: a worker with no port, healthy while it runs
    env: dict[str, str] = field(default_factory=dict)
    port_setting: str | None = None
    # An Airflow component (scheduler, ...) reports its health through the API server's health_url.
    health_component: str | None = None
    # Started at this nice value (inherited by what it forks): Airflow's task runners, training included.
    niceness: int = 0

    def healthy(self) -> bool:
        return self.health_url is None or service_healthy(self.health_url, self.health_component)


def forestops_executable() -> str:
    found = Path(sys.executable).parent / "forestops"
    return str(found) if found.exists() else "forestops"


def service_healthy(health_url: str, component: str | None = None) -> bool:
    """HTTP 200 from ``health_url``; for an Airflow component, also its status in that answer."""
    try:
        response = httpx.get(health_url, timeout=3)
        if response.status_code != 200:
            return False
        return component is None or airflow.component_healthy(response.json(), component)
    except (httpx.HTTPError, ValueError):
        return False


def url_of(port: int) -> str:
    return f"http://{LOCALHOST}:{port}"


def shared_environment(settings: Settings, setup: airflow.AirflowSetup | None, raw_url: str) -> dict[str, str]:
    """The ``FORESTOPS_*`` values every service and DAG task must agree on."""
    home = settings.home.resolve()
    values = {
        "FORESTOPS_HOME": str(home),
        "FORESTOPS_DATASOURCE_PORT": str(settings.datasource_port),
        "FORESTOPS_DATASOURCE_URL": url_of(settings.datasource_port),
        "FORESTOPS_MLFLOW_PORT": str(settings.mlflow_port),
        "FORESTOPS_MLFLOW_TRACKING_URI": url_of(settings.mlflow_port),
        "FORESTOPS_INFERENCE_PORT": str(settings.inference_port),
        "FORESTOPS_INFERENCE_URL": url_of(settings.inference_port),
        "FORESTOPS_UI_PORT": str(settings.ui_port),
        "FORESTOPS_AIRFLOW_PORT": str(settings.airflow_port),
        "FORESTOPS_AIRFLOW_URL": url_of(settings.airflow_port),
        "FORESTOPS_DATABASE_URL": raw_url,
        # No usage telemetry from any service or task (MLflow's switch and the cross-tool one).
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    if setup is not None:
        # Services (the UI is the one that calls Airflow) act as the least account that can
        # trigger the DAGs, never as the admin (which `stack up` keeps for unpausing).
        values["FORESTOPS_AIRFLOW_USERNAME"] = airflow.UI_USER
        values["FORESTOPS_AIRFLOW_PASSWORD"] = setup.ui_password
    return values


@dataclass(frozen=True)
class UiLogin:
    """The UI's sign-in for the local stack, and where a person finds its password (never the password)."""

    username: str
    password: str = field(repr=False)
    where: str


def ui_password_path(settings: Settings) -> Path:
    return settings.home.resolve() / UI_PASSWORD_FILE


def ui_login(settings: Settings) -> UiLogin:
    """``FORESTOPS_UI_PASSWORD`` when set, else a password generated once into a 0600 file and kept there."""
    if settings.ui_password is not None:
        return UiLogin(settings.ui_username, settings.ui_password.get_secret_value(), "FORESTOPS_UI_PASSWORD")
    path = ui_password_path(settings)
    password = path.read_text().strip() if path.exists() else ""
    if not password:
        password = secrets.token_urlsafe(16)
        write_private(path, password + "\n")
    return UiLogin(settings.ui_username, password, str(path))


def plan(settings: Settings, setup: airflow.AirflowSetup, ui_password: str | None = None) -> list[ServiceSpec]:
    """The services to start, in start order; ``ui_password`` goes to the UI process only."""
    forestops = forestops_executable()
    airflow_url = url_of(settings.airflow_port)
    airflow_health = airflow_url + "/api/v2/monitor/health"
    specs: list[ServiceSpec] = []

    def add_forestops(name: str, title: str, command: str, port: int, health_path: str, setting: str) -> None:
        url = url_of(port)
        specs.append(ServiceSpec(name, title, [forestops, command], port, url, url + health_path, port_setting=setting))

    add_forestops("datasource", "batch data API", "datasource", settings.datasource_port, "/health", "DATASOURCE_PORT")
    mlflow_url = url_of(settings.mlflow_port)
    specs.append(
        ServiceSpec(
            "mlflow",
            "MLflow server",
            [forestops, "mlflow-server", "--host", LOCALHOST, "--port", str(settings.mlflow_port)],
            settings.mlflow_port,
            mlflow_url,
            mlflow_url + "/health",
            port_setting="MLFLOW_PORT",
        )
    )
    airflow_env = setup.environment()
    specs.append(
        ServiceSpec(
            "airflow-api-server",
            "Airflow API server / UI",
            airflow.argv("api-server"),
            settings.airflow_port,
            airflow_url,
            airflow_health,
            airflow_env,
            port_setting="AIRFLOW_PORT",
        )
    )
    for component in ("scheduler", "dag-processor", "triggerer"):
        specs.append(
            ServiceSpec(
                f"airflow-{component}",
                f"Airflow {component}",
                airflow.argv(component),
                None,
                None,
                airflow_health,
                airflow_env,
                health_component=component,
                niceness=settings.stack_training_niceness,
            )
        )
    # Airflow's own run history (forestops.airflow_history): the DAGs cannot reach that database.
    specs.append(
        ServiceSpec(
            "airflow-history",
            "Airflow run-history cleaner",
            [forestops, "airflow-history"],
            None,
            None,
            None,
            airflow_env,
            niceness=settings.stack_training_niceness,
        )
    )
    add_forestops("inference", "inference API", "inference", settings.inference_port, "/health", "INFERENCE_PORT")
    add_forestops("ui", "Streamlit UI", "ui", settings.ui_port, "/_stcore/health", "UI_PORT")
    if ui_password is not None:
        specs[-1] = dataclasses.replace(specs[-1], env={"FORESTOPS_UI_PASSWORD": ui_password})
    prometheus = prometheus_spec(settings)
    if prometheus is not None:
        specs.append(prometheus)
    return specs


def prometheus_config(inference_port: int) -> str:
    """The local stack's scrape configuration: the inference API (requests and the monitoring gauges)."""
    return (
        "# Written by `forestops stack up`; regenerated at every start.\n"
        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
        "scrape_configs:\n"
        "  - job_name: inference\n"
        "    metrics_path: /metrics\n"
        f'    static_configs:\n      - targets: ["{LOCALHOST}:{inference_port}"]\n'
    )


def prometheus_spec(settings: Settings) -> ServiceSpec | None:
    """Debian's Prometheus on 127.0.0.1 when it is installed (the UI's Monitoring page works without it)."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    folder = (settings.home / "prometheus").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(prometheus_config(settings.inference_port))
    url = url_of(settings.prometheus_port)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        "--storage.tsdb.retention.time=7d",
        f"--web.listen-address={LOCALHOST}:{settings.prometheus_port}",
    ]
    return ServiceSpec(
        "prometheus",
        "Prometheus",
        argv,
        settings.prometheus_port,
        url,
        url + "/-/ready",
        port_setting="PROMETHEUS_PORT",
    )


def child_environment(base: dict[str, str], spec: ServiceSpec) -> dict[str, str]:
    return {**os.environ, **base, **spec.env}


def describe_mode(settings: Settings) -> str:
    if mlflow_server.server_mode(settings):
        return "server (MySQL raw data + MLflow backend, S3 artefacts)"
    if settings.mysql_url:
        return "mixed (MySQL, local artefact folder)"
    return "embedded (SQLite, local artefact folder)"
