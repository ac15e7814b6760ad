"""What every page needs: the settings and the service clients built from them.

Settings are read on every script run (cheap), so a page never works from a
stale configuration, and a bad variable becomes a message, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from forestops.settings import Settings, SettingsError, load_settings
from forestops.ui.clients.airflow import AirflowClient
from forestops.ui.clients.datasource import DataSourceClient
from forestops.ui.clients.inference import InferenceClient
from forestops.ui.clients.mlflow_registry import MlflowRegistryClient

# Status calls must keep a page responsive; predictions may take longer.
STATUS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Services:
    settings: Settings
    datasource: DataSourceClient
    inference: InferenceClient
    mlflow: MlflowRegistryClient
    airflow: AirflowClient


def build_services(settings: Settings) -> Services:
    quick = min(STATUS_TIMEOUT_SECONDS, settings.http_timeout_seconds)
    password = settings.airflow_password.get_secret_value() if settings.airflow_password else None
    return Services(
        settings=settings,
        datasource=DataSourceClient(settings.datasource_url, quick),
        inference=InferenceClient(settings.inference_url, quick, settings.http_timeout_seconds),
        mlflow=MlflowRegistryClient(settings.mlflow_tracking_uri, settings.model_name, quick),
        airflow=AirflowClient(settings.airflow_url, settings.airflow_username, password, quick),
    )


def services_or_error() -> Services | SettingsError:
    try:
        return build_services(load_settings())
    except SettingsError as error:
        return error
