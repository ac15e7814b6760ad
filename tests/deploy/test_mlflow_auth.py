"""MLflow on a network: the compose's exact server flags, its basic-auth app and per-client users.

The server runs with the ``mlflow`` service's command from docker-compose.yml
as Compose resolves it (a .env made from .env.example, with the public host
set to a VM address), so a change of flags there is tested here; only the
listen address and port are the test's.  Its environment is the compose's
too, except where a container path stands for a file here (the auth
database, the ini's mount) and the database/S3 endpoints.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forestops.deploy.envfile import create_env_file, parse_env
from tests.deploy import compose
from tests.support import servers
from tests.support.processes import VENV_BIN, forestops_argv, free_port, running

pytestmark = pytest.mark.integration

VM_HOST = "10.1.2.3"
EXPERIMENT = "auth-test-experiment"
MODEL = "auth-test-model"


@pytest.fixture(scope="module")
def vm_env(tmp_path_factory) -> dict[str, str]:
    """A .env as `make up` makes it, for a VM opened as http://10.1.2.3:5000."""
    folder = tmp_path_factory.mktemp("vm-env")
    env_file = folder / ".env"
    assert create_env_file(compose.ENV_EXAMPLE, env_file)
    text = env_file.read_text()
    assert re.search(r"^FORESTOPS_PUBLIC_HOST=", text, flags=re.M), ".env.example has no FORESTOPS_PUBLIC_HOST"
    env_file.write_text(re.sub(r"^FORESTOPS_PUBLIC_HOST=.*$", f"FORESTOPS_PUBLIC_HOST={VM_HOST}", text, flags=re.M))
    return {"path": str(env_file), **parse_env(env_file.read_text())}


@pytest.fixture(scope="module")
def vm_services(vm_env) -> dict[str, dict]:
    return compose.load_model(Path(vm_env["path"]))["services"]


def _compose_argv(service: dict, port: int) -> list[str]:
    """The compose's command, except where it listens and its worker count.

    One worker: with several, uvicorn's supervisor restarts a worker that does not answer its
    health ping within 5 s, which on a loaded test machine (importing MLflow) is every worker.
    """
    command = list(service["command"])
    assert command[:2] == ["mlflow", "server"]
    flags = [f for f in command[2:] if not f.startswith(("--host=", "--port=", "--workers="))]
    assert len(flags) == len(command) - 5, "expected --host=, --port= and --workers= in the compose's mlflow command"
    return [str(VENV_BIN / "mlflow"), "server", *flags, "--host=127.0.0.1", f"--port={port}", "--workers=1"]


@pytest.fixture(scope="module")
def compose_mlflow(vm_services, mlflow_server, s3_endpoint, tmp_path_factory) -> Iterator[str]:
    """A second MLflow server on the session's (migrated) database, started with the compose's flags."""
    service = vm_services["mlflow"]
    env = compose.environment(service)
    folder = tmp_path_factory.mktemp("compose-mlflow")
    mounts = {volume["target"]: volume for volume in service.get("volumes", [])}
    ini_target = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert Path(mounts[ini_target]["source"]) == servers.AUTH_INI
    auth_dir = servers.AUTH_INI.read_text().split("database_uri = sqlite:///", 1)[1].splitlines()[0]
    assert Path(auth_dir).parent == Path(mounts["/var/lib/mlflow/auth"]["target"]), "auth database not on its volume"
    auth = servers.MlflowAuth(
        admin_username=env["MLFLOW_AUTH_ADMIN_USERNAME"],
        admin_password=env["MLFLOW_AUTH_ADMIN_PASSWORD"],
        database_uri=f"sqlite:///{folder / 'basic_auth.db'}",
        secret_key=env["MLFLOW_FLASK_SERVER_SECRET_KEY"],
    )
    child_env = {
        **{k: v for k, v in env.items() if not k.startswith(("MLFLOW_AUTH_", "MLFLOW_S3_", "AWS_"))},
        **auth.server_env(folder),
        **s3_endpoint.env(),
        "MLFLOW_BACKEND_STORE_URI": mlflow_server.backend_store_uri,
        "MLFLOW_TRACKING_USERNAME": "",
        "MLFLOW_TRACKING_PASSWORD": "",
    }
    port = free_port()
    argv = _compose_argv(service, port)
    assert "--app-name=basic-auth" in argv
    url = f"http://127.0.0.1:{port}"
    with running("compose mlflow", argv, folder / "mlflow.log", f"{url}/health", env=child_env, timeout=480):
        yield url


