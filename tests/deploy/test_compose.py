"""docker-compose.yml: schema, services, images, healthchecks, dependencies, volumes, ports, secrets."""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from forestops.settings import Settings
from tests.deploy import compose

pytestmark = pytest.mark.unit

LONG_RUNNING = {
    "mysql",
    "postgres",
    "minio",
    "mlflow",
    "datasource",
    "inference",
    "ui",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-history",
}
ONE_SHOT = {"minio-init", "db-init", "airflow-init", "mlflow-migrate", "mlflow-users"}
AIRFLOW = {name for name in LONG_RUNNING | ONE_SHOT if name.startswith("airflow-")}


def _default_port(url_field: str) -> int:
    return compose.url_host_port(Settings.model_fields[url_field].default)[1]


def contract_ports() -> dict[str, set[tuple[int, int]]]:
    """(host port, container port) per service: ARCHITECTURE.md's table, host ports from the settings' defaults."""
    fields = Settings.model_fields
    return {
        "airflow-apiserver": {(_default_port("airflow_url"),) * 2},
        "mlflow": {(fields["mlflow_port"].default,) * 2},
        "minio": {(9000, 9000), (9001, 9001)},
        "mysql": {(3306, 3306)},
        "inference": {(fields["inference_port"].default,) * 2},
        "ui": {(fields["ui_port"].default,) * 2},
        "datasource": {(fields["datasource_port"].default, 80)},
    }


# -- schema ---------------------------------------------------------------------------


def test_compose_files_validate_against_the_compose_schema(env_file) -> None:
    for files in ((compose.COMPOSE_FILE,), (compose.COMPOSE_FILE, compose.CELERY_OVERRIDE)):
        result = compose.run_compose(env_file, "config", "--quiet", files=files)
        assert result.returncode == 0, result.stderr
        assert "variable is not set" not in result.stderr, result.stderr


def test_the_validator_rejects_a_broken_file(env_file, deploy_dir) -> None:
    """Proof that the check above can fail: the same file with one unknown key is refused."""
    text = compose.COMPOSE_FILE.read_text()
    broken = deploy_dir / "broken-compose.yml"
    broken.write_text(text.replace("  mysql:\n    image:", "  mysql:\n    healthcheks: {}\n    image:", 1))
    assert broken.read_text() != text
    result = compose.run_compose(env_file, "config", "--quiet", files=(broken,))
    assert result.returncode != 0
    assert "healthcheks" in result.stderr


def test_missing_env_file_fails_with_a_clear_message(deploy_dir) -> None:
    empty = deploy_dir / "empty.env"
    empty.write_text("")
    result = compose.run_compose(empty, "config", "--quiet")
    assert result.returncode != 0
    assert "run make up to create .env" in result.stderr


# -- services -------------------------------------------------------------------------


def test_the_services_are_the_designed_ones(services) -> None:
    assert set(services) == LONG_RUNNING | ONE_SHOT


@pytest.mark.parametrize("name", sorted(LONG_RUNNING | ONE_SHOT))
def test_image_is_pinned_or_built_from_a_pinned_base(services, name) -> None:
    service = services[name]
    image = service.get("image", "")
    assert image, f"{name} has no image name"
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag and tag not in {"", "latest"}, f"{name}: image {image!r} is not pinned by tag"
    if "build" in service:
        dockerfile = compose.REPO / service["build"].get("dockerfile", "Dockerfile")
        assert dockerfile.exists(), f"{name}: {dockerfile} is missing"
        for instruction, args in compose.dockerfile_instructions(dockerfile):
            if instruction == "FROM":
                base = args.split()[0]
                assert re.search(r":(slim-)?[0-9][\w.-]*$", base), (
                    f"{dockerfile}: FROM {base} is not pinned to a version tag"
                )


def test_minio_images_come_from_quay(services) -> None:
    for name in ("minio", "minio-init"):
        assert services[name]["image"].startswith("quay.io/minio/"), name


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_long_running_services_restart_and_have_a_healthcheck(services, name) -> None:
    service = services[name]
    assert service.get("restart") in {"unless-stopped", "always"}, f"{name}: restart is {service.get('restart')!r}"
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    assert check.get("test") and check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name}: no healthcheck"


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_one_shot_jobs_do_not_restart(services, name) -> None:
    assert services[name].get("restart") == "no"


