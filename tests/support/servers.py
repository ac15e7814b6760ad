"""Real backing servers for integration tests: moto's S3 server and MLflow."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

from .processes import VENV_BIN, free_port, running

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


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_store_uri: str
    artifacts_destination: str
    log_path: Path


@contextlib.contextmanager
def mlflow_server(
    log_dir: Path,
    backend_store_uri: str,
    artifacts: S3Endpoint | Path,
    prefix: str = "artifacts",
    timeout: float = 180,
) -> Iterator[MlflowServer]:
    """``mlflow server`` with proxied artefacts, in S3 (as deployed) or in a local folder.

    ``prefix`` is the key prefix inside the S3 bucket; a folder is used as it is.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if isinstance(artifacts, S3Endpoint):
        destination, env = f"s3://{artifacts.bucket}/{prefix}", artifacts.env()
    else:
        destination, env = str(artifacts), None
    argv = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_store_uri,
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
            url=url, backend_store_uri=backend_store_uri, artifacts_destination=destination, log_path=log_path
        )