@pytest.fixture(scope="module")
def users(compose_mlflow, vm_services, vm_env) -> dict[str, tuple[str, str]]:
    """Run the compose's mlflow-users job (twice: every `make up` runs it) against that server."""
    env = {
        **os.environ,
        **compose.environment(vm_services["mlflow-users"]),
        "FORESTOPS_MLFLOW_TRACKING_URI": compose_mlflow,
        "FORESTOPS_EXPERIMENT_NAME": EXPERIMENT,
        "FORESTOPS_MODEL_NAME": MODEL,
    }
    assert vm_services["mlflow-users"]["command"] == ["forestops", "mlflow-users"]
    for attempt in range(2):
        result = subprocess.run(
            forestops_argv("mlflow-users"), env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert ("updated" if attempt else "created") in result.stdout
        for line in result.stdout.splitlines():
            assert env["MLFLOW_TRACKING_PASSWORD"] not in line
    return {
        role: (env[f"MLFLOW_{role.upper()}_USERNAME"], env[f"MLFLOW_{role.upper()}_PASSWORD"])
        for role in ("trainer", "inference", "ui")
    }


def _basic(user: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()}


def _experiment_id(url: str, user) -> str:
    answer = httpx.get(
        f"{url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": EXPERIMENT},
        headers=_basic(user),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["experiment"]["experiment_id"]


def test_health_answers_without_credentials_and_anonymous_writes_are_refused(compose_mlflow) -> None:
    assert httpx.get(f"{compose_mlflow}/health", timeout=30).status_code == 200
    anonymous = httpx.post(
        f"{compose_mlflow}/api/2.0/mlflow/experiments/create", json={"name": "anonymous-write"}, timeout=30
    )
    assert anonymous.status_code in (401, 403), anonymous.text
    assert httpx.get(f"{compose_mlflow}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30).status_code in (
        401,
        403,
    )


def test_a_browser_on_the_vm_address_can_write_and_a_foreign_origin_cannot(compose_mlflow, users) -> None:
    trainer = users["trainer"]
    experiment_id = _experiment_id(compose_mlflow, trainer)
    browser = {"Host": f"{VM_HOST}:5000", "Origin": f"http://{VM_HOST}:5000", **_basic(trainer)}
    body = {"experiment_id": experiment_id, "run_name": "from-the-browser"}
    created = httpx.post(f"{compose_mlflow}/ajax-api/2.0/mlflow/runs/create", json=body, headers=browser, timeout=30)
    assert created.status_code == 200, created.text
    foreign = {**browser, "Origin": "http://attacker.example:5000"}
    blocked = httpx.post(f"{compose_mlflow}/ajax-api/2.0/mlflow/runs/create", json=body, headers=foreign, timeout=30)
    assert blocked.status_code == 403
    # another private address opens it too (MLflow's default private ranges are kept); a foreign name does not
    search = f"{compose_mlflow}/ajax-api/2.0/mlflow/experiments/search?max_results=1"
    other = {**_basic(trainer), "Host": "192.168.7.9:5000"}
    assert httpx.get(search, headers=other, timeout=30).status_code == 200
    rebinding = {**_basic(trainer), "Host": "attacker.example"}
    assert httpx.get(search, headers=rebinding, timeout=30).status_code == 403


def test_each_client_user_has_only_what_it_needs(compose_mlflow, users) -> None:
    experiment_id = _experiment_id(compose_mlflow, users["ui"])
    update = {"name": MODEL, "description": "changed"}
    for role in ("inference", "ui"):
        headers = _basic(users[role])
        model = httpx.get(
            f"{compose_mlflow}/api/2.0/mlflow/registered-models/get", params={"name": MODEL}, headers=headers
        )
        assert model.status_code == 200, (role, model.text)
        refused = httpx.patch(f"{compose_mlflow}/api/2.0/mlflow/registered-models/update", json=update, headers=headers)
        assert refused.status_code == 403, (role, refused.text)
        run = httpx.post(
            f"{compose_mlflow}/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id}, headers=headers
        )
        assert run.status_code == 403, (role, run.text)
    trainer = _basic(users["trainer"])
    changed = httpx.patch(f"{compose_mlflow}/api/2.0/mlflow/registered-models/update", json=update, headers=trainer)
    assert changed.status_code == 200, changed.text
