"""The MLflow tracking server, configured from settings.

Embedded mode keeps metadata in SQLite and artefacts in a local folder; server
mode (``FORESTOPS_MYSQL_URL`` and ``FORESTOPS_S3_ENDPOINT_URL`` set) uses a
MySQL database and an S3 bucket, the way the compose deployment does.  Either
way the server proxies artefacts (``--artifacts-destination``), so clients
(DAG tasks, serving, the UI) need only the tracking URI, never S3 keys.
"""

from __future__ import annotations

import logging
import os

from forestops.errors import ConfigurationError
from forestops.local.supervise import installed_command
from forestops.redaction import redact, redact_argv
from forestops.settings import Settings

log = logging.getLogger(__name__)


class MlflowConfigError(ConfigurationError):
    """The MLflow server cannot start with these settings; the message says what to set."""


def server_mode(settings: Settings) -> bool:
    return bool(settings.mysql_url and settings.s3_endpoint_url)


def backend_store_uri(settings: Settings) -> str:
    if settings.mysql_url:
        return f"{settings.mysql_url}/{settings.mlflow_database}"
    return f"sqlite:///{(settings.home / 'mlflow.db').resolve()}"


def artifacts_destination(settings: Settings) -> str:
    if settings.s3_endpoint_url:
        return f"s3://{settings.s3_bucket}/artifacts"
    return str((settings.home / "mlartifacts").resolve())


def s3_environment(settings: Settings) -> dict[str, str]:
    """What the server process (only it) needs to reach the bucket."""
    if not settings.s3_endpoint_url:
        return {}
    if not settings.s3_access_key_id or not settings.s3_secret_access_key:
        raise MlflowConfigError(
            "FORESTOPS_S3_ENDPOINT_URL is set but FORESTOPS_S3_ACCESS_KEY_ID / FORESTOPS_S3_SECRET_ACCESS_KEY "
            "are not: set both keys of the S3 endpoint"
        )
    return {
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": settings.s3_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_access_key.get_secret_value(),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def ensure_backend_database(settings: Settings) -> None:
    """Create MLflow's MySQL database when missing (MLflow creates tables, not databases)."""
    if not settings.mysql_url:
        settings.home.mkdir(parents=True, exist_ok=True)
        return
    import sqlalchemy as sa

    engine = sa.create_engine(settings.mysql_url, connect_args={"connect_timeout": 10})
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    f"CREATE DATABASE IF NOT EXISTS `{settings.mlflow_database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
            )
    except sa.exc.SQLAlchemyError as error:
        # What the DBAPI said (connect and execute errors wrap it); other SQLAlchemy errors speak for themselves.
        cause = error.orig if isinstance(error, sa.exc.DBAPIError) else error
        raise MlflowConfigError(
            f"cannot create MLflow's database {settings.mlflow_database!r} on FORESTOPS_MYSQL_URL: {cause!s}; "
            "create it yourself or give that user the CREATE privilege"
        ) from None
    finally:
        engine.dispose()


def ensure_bucket(settings: Settings) -> None:
    """Create the artefact bucket when the endpoint does not have it yet."""
    if not settings.s3_endpoint_url:
        return
    import boto3
    import botocore.exceptions

    environment = s3_environment(settings)
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=environment["AWS_DEFAULT_REGION"],
    )
    try:
        client.head_bucket(Bucket=settings.s3_bucket)
    except botocore.exceptions.ClientError:
        client.create_bucket(Bucket=settings.s3_bucket)
        log.info("created bucket %s at %s", settings.s3_bucket, settings.s3_endpoint_url)
    except botocore.exceptions.EndpointConnectionError as error:
        raise MlflowConfigError(f"FORESTOPS_S3_ENDPOINT_URL does not answer: {error}") from None


def mlflow_executable() -> str:
    command = installed_command("mlflow")
    if command is None:
        raise MlflowConfigError("the `mlflow` command is not installed: run `make install`")
    return command


def server_environment(settings: Settings) -> dict[str, str]:
    """What ``mlflow server`` reads from its environment rather than its argv.

    The backend store URI holds the MySQL password in server mode, and a
    command line is readable by every user of the machine (``ps``,
    ``/proc/<pid>/cmdline``): ``mlflow server`` reads ``--backend-store-uri``
    from ``MLFLOW_BACKEND_STORE_URI`` too, and its workers inherit it from
    the environment as well.
    """
    return {"MLFLOW_BACKEND_STORE_URI": backend_store_uri(settings), **s3_environment(settings)}


def server_argv(settings: Settings, host: str, port: int, workers: int = 1) -> list[str]:
    """The command line: nothing secret on it (see :func:`server_environment`)."""
    return [
        mlflow_executable(),
        "server",
        "--artifacts-destination",
        artifacts_destination(settings),
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def serve(settings: Settings, host: str = "127.0.0.1", port: int | None = None, workers: int = 1) -> None:
    """Prepare the backend and bucket, then replace this process with ``mlflow server``.

    ``exec`` keeps one pid for the supervisor to track and stop.
    """
    ensure_backend_database(settings)
    ensure_bucket(settings)
    argv = server_argv(settings, host, port or settings.mlflow_port, workers)
    environment = {**os.environ, **server_environment(settings)}
    log.info("starting %s (backend store %s)", " ".join(redact_argv(argv)), redact(backend_store_uri(settings)))
    os.execve(argv[0], argv, environment)
