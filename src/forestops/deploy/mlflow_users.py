"""One MLflow user per client, with only what it needs (the compose's ``mlflow-users`` job).

The compose MLflow runs MLflow's basic-auth app: anonymous requests are
refused and every signed-in user may read (``default_permission = READ`` in
docker/mlflow/basic_auth.ini).  Writing needs a grant.  This job, run as
MLflow's admin after the server is up, makes

* the training user (Airflow's tasks): EDIT on the experiment and on the
  registered model (log runs, register versions, move the aliases);
* the inference and UI users: READ on both (explicit, so they keep it if the
  default permission is ever lowered).

It creates the experiment and the registered model first (as the admin), so
that nobody becomes their owner with MANAGE by creating them.  Safe to run
on every start: an existing user gets the password from .env again (the
.env is the source of truth) and grants are set to exactly these values.

Credentials come from the environment only: the admin's in MLflow's own
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, each client's password in
MLFLOW_<ROLE>_PASSWORD.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from forestops.errors import ConfigurationError

EDIT = "EDIT"
READ = "READ"


@dataclass(frozen=True)
class ClientUser:
    role: str  # trainer, inference, ui
    permission: str  # on the experiment and the registered model

    @property
    def username_variable(self) -> str:
        return f"MLFLOW_{self.role.upper()}_USERNAME"

    @property
    def password_variable(self) -> str:
        return f"MLFLOW_{self.role.upper()}_PASSWORD"

    def username(self) -> str:
        return os.environ.get(self.username_variable) or f"forestops-{self.role}"

    def password(self) -> str:
        value = os.environ.get(self.password_variable, "")
        if not value:
            raise ConfigurationError(f"{self.password_variable} is not set (make up writes it to .env)")
        return value


CLIENTS: tuple[ClientUser, ...] = (
    ClientUser("trainer", EDIT),
    ClientUser("inference", READ),
    ClientUser("ui", READ),
)


def _not_found(error: Exception) -> bool:
    return getattr(error, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def _ensure_user(auth, username: str, password: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        auth.get_user(username)
    except MlflowException as error:
        if not _not_found(error):
            raise
        auth.create_user(username, password)
        return "created"
    auth.update_user_password(username, password)
    return "updated"


def _grant(auth, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Set exactly ``permission`` (the grant API refuses a second row, so replace an existing one)."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(username, resource_type, resource_id, permission)
    except MlflowException as error:
        if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, resource_type, resource_id)
        auth.grant_user_permission(username, resource_type, resource_id, permission)


def _ensure_experiment(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if not _not_found(error):
            raise
        client.create_registered_model(name)


def bootstrap(tracking_uri: str, experiment_name: str, model_name: str) -> list[str]:
    """Create or update the client users and their grants; returns one line per user."""
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    if not os.environ.get("MLFLOW_TRACKING_USERNAME") or not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        raise ConfigurationError(
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD must hold MLflow's admin credentials "
            "(MLFLOW_ADMIN_USERNAME / MLFLOW_ADMIN_PASSWORD in .env)"
        )
    auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = _ensure_experiment(client, experiment_name)
    _ensure_registered_model(client, model_name)
    lines = []
    for user in CLIENTS:
        username = user.username()
        outcome = _ensure_user(auth, username, user.password())
        _grant(auth, username, "experiment", experiment_id, user.permission)
        _grant(auth, username, "registered_model", model_name, user.permission)
        lines.append(
            f"{username}: {outcome}; {user.permission} on experiment {experiment_name!r} and model {model_name!r}"
        )
    return lines
