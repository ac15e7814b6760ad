"""The MLflow model registry over its REST API: versions, aliases, tags, run metrics, pictures.

We call the REST endpoints with httpx rather than ``MlflowClient`` because
the client retries a dead server for minutes; a page must answer in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from forestops import names
from forestops.training.pin import Pin
from forestops.ui.clients.http import Exchange, ServiceError, exchange

SERVICE = "MLflow"
PROMOTION_TAGS = (names.TAG_DECISION, names.TAG_CANDIDATE_SCORE, names.TAG_CHAMPION_SCORE, names.TAG_PRIMARY_METRIC)
NO_PREVIOUS_CHAMPION = "no previous champion"


@dataclass(frozen=True)
class ModelVersion:
    version: int
    run_id: str | None
    status: str
    created_at: datetime | None
    aliases: tuple[str, ...]
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    experiment_id: str | None = None
    run_name: str | None = None


def promotion_cells(tags: dict[str, str]) -> dict[str, str | None]:
    """The promotion tags of a version as a table shows them.

    A training's decision always records ``candidate_score``; it records
    ``champion_score`` only when a champion existed (older versions may hold
    ""), so a decided version without one was compared with nobody.
    """
    cells = {tag: tags.get(tag) or None for tag in PROMOTION_TAGS}
    if cells[names.TAG_CANDIDATE_SCORE] and not cells[names.TAG_CHAMPION_SCORE]:
        cells[names.TAG_CHAMPION_SCORE] = NO_PREVIOUS_CHAMPION
    return cells


def _basic_auth() -> dict[str, str] | None:
    """MLflow's own client credentials (MLFLOW_TRACKING_USERNAME / _PASSWORD) as a header, when set.

    The compose stack's MLflow runs its basic-auth app; the UI signs in as its read-only user.
    """
    import base64
    import os

    username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not username or password is None:
        return None
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class MlflowRegistryClient:
    base_url: str
    model_name: str
    timeout: float = 5.0

    @property
    def advice(self) -> str:
        return (
            f"Start it with `forestops mlflow-server` (or `make demo`), or point FORESTOPS_MLFLOW_TRACKING_URI "
            f"(now {self.base_url}) at a running one."
        )

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Exchange:
        return exchange(
            SERVICE, "GET", f"{self.base_url}{path}", params=params, timeout=self.timeout, headers=_basic_auth()
        )

    def health(self) -> str | ServiceError:
        record = self._get("/health")
        return str(record.response_body) if record.ok else record.error(self.advice)

    def promotion_pin(self) -> Pin | ServiceError | None:
        """The registered model's pin (automatic promotion paused), None when unpinned or not registered."""
        model = self._get("/api/2.0/mlflow/registered-models/get", {"name": self.model_name})
        body = model.response_body
        if isinstance(body, dict) and body.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
            return None
        if not model.ok or not isinstance(body, dict):
            return model.error(self.advice)
        tags = {t["key"]: t.get("value", "") for t in body.get("registered_model", {}).get("tags", [])}
        text = tags.get(names.TAG_PROMOTION_PIN)
        return None if text is None else Pin.from_tag(text)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.base_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, version: int) -> str:
        return f"{self.base_url}/#/models/{quote(self.model_name)}/versions/{version}"

    def versions(self, limit: int = 100) -> list[ModelVersion] | ServiceError:
        """Registered versions, newest first, with their aliases, promotion tags and run metrics."""
        try:
            return self._versions(limit)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            return ServiceError(
                SERVICE,
                f"unexpected registry answer from {self.base_url} ({error!r})",
                "Check that FORESTOPS_MLFLOW_TRACKING_URI points at an MLflow 3 server.",
            )

    def _versions(self, limit: int) -> list[ModelVersion] | ServiceError:
        model = self._get("/api/2.0/mlflow/registered-models/get", {"name": self.model_name})
        body = model.response_body
        if isinstance(body, dict) and body.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
            return []  # MLflow's answer for a model nobody registered yet
        if not model.ok:
            return model.error(self.advice)
        aliases: dict[str, list[str]] = {}
        for entry in model.response_body.get("registered_model", {}).get("aliases", []):
            aliases.setdefault(str(entry["version"]), []).append(entry["alias"])

        search = self._get(
            "/api/2.0/mlflow/model-versions/search",
            {"filter": f"name='{self.model_name}'", "max_results": limit, "order_by": "version_number DESC"},
        )
        if not search.ok:
            return search.error(self.advice)
        return self._parse_versions(search.response_body.get("model_versions", []), aliases)

    def _parse_versions(self, raw_versions: list[dict[str, Any]], aliases: dict[str, list[str]]):
        versions = []
        for raw in raw_versions:
            run_id = raw.get("run_id") or None
            run = self._run(run_id) if run_id else None
            if isinstance(run, ServiceError):
                return run
            created = raw.get("creation_timestamp")
            versions.append(
                ModelVersion(
                    version=int(raw["version"]),
                    run_id=run_id,
                    status=str(raw.get("status", "")),
                    created_at=datetime.fromtimestamp(int(created) / 1000, UTC) if created else None,
                    aliases=tuple(sorted(aliases.get(str(raw["version"]), []))),
                    tags={t["key"]: t.get("value", "") for t in raw.get("tags", [])},
                    metrics=run["metrics"] if run else {},
                    experiment_id=run["experiment_id"] if run else None,
                    run_name=run["run_name"] if run else None,
                )
            )
        return sorted(versions, key=lambda v: v.version, reverse=True)

    def _run(self, run_id: str) -> dict[str, Any] | ServiceError:
        record = self._get("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        if not record.ok:
            return record.error(self.advice)
        run = record.response_body.get("run", {})
        info = run.get("info", {})
        return {
            "metrics": {m["key"]: float(m["value"]) for m in run.get("data", {}).get("metrics", [])},
            "experiment_id": info.get("experiment_id"),
            "run_name": info.get("run_name"),
        }

    def artifact(self, run_id: str, path: str = names.CONFUSION_MATRIX_FILE) -> bytes | ServiceError:
        """An artefact of a run, read through the server (works with proxied artefact storage)."""
        record = self._get("/get-artifact", {"run_uuid": run_id, "path": path})
        if record.ok and record.content:
            return record.content
        if record.status_code in (400, 404) or (record.ok and not record.content):
            return ServiceError(
                SERVICE,
                f"run {run_id} has no artefact {path}",
                "The training run did not log it; versions trained by `covertype_train` have one.",
                record.status_code,
            )
        return record.error(self.advice)
