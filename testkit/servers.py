"""Real backing servers for integration tests: moto's S3 server and MLflow."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

from .processes import VENV_BIN, forestops_argv, free_port, running

# What every MLflow process the tests start gets: no usage telemetry.
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}

S3_KEY_ID = "forestops-test"
S3_SECRET = "forestops-test-secret"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    bucket: str
    access_key_id: str = S3_KEY_ID
    secret_access_key: str = S3_SECRET

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name="us-east-1",
        )

    def env(self) -> dict[str, str]:
        """What an S3 client process (MLflow's server) needs."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def object_keys(self, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


@contextlib.contextmanager
def moto_s3(log_dir: Path, bucket: str = "mlflow") -> Iterator[S3Endpoint]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        "moto_server",
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        log_dir / "moto.log",
        f"{url}/moto-api/",
        timeout=60,
    ):
        endpoint = S3Endpoint(url=url, bucket=bucket)
        endpoint.client().create_bucket(Bucket=bucket)
        yield endpoint


AUTH_INI = Path(__file__).resolve().parents[1] / "docker" / "mlflow" / "basic_auth.ini"


@dataclass(frozen=True)
class MlflowAuth:
    """MLflow's basic-auth app as the compose runs it: docker/mlflow/basic_auth.ini, admin from the environment."""

    admin_username: str
    admin_password: str
    database_uri: str  # the auth app's own users database (replaces the ini's path in the container)
    secret_key: str = "forestops-test-flask-secret"

    def server_env(self, folder: Path) -> dict[str, str]:
        """What ``mlflow server --app-name basic-auth`` needs: the repository's ini, with only the database moved."""
        import configparser

        config = configparser.ConfigParser()
        config.read(AUTH_INI)
        config["mlflow"]["database_uri"] = self.database_uri
        folder.mkdir(parents=True, exist_ok=True)
        ini = folder / "basic_auth.ini"
        with ini.open("w") as handle:
            config.write(handle)
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": self.admin_username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key,
        }


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_store_uri: str
    artifacts_destination: str
    log_path: Path
    migrated: str | None = None  # what the one-shot migration job printed, when it ran first
    auth: MlflowAuth | None = None

    def env(self) -> dict[str, str]:
        """What a client process needs to use this server: MLflow's own credential variables (never argv)."""
        if self.auth is None:
            return {}
        return {
            "MLFLOW_TRACKING_USERNAME": self.auth.admin_username,
            "MLFLOW_TRACKING_PASSWORD": self.auth.admin_password,
        }


def migrate_mlflow_database(backend_store_uri: str, log_path: Path, timeout: float = 600) -> str:
    """Run the compose's one-shot job (``forestops mlflow-db-upgrade``) on ``backend_store_uri``.

    The URL goes in the environment, as in docker-compose.yml (it holds a password).  Returns the
    job's output; fails with it when the job fails.
    """
    env = {**os.environ, **TELEMETRY_OFF, "MLFLOW_BACKEND_STORE_URI": backend_store_uri}
    result = subprocess.run(
        forestops_argv("mlflow-db-upgrade"), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"forestops mlflow-db-upgrade failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout.strip()


@contextlib.contextmanager
def mlflow_server(
    log_dir: Path,
    backend_store_uri: str,
    artifacts: S3Endpoint | Path,
    prefix: str = "artifacts",
    timeout: float = 180,
    migrated: str | None = None,
    auth: MlflowAuth | None = None,
) -> Iterator[MlflowServer]:
    """``mlflow server`` with proxied artefacts, in S3 (as deployed) or in a local folder.

    ``prefix`` is the key prefix inside the S3 bucket; a folder is used as it is.  With ``auth``
    it runs MLflow's basic-auth app configured like the compose's (anonymous requests refused).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The backend URL in the environment, as in docker-compose.yml: it may hold a password.
    env = {**TELEMETRY_OFF, "MLFLOW_BACKEND_STORE_URI": backend_store_uri}
    if isinstance(artifacts, S3Endpoint):
        destination = f"s3://{artifacts.bucket}/{prefix}"
        env.update(artifacts.env())
    else:
        destination = str(artifacts)
    if auth is not None:
        env.update(auth.server_env(log_dir / "mlflow-auth"))
    argv = [
        str(VENV_BIN / "mlflow"),
        "server",
        *(["--app-name", "basic-auth"] if auth is not None else []),
        "--artifacts-destination",
        destination,
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log_path = log_dir / "mlflow.log"
    with running("mlflow server", argv, log_path, f"{url}/health", env=env, timeout=timeout):
        yield MlflowServer(
            url=url,
            backend_store_uri=backend_store_uri,
            artifacts_destination=destination,
            log_path=log_path,
            migrated=migrated,
            auth=auth,
        )