def test_every_dependency_waits_for_health_or_completion(services) -> None:
    for name, service in services.items():
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert condition["condition"] == expected, f"{name} -> {target}: {condition['condition']}"


def test_start_order_reaches_every_store_before_its_users(services) -> None:
    def needs(name: str) -> set[str]:
        direct = set(services[name].get("depends_on") or {})
        return direct.union(*(needs(d) for d in direct)) if direct else set()

    assert {"mysql", "minio-init", "mlflow-migrate"} <= needs("mlflow")
    assert "mysql" in needs("db-init")
    assert "mlflow" in needs("inference")
    for name in AIRFLOW - {"airflow-init"}:
        assert {"airflow-init", "postgres", "db-init"} <= needs(name), name
    # Collecting needs only MySQL: the scheduler starts without MLflow (training retries until it answers).
    assert "mlflow" not in needs("airflow-scheduler")


def _mounts(service: dict) -> dict[str, dict]:
    return {volume["target"]: volume for volume in service.get("volumes", [])}


def test_state_lives_in_named_volumes(model, services) -> None:
    expected = {
        "mysql": "/var/lib/mysql",
        "postgres": "/var/lib/postgresql/data",
        "minio": "/data",
        "datasource": compose.environment(services["datasource"])["FORESTOPS_STATE_DIR"],
    }
    expected_cache = compose.environment(services["datasource"])["FORESTOPS_DATA_CACHE_DIR"]
    for name, target in {**expected, "datasource-cache": expected_cache}.items():
        service = services[name.removesuffix("-cache")]
        mount = _mounts(service).get(target)
        assert mount and mount["type"] == "volume", f"{name}: {target} is not on a named volume"
        assert mount["source"] in model["volumes"], mount


def test_data_set_is_mounted_read_only_from_the_data_folder(services) -> None:
    mount = _mounts(services["datasource"])["/data"]
    assert mount["type"] == "bind" and mount["read_only"]
    assert mount["source"] == str(compose.REPO / "data")


# -- ports ----------------------------------------------------------------------------


def test_published_ports_match_the_contract(services) -> None:
    published = {
        name: {(int(p.published), p.target) for p in compose.published_ports(service)}
        for name, service in services.items()
        if service.get("ports")
    }
    assert published == contract_ports()


# Reached by people from other machines: the inference API, the UI, Airflow and Grafana (behind their logins).
PUBLIC = {"inference", "ui", "airflow-apiserver", "grafana"}


def _bindings(model: dict) -> dict[str, set[str]]:
    return {
        name: {port.host_ip for port in compose.published_ports(service)}
        for name, service in model["services"].items()
        if service.get("ports")
    }


@pytest.mark.parametrize("which", ["base", "metrics"])
def test_every_published_port_binds_localhost_unless_it_is_public(model, metrics_model, which) -> None:
    """Safe by default: a service that publishes a port and is not in PUBLIC answers on 127.0.0.1 only
    (Docker's port rules bypass the host firewall, so an all-interfaces binding is reachable from the network)."""
    model = model if which == "base" else metrics_model
    bindings = _bindings(model)
    assert {"mysql", "minio", "mlflow", "datasource"} <= set(bindings) - PUBLIC
    if which == "metrics":
        assert "prometheus" in set(bindings) - PUBLIC
    for name, host_ips in bindings.items():
        expected = {"", "0.0.0.0"} if name in PUBLIC else {"127.0.0.1"}
        assert host_ips <= expected and host_ips, f"{name} publishes on {host_ips}, expected one of {expected}"
    assert "ports" not in model["services"]["postgres"], "Airflow's database stays inside the compose network"


def test_celery_override_publishes_nothing_more(model, celery_model) -> None:
    assert _bindings(celery_model) == _bindings(model)


def test_one_env_switch_opens_the_internal_ports_and_changes_nothing_else(model, opened_model) -> None:
    bindings = _bindings(opened_model)
    for name, host_ips in bindings.items():
        assert host_ips <= {"", "0.0.0.0"}, (name, host_ips)
    for name, service in model["services"].items():
        base, opened = dict(service), dict(opened_model["services"][name])
        base_ports, opened_ports = base.pop("ports", []), opened.pop("ports", [])
        assert base == opened, name
        strip = [{k: v for k, v in p.items() if k != "host_ip"} for p in base_ports]
        assert strip == [{k: v for k, v in p.items() if k != "host_ip"} for p in opened_ports], name


