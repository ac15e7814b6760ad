"""Airflow connections as an alternative to FORESTOPS_* URLs.

An operator who manages endpoints as Airflow connections (for example
``AIRFLOW_CONN_FORESTOPS_DATASOURCE=http://data-api:80``) can point the
ingest DAG elsewhere without touching FORESTOPS_* variables.  The DAG looks
the connections up (Airflow stays out of this package) and hands their URIs
here; a connection that exists wins over the setting.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

DATASOURCE_CONN_ID = "forestops_datasource"
RAW_DB_CONN_ID = "forestops_raw_db"

# Airflow connection types -> SQLAlchemy drivers this project installs.
_DRIVERS = {"mysql": "mysql+pymysql", "mariadb": "mysql+pymysql"}


def datasource_url_from_uri(uri: str) -> str:
    parts = urlsplit(uri)
    scheme = "https" if parts.scheme == "https" else "http"
    if not parts.hostname:
        raise ValueError(f"Airflow connection {DATASOURCE_CONN_ID} has no host: {uri!r}")
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def database_url_from_uri(uri: str) -> str:
    url = make_url(uri)
    url = url.set(drivername=_DRIVERS.get(url.drivername, url.drivername))
    return url.render_as_string(hide_password=False)


def settings_overrides(datasource_uri: str | None, database_uri: str | None) -> dict[str, str]:
    """FORESTOPS settings to override, from the URIs of the connections that exist."""
    overrides = {}
    if datasource_uri:
        overrides["datasource_url"] = datasource_url_from_uri(datasource_uri)
    if database_uri:
        overrides["database_url"] = database_url_from_uri(database_uri)
    return overrides
