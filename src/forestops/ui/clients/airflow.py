"""Airflow's REST API v2: a token from ``/auth/token``, DAG runs, triggers, health."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from forestops import names
from forestops.ui.clients.http import Exchange, ServiceError, exchange

SERVICE = "Airflow"
PIPELINE_DAGS = (names.DAG_INGEST, names.DAG_TRAIN)
# Airflow answered, but not to us: credentials missing or wrong (not "down").
LOGIN_REFUSED_STATUSES = (401, 403)
LOGIN_REFUSED = "login refused"


def login_refused(error: ServiceError) -> bool:
    """True when Airflow answered and refused the UI's credentials (it is up; the login is the problem)."""
    return error.service == SERVICE and error.problem.startswith(LOGIN_REFUSED)


# Tokens are valid for a while (24 h by default); keeping one per (url, user, password) saves a login
# per page view, and a changed password is never masked by the token of the old one.
_tokens: dict[tuple[str, str, str], str] = {}
_tokens_lock = threading.Lock()


@dataclass(frozen=True)
class AirflowClient:
    base_url: str
    username: str
    password: str | None
    timeout: float = 5.0

    @property
    def advice(self) -> str:
        return (
            f"Start Airflow's API server and scheduler (`make demo` starts them), or point FORESTOPS_AIRFLOW_URL "
            f"(now {self.base_url}) at a running one."
        )

    @property
    def login_advice(self) -> str:
        """Which settings hold the UI's Airflow credentials (never their values)."""
        if self.password is None:
            return (
                "The UI has no Airflow password: set FORESTOPS_AIRFLOW_PASSWORD (and FORESTOPS_AIRFLOW_USERNAME, "
                f"now {self.username!r}) to an Airflow user allowed to read and trigger DAGs. `make demo` sets "
                "them for the UI it starts; a `forestops ui` started by hand needs them in its environment."
            )
        return (
            f"Airflow refused user {self.username!r} with the password in FORESTOPS_AIRFLOW_PASSWORD: check "
            "FORESTOPS_AIRFLOW_USERNAME / FORESTOPS_AIRFLOW_PASSWORD (an Airflow user allowed to read and trigger "
            "DAGs)."
        )

    def refused(self, record: Exchange) -> ServiceError:
        """Airflow answered but refused the login (or the token): "login refused", not "down"."""
        error = record.error(self.login_advice)
        return ServiceError(SERVICE, f"{LOGIN_REFUSED}: {error.problem}", self.login_advice, record.status_code)

    # -- authentication ------------------------------------------------------
    def login_exchange(self) -> Exchange:
        """``POST /auth/token`` with the credentials; without a password, the no-login token of an open Airflow."""
        url = f"{self.base_url}/auth/token"
        if self.password is None:
            return exchange(SERVICE, "GET", url, timeout=self.timeout)
        body = {"username": self.username, "password": self.password}
        return exchange(SERVICE, "POST", url, json_body=body, timeout=self.timeout, secret_body=True)

    def token(self, refresh: bool = False) -> str | ServiceError:
        key = (self.base_url, self.username, hashlib.sha256((self.password or "").encode()).hexdigest())
        with _tokens_lock:
            if not refresh and key in _tokens:
                return _tokens[key]
        record = self.login_exchange()
        if record.transport_error is not None or (record.status_code or 0) >= 500:
            return record.error(self.advice)
        if not record.ok:
            return self.refused(record)
        token = record.response_body.get("access_token") if isinstance(record.response_body, dict) else None
        if not token:
            return ServiceError(SERVICE, f"{record.url} returned no access_token", self.advice)
        with _tokens_lock:
            _tokens[key] = token
        return token

    def api_exchange(self, method: str, path: str, **kwargs: Any) -> Exchange | ServiceError:
        """An authenticated call to ``/api/v2``; a stale token is renewed once."""
        for attempt in range(2):
            token = self.token(refresh=attempt > 0)
            if isinstance(token, ServiceError):
                return token
            record = exchange(
                SERVICE,
                method,
                f"{self.base_url}/api/v2{path}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
                **kwargs,
            )
            if record.status_code != 401:
                return record
        return record

    def _json(self, record: Exchange | ServiceError) -> dict[str, Any] | ServiceError:
        if isinstance(record, ServiceError):
            return record
        if record.ok and isinstance(record.response_body, dict):
            return record.response_body
        if record.status_code == 404:
            return record.error(
                "Airflow does not know this DAG: check that the dags folder holds the project's DAGs and "
                "that the DAG processor has parsed them."
            )
        if record.status_code in LOGIN_REFUSED_STATUSES:
            return self.refused(record)
        return record.error(self.advice)

    # -- reads ---------------------------------------------------------------
    def health(self) -> dict[str, Any] | ServiceError:
        """``/api/v2/monitor/health``: needs no login, so it tells "down" from "cannot log in".

        Behind a proxy that asks for a login it answers 401/403: that is "login refused" too.
        """
        record = exchange(SERVICE, "GET", f"{self.base_url}/api/v2/monitor/health", timeout=self.timeout)
        return self._json(record)

    def dag(self, dag_id: str) -> dict[str, Any] | ServiceError:
        return self._json(self.api_exchange("GET", f"/dags/{dag_id}"))

    def dag_runs(self, dag_id: str, limit: int = 10) -> list[dict[str, Any]] | ServiceError:
        """The most recent runs first."""
        body = self._json(
            self.api_exchange("GET", f"/dags/{dag_id}/dagRuns", params={"limit": limit, "order_by": "-id"})
        )
        if isinstance(body, ServiceError):
            return body
        return list(body.get("dag_runs", []))

    # -- actions -------------------------------------------------------------
    def trigger_exchange(self, dag_id: str, conf: dict[str, Any] | None = None) -> Exchange | ServiceError:
        return self.api_exchange(
            "POST", f"/dags/{dag_id}/dagRuns", json_body={"logical_date": None, "conf": conf or {}}
        )

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any] | ServiceError:
        return self._json(self.trigger_exchange(dag_id, conf))