def test_services_listen_where_they_are_published(services) -> None:
    """The port a service binds (its setting or --port) is the container port that compose publishes."""
    binds = {
        "datasource": compose.environment(services["datasource"]).get("FORESTOPS_DATASOURCE_PORT"),
        "inference": compose.environment(services["inference"]).get("FORESTOPS_INFERENCE_PORT"),
        "ui": compose.environment(services["ui"]).get("FORESTOPS_UI_PORT"),
        "mlflow": next((a.split("=")[1] for a in services["mlflow"]["command"] if a.startswith("--port=")), None),
    }
    for name, port in binds.items():
        assert port is not None, f"{name} does not set the port it binds"
        assert int(port) in compose.listening_ports(services[name]), name


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_http_healthchecks_probe_the_listening_port(services, name) -> None:
    test = " ".join(services[name]["healthcheck"]["test"])
    for url in re.findall(r"https?://[^\s'\"]+", test):
        host, port = compose.url_host_port(url)
        assert host == "localhost", url
        assert port in compose.listening_ports(services[name]) | {8974}, f"{name} probes {url}"


# -- MLflow and MinIO -----------------------------------------------------------------------


def _mlflow_options(services) -> dict[str, str]:
    options = {}
    for argument in services["mlflow"]["command"][2:]:
        key, _, value = argument.partition("=")
        options[key] = value
    return options


def test_mlflow_proxies_artefacts_to_the_bucket_that_minio_init_creates(services) -> None:
    options = _mlflow_options(services)
    destination = urlsplit(options["--artifacts-destination"])
    assert destination.scheme == "s3"
    assert destination.netloc == Settings.model_fields["s3_bucket"].default
    assert compose.environment(services["minio-init"])["MLFLOW_BUCKET"] == destination.netloc
    assert "--serve-artifacts" in options
    env = compose.environment(services["mlflow"])
    assert compose.url_host_port(env["MLFLOW_S3_ENDPOINT_URL"]) == ("minio", 9000)
    backend = urlsplit(env["MLFLOW_BACKEND_STORE_URI"])
    assert backend.scheme == "mysql+pymysql" and backend.hostname == "mysql" and backend.path == "/mlflow"


def test_mlflow_allows_the_host_names_its_clients_use(services) -> None:
    from mlflow.server.security_utils import get_private_ip_patterns, is_allowed_host_header

    allowed = _mlflow_options(services)["--allowed-hosts"].split(",")
    # MLflow's own private ranges are kept (a VM opened by its private address needs no setting)
    assert set(get_private_ip_patterns()) - {"fc00:*", "fd00:*"} <= set(allowed)
    wanted = ["localhost", "localhost:5000", "10.1.2.3:5000", "172.20.0.5:5000", "192.168.1.9"]
    for service in services.values():
        uri = compose.environment(service).get("FORESTOPS_MLFLOW_TRACKING_URI")
        if uri:
            host, port = compose.url_host_port(uri)
            wanted += [host, f"{host}:{port}"]
    refused = [host for host in wanted if not is_allowed_host_header(allowed, host)]
    assert not refused, f"MLflow would answer 403 for Host {refused}"
    assert not is_allowed_host_header(allowed, "attacker.example:5000")


# -- Airflow --------------------------------------------------------------------------


