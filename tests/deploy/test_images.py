"""Dockerfiles and the commands the containers run: lint, pinning, users, and that every command exists."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy import compose
from tests.deploy.test_compose import AIRFLOW

pytestmark = pytest.mark.unit

DOCKERFILES = compose.dockerfiles()
HADOLINT_CONFIG = compose.DOCKER_DIR / "hadolint.yaml"


def _locked(package: str) -> str:
    text = (compose.REPO / "requirements.lock").read_text()
    match = re.search(rf"^{re.escape(package)}==(\S+)$", text, re.MULTILINE)
    assert match, f"{package} is not pinned in requirements.lock"
    return match.group(1)


def _hadolint(path) -> list[dict]:
    result = subprocess.run(
        [str(compose.HADOLINT_BIN), "--config", str(HADOLINT_CONFIG), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def test_there_are_dockerfiles_for_app_mlflow_and_airflow() -> None:
    assert {path.parent.name for path in DOCKERFILES} == {"app", "mlflow", "airflow"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(path) -> None:
    findings = _hadolint(path)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_reports_what_it_should(tmp_path) -> None:
    """Proof that the lint can fail: an unpinned, root, shell-form Dockerfile is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install mlflow\nUSER root\nCMD forestops ui\n")
    codes = {finding["code"] for finding in _hadolint(bad)}
    assert {"DL3007", "DL3002", "DL3025", "DL3003"} <= codes


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_user_is_not_root(path) -> None:
    users = [args for instruction, args in compose.dockerfile_instructions(path) if instruction == "USER"]
    assert users, f"{path}: no USER, the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{path}: runs as {user}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_no_secret_is_baked_into_an_image(path) -> None:
    for instruction, args in compose.dockerfile_instructions(path):
        if instruction in {"ENV", "ARG"}:
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|FERNET|ACCESS_KEY)", args, re.IGNORECASE), args
        if instruction in {"COPY", "ADD"}:
            assert ".env" not in args.split(), args


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_copied_files_exist_and_reach_the_build_context(path) -> None:
    """Build context is the repository root, filtered by .dockerignore's allow-list."""
    allowed = {
        line[1:].rstrip("/")
        for line in (compose.REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for instruction, args in compose.dockerfile_instructions(path):
        if instruction != "COPY":
            continue
        parts = [part for part in args.split() if not part.startswith("--")]
        for source in parts[:-1]:
            assert (compose.REPO / source).exists(), f"{path}: COPY {source} does not exist"
            assert source.split("/")[0] in allowed, f"{path}: {source} is excluded by .dockerignore"


def test_app_image_default_command_is_a_forestops_subcommand() -> None:
    argv = compose.dockerfile_cmd(compose.DOCKER_DIR / "app" / "Dockerfile")
    assert argv[0] == "forestops" and argv[1] in compose.forestops_commands(), argv


@pytest.mark.parametrize("name", ["db-init", "datasource", "inference", "ui"])
def test_forestops_services_run_an_existing_subcommand(services, name) -> None:
    argv = compose.effective_command(services[name])
    assert argv[0] == "forestops", argv
    commands = compose.forestops_commands()
    assert argv[1] in commands, f"{name} runs `forestops {argv[1]}`, which does not exist; there are {sorted(commands)}"
    options = {opt for param in commands[argv[1]].params for opt in param.opts}
    assert {arg.split("=")[0] for arg in argv[2:] if arg.startswith("-")} <= options


def test_mlflow_command_uses_options_of_the_pinned_mlflow(services) -> None:
    argv = compose.effective_command(services["mlflow"])
    assert argv[:2] == ["mlflow", "server"]
    used = {arg.split("=")[0] for arg in argv[2:] if arg.startswith("--")}
    assert used - compose.mlflow_server_options() == set()
    for variable in compose.environment(services["mlflow"]):
        if variable == "MLFLOW_DISABLE_TELEMETRY":  # read by MLflow's telemetry, not the server command
            import mlflow.environment_variables as mlflow_env

            assert mlflow_env.MLFLOW_DISABLE_TELEMETRY.name == variable
        elif variable.startswith("MLFLOW_") and variable != "MLFLOW_S3_ENDPOINT_URL":
            # every other MLFLOW_* variable must be one the server command or MLflow's settings read
            import mlflow.environment_variables as mlflow_env
            from mlflow.cli import cli

            envvars = {param.envvar for param in cli.commands["server"].params if param.envvar}
            envvars |= {getattr(value, "name", None) for value in vars(mlflow_env).values()}
            assert variable in envvars, f"mlflow server reads no {variable}"


@pytest.fixture(scope="module")
def airflow_cli(tmp_path_factory) -> dict:
    return compose.airflow_cli(str(tmp_path_factory.mktemp("airflow-home")))


@pytest.mark.parametrize("name", sorted(AIRFLOW))
def test_airflow_services_run_existing_airflow_commands(services, airflow_cli, name) -> None:
    service = services[name]
    argv = compose.effective_command(service)
    if argv[0] == "forestops":  # our entrypoint runs these itself (test below)
        assert argv[1] in compose.forestops_commands(), f"{name}: `forestops {argv[1]}` does not exist"
        return
    if argv[0] == "airflow":
        argv = argv[1:]
    assert argv[0] in airflow_cli["commands"], f"{name}: `airflow {argv[0]}` does not exist"
    if argv[0] == "db":
        assert argv[1] in airflow_cli["db"]
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    job_type = re.search(r"--job-type (\w+)", test)
    if job_type:
        assert job_type.group(1) in airflow_cli["job_types"], test
        assert "--hostname" in airflow_cli["jobs_check_options"]


def test_the_airflow_entrypoint_runs_forestops_commands_itself(tmp_path) -> None:
    """The image's own entrypoint would run `airflow forestops ...`; ours hands forestops commands to forestops."""
    script = compose.DOCKER_DIR / "airflow" / "entrypoint.sh"
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    env = {"PATH": path, "FORESTOPS_HOME": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(["bash", str(script), "forestops", "--help"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "airflow-history" in result.stdout
    other = subprocess.run(["bash", str(script), "version"], env=env, capture_output=True, text=True)
    assert other.returncode != 0 and "/entrypoint" in other.stderr, "anything else goes to the image's entrypoint"


def test_airflow_image_matches_the_locked_airflow_and_python() -> None:
    path = compose.DOCKER_DIR / "airflow" / "Dockerfile"
    base = next(args for instruction, args in compose.dockerfile_instructions(path) if instruction == "FROM")
    version = _locked("apache-airflow")
    assert base == f"apache/airflow:slim-{version}-python3.11", base
    assert f'"apache-airflow[postgres,celery]=={version}"' in path.read_text(), "pip could move Airflow"
    requires = tomllib.loads((compose.REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in requires


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_python_packages_are_installed_with_the_lock_as_constraints(path) -> None:
    installs = [
        args
        for instruction, args in compose.dockerfile_instructions(path)
        if "pip install" in args and instruction == "RUN"
    ]
    assert installs, f"{path} installs nothing"
    for args in installs:
        assert "--constraint" in args and "requirements.lock" in args, args
    _locked("mlflow")  # the MLflow image's version comes from here


def _index(instructions: list[tuple[str, str]], predicate) -> int:
    return next(i for i, item in enumerate(instructions) if predicate(*item))


@pytest.mark.parametrize("path", [p for p in DOCKERFILES if p.parent.name != "mlflow"], ids=lambda p: p.parent.name)
def test_dependencies_are_installed_in_a_layer_before_the_source_is_copied(path) -> None:
    """A README or source edit must not rebuild the dependencies: only the lock and pyproject.toml come before."""
    steps = compose.dockerfile_instructions(path)
    deps = _index(steps, lambda i, a: i == "RUN" and "pip install" in a and "--no-deps" not in a)
    copied_before = {
        part for i, a in steps[:deps] if i == "COPY" for part in a.split()[:-1] if not part.startswith("--")
    }
    assert copied_before - {"docker/airflow/entrypoint.sh"} == {"requirements.lock", "pyproject.toml"}, copied_before
    source = _index(steps, lambda i, a: i == "COPY" and a.split()[-2] == "src")
    package = _index(steps, lambda i, a: i == "RUN" and "--no-deps" in a)
    assert deps < source < package


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_image_checks_its_installed_packages(path) -> None:
    last_install = [a for i, a in compose.dockerfile_instructions(path) if i == "RUN" and "pip install" in a][-1]
    assert "pip check" in last_install


def test_airflow_image_installs_only_the_providers_the_stack_uses() -> None:
    """Added to the slim base: postgres (metadata DB) and celery (CELERY=1). Every provider the DAGs and the
    package import is one of those or one that Airflow itself brings (pinned in the lock)."""
    text = (compose.DOCKER_DIR / "airflow" / "Dockerfile").read_text()
    added = set(re.findall(r"apache-airflow-providers-([a-z-]+)==", text))
    assert added == {"postgres", "celery"}
    lock = (compose.REPO / "requirements.lock").read_text()
    with_airflow = set(re.findall(r"^apache-airflow-providers-([a-z-]+)==", lock, re.MULTILINE))
    imported = set()
    for path in sorted(compose.DAGS_DIR.glob("*.py")) + sorted(compose.SRC.rglob("*.py")):
        found = re.findall(r"^\s*(?:from|import) airflow\.providers\.([a-z_]+)", path.read_text(), re.MULTILINE)
        imported |= {name.replace("_", "-") for name in found}
    # Slack alerts are optional: the import is guarded and its absence is reported (monitoring/alerts.py).
    assert imported - {"slack"} <= added | with_airflow, (
        f"imported but not installed: {imported - added - with_airflow}"
    )


def test_airflow_image_owns_the_work_folder_its_volume_is_mounted_on(services) -> None:
    home = compose.environment(services["airflow-scheduler"])["FORESTOPS_HOME"]
    text = (compose.DOCKER_DIR / "airflow" / "Dockerfile").read_text()
    assert re.search(rf"install -d -o 50000 .*{re.escape(home)}", text), f"{home} is not created for the airflow user"
