"""docker-compose.metrics.yml and its configuration: Prometheus checked by promtool, Grafana provisioned."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy import compose

pytestmark = pytest.mark.unit

METRICS_OVERRIDE = compose.REPO / "docker-compose.metrics.yml"
PROMETHEUS_CONFIG = compose.REPO / "docker" / "prometheus" / "prometheus.yml"
GRAFANA = compose.REPO / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "forestops.json"


@pytest.fixture(scope="module")
def metrics_services(env_file) -> dict[str, dict]:
    return compose.load_model(env_file, files=(compose.COMPOSE_FILE, METRICS_OVERRIDE))["services"]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing: install Debian's prometheus package "
            "(`apt-get install -y prometheus`; `make test` does it when run as root)"
        )
    return found


def test_prometheus_configuration_passes_promtool() -> None:
    result = subprocess.run([promtool(), "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_inference_replica_where_it_listens(metrics_services) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "inference"]
    (target,) = job["dns_sd_configs"]
    assert target["names"] == ["inference"] and target["port"] in compose.listening_ports(metrics_services["inference"])


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_pinned_healthy_limited_and_rotated(metrics_services, name) -> None:
    service = metrics_services[name]
    repository, _, tag = service["image"].rpartition(":")
    assert repository and re.match(r"v?\d+\.\d+\.\d+$", tag), service["image"]
    assert service["restart"] == "unless-stopped" and "mem_limit" in service
    assert service["healthcheck"]["test"][0] == "CMD"
    assert service["logging"]["driver"] == "json-file"
    env = compose.environment(service)
    assert env.get("MLFLOW_DISABLE_TELEMETRY") == "true" and env.get("DO_NOT_TRACK") == "1", name


def test_prometheus_is_internal_and_grafana_public_behind_its_generated_password(metrics_services, env_values) -> None:
    (prometheus,) = compose.published_ports(metrics_services["prometheus"])
    assert (prometheus.host_ip, prometheus.target) == ("127.0.0.1", 9090)
    (grafana,) = compose.published_ports(metrics_services["grafana"])
    assert grafana.host_ip in ("", "0.0.0.0") and grafana.target == 3000
    env = compose.environment(metrics_services["grafana"])
    password = env_values["GRAFANA_ADMIN_PASSWORD"]
    assert len(password) >= 24 and env["GF_SECURITY_ADMIN_PASSWORD"] == password
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_ANALYTICS_REPORTING_ENABLED"] == "false"
    raw = yaml.safe_load(METRICS_OVERRIDE.read_text())["services"]["grafana"]["environment"]
    assert raw["GF_SECURITY_ADMIN_PASSWORD"].startswith("${"), "the password must come from .env"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(metrics_services) -> None:
    mounts = {m["target"]: m for m in metrics_services["grafana"]["volumes"]}
    for target, folder in (
        ("/etc/grafana/provisioning", "provisioning"),
        ("/var/lib/grafana/dashboards", "dashboards"),
    ):
        assert mounts[target]["read_only"] and mounts[target]["source"] == str(GRAFANA / folder)
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "forestops.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_local_stack_scrape_configuration_passes_promtool(tmp_path) -> None:
    from forestops.local.services import prometheus_config

    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config(25080))
    result = subprocess.run([promtool(), "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = yaml.safe_load(path.read_text())["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:25080"]