def test_airflow_services_share_one_configuration(services, env_values) -> None:
    envs = {name: compose.environment(services[name]) for name in AIRFLOW}
    shared = [
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__EXECUTOR",
    ]
    for key in shared:
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), f"{key} differs: {values}"
    one = envs["airflow-scheduler"]
    assert one["AIRFLOW__API_AUTH__JWT_SECRET"] == env_values["AIRFLOW_JWT_SECRET"]
    assert one["AIRFLOW__CORE__FERNET_KEY"] == env_values["AIRFLOW_FERNET_KEY"]
    assert one["AIRFLOW__API__SECRET_KEY"] == env_values["AIRFLOW_API_SECRET_KEY"]
    assert one["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert compose.url_host_port(one["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", ""))[0] == "postgres"
    host, port = compose.url_host_port(one["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert host == "airflow-apiserver" and port in compose.listening_ports(services["airflow-apiserver"])
    assert urlsplit(one["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path == "/execution/"


def test_celery_override_moves_every_airflow_service_to_celery_workers(services, celery_model) -> None:
    celery = celery_model["services"]
    assert set(celery) == set(services) | {"redis", "airflow-worker"}
    for name in AIRFLOW | {"airflow-worker"}:
        env = compose.environment(celery[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        for key in ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND"):
            host = compose.url_host_port(re.sub(r"^db\+postgresql", "postgresql", env[key]))[0]
            assert host in celery, f"{name}: {key} points at {host}"
    worker, scheduler = (
        compose.environment(celery["airflow-worker"]),
        compose.environment(services["airflow-scheduler"]),
    )
    # tasks run in the workers now: they need everything the scheduler's tasks had
    missing = {k: v for k, v in scheduler.items() if k != "AIRFLOW__CORE__EXECUTOR" and worker.get(k) != v}
    assert missing == {}
    assert celery["airflow-worker"]["command"] == ["celery", "worker"]
    assert celery["airflow-worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert celery["redis"]["healthcheck"]["test"] and re.search(r":\d[\w.-]*$", celery["redis"]["image"])
    assert "ports" not in celery["redis"], "the broker stays inside the compose network"


def test_celery_workers_can_be_scaled(celery_model) -> None:
    worker = celery_model["services"]["airflow-worker"]
    assert "container_name" not in worker and not worker.get("ports"), "a fixed name or port prevents --scale"


# -- secrets --------------------------------------------------------------------------

SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|FERNET_KEY)")


def key_is_env(block: dict) -> bool:
    """An x- block that is itself an environment mapping (all keys upper-case variables)."""
    return bool(block) and all(re.fullmatch(r"[A-Z0-9_]+", str(key)) for key in block)


@pytest.mark.parametrize("path", [compose.COMPOSE_FILE, compose.CELERY_OVERRIDE], ids=lambda p: p.name)
def test_no_secret_is_written_in_the_compose_files(path) -> None:
    raw = yaml.safe_load(path.read_text())
    blocks = [raw[key] for key in raw if key.startswith("x-")] + list(raw["services"].values())
    blocks = [{"environment": block} if "environment" not in block and key_is_env(block) else block for block in blocks]
    for block in blocks:
        for key, value in (block.get("environment") or {}).items():
            value = str(value)
            if SECRET_KEY.search(key) and "_FILE" not in key:
                assert value.startswith("${"), f"{key} has a literal value in {path.name}"
            credentials = re.search(r"://[^/@\s]*:([^@/\s]+)@", value)
            if credentials:
                assert credentials.group(1).startswith("${"), f"{key}: URL with a literal password"


# -- operations: logs, telemetry, memory, the admin password, shared task files -----------------


@pytest.mark.parametrize("which", ["base", "celery", "metrics"])
def test_every_service_rotates_its_logs_and_turns_telemetry_off(model, celery_model, metrics_model, which) -> None:
    for name, service in {"base": model, "celery": celery_model, "metrics": metrics_model}[which]["services"].items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", f"{name}: logs are not rotated"
        assert {"max-size", "max-file"} <= set(logging.get("options") or {}), name
        env = compose.environment(service)
        assert env.get("MLFLOW_DISABLE_TELEMETRY") == "true" and env.get("DO_NOT_TRACK") == "1", name


def _mebibytes(value) -> float:
    return int(value) / 2**20


def budget_table() -> dict[str, int]:
    """docs/deployment.md's memory budget: | service | limit (MiB) | ... rows."""
    text = (compose.REPO / "docs" / "deployment.md").read_text()
    section = text.split("### Memory budget", 1)[1].split("\n#", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| `([a-z-]+)` \| (\d+) \|", section, re.MULTILINE)}


def test_every_service_has_a_memory_limit_within_the_documented_8_gb_budget(model, celery_model) -> None:
    services = celery_model["services"]
    limits = {name: _mebibytes(service["mem_limit"]) for name, service in services.items() if "mem_limit" in service}
    assert set(limits) == set(services), f"no memory limit: {set(services) - set(limits)}"
    assert budget_table() == limits, "docs/deployment.md's budget table differs from the compose files"
    long_running = sum(limits[name] for name in LONG_RUNNING)
    assert long_running <= 7.5 * 1024, f"{long_running} MiB leaves the 8 GB VM too little for the system"


def test_mlflow_runs_two_workers(services) -> None:
    assert _mlflow_options(services)["--workers"] == "2"


def test_only_the_api_server_holds_the_airflow_admin_password(celery_model, env_values) -> None:
    password = env_values["AIRFLOW_ADMIN_PASSWORD"]
    holders = {
        name for name, service in celery_model["services"].items() if password in compose.environment(service).values()
    }
    # no Airflow component but the API server checks logins; the UI has its own account
    assert holders == {"airflow-apiserver"}, holders


def test_the_ui_acts_in_airflow_as_its_own_least_privileged_user(celery_model) -> None:
    services = celery_model["services"]
    ui = compose.environment(services["ui"])
    apiserver = compose.environment(services["airflow-apiserver"])
    assert ui["FORESTOPS_AIRFLOW_USERNAME"] == "forestops_ui"
    assert ui["FORESTOPS_AIRFLOW_PASSWORD"] == apiserver["AIRFLOW_UI_PASSWORD"]
    users = dict(entry.split(":") for entry in apiserver["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    assert users["forestops_ui"] == "user"  # SimpleAuthManager's least role that may trigger DAG runs


def test_the_ui_has_its_own_sign_in_password_that_no_other_service_holds(celery_model, env_values) -> None:
    password = env_values["FORESTOPS_UI_PASSWORD"]
    assert len(password) >= 24 and env_values["FORESTOPS_UI_USERNAME"] == "admin"
    ui = compose.environment(celery_model["services"]["ui"])
    assert ui["FORESTOPS_UI_PASSWORD"] == password and ui["FORESTOPS_UI_USERNAME"] == "admin"
    assert ui["FORESTOPS_UI_HOST"] == "0.0.0.0"  # a network bind: without the password, actions are refused
    holders = {
        name for name, service in celery_model["services"].items() if password in compose.environment(service).values()
    }
    assert holders == {"ui"}, holders
    others = {k: v for k, v in env_values.items() if k != "FORESTOPS_UI_PASSWORD"}
    assert password not in others.values()


def test_task_files_live_on_one_volume_shared_by_every_airflow_container(celery_model) -> None:
    services = celery_model["services"]
    for name in AIRFLOW | {"airflow-worker"}:
        home = compose.environment(services[name])["FORESTOPS_HOME"]
        mount = _mounts(services[name]).get(home)
        assert mount and mount["type"] == "volume" and mount["source"] == "forestops-work", name


def _make_dry_run(*args: str) -> list[str]:
    result = subprocess.run(
        ["make", "-n", *args], cwd=compose.REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if " up " in line or " down" in line]


@pytest.mark.parametrize("celery", ["", "CELERY=1"])
def test_down_uses_the_files_of_up_and_removes_orphans(celery) -> None:
    flags = [celery] if celery else []
    (up,) = [line for line in _make_dry_run("up", *flags) if " up " in line]
    (down,) = _make_dry_run("down-docker", *flags)
    assert "--remove-orphans" in down
    files = re.findall(r"-f (\S+)", up)
    assert files == re.findall(r"-f (\S+)", down)
    assert ("docker-compose.celery.yml" in files) == bool(celery)


def test_make_check_reaches_every_service_as_its_own_user(env_file, services) -> None:
    """The `check` service (profile tools, run by `make check`) points at each service where it listens,
    and logs in to MySQL with each service's own account."""
    result = compose.run_compose(env_file, "--profile", "tools", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    check = json.loads(result.stdout)["services"]["check"]
    assert check["command"] == ["forestops", "check"] and "check" in compose.forestops_commands()
    env = compose.environment(check)
    for variable in ("DATASOURCE_URL", "MLFLOW_TRACKING_URI", "AIRFLOW_URL", "INFERENCE_URL", "UI_URL"):
        host, port = compose.url_host_port(env[f"FORESTOPS_{variable}"])
        assert host in services and port in compose.listening_ports(services[host]), variable
    users = {
        "FORESTOPS_DATABASE_URL": compose.environment(services["db-init"])["FORESTOPS_DATABASE_URL"],
        "FORESTOPS_READER_DATABASE_URL": compose.environment(services["ui"])["FORESTOPS_DATABASE_URL"],
        "FORESTOPS_MLFLOW_BACKEND_STORE_URI": compose.environment(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"],
    }
    for variable, used_by_the_service in users.items():
        assert env[variable] == used_by_the_service, variable
    assert (
        env["FORESTOPS_AIRFLOW_PASSWORD"]
        == compose.environment(services["airflow-apiserver"])["AIRFLOW_ADMIN_PASSWORD"]
    )
