"""The inference API: health, the loaded model, and predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from forestops.ui.clients.http import Exchange, ServiceError, exchange

SERVICE = "inference API"
MAX_ROWS_PER_REQUEST = 10_000  # the API's contract


@dataclass(frozen=True)
class RowPrediction:
    cover_type: int
    cover_type_name: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class PredictionReply:
    model_name: str
    model_version: str
    model_alias: str | None
    predictions: list[RowPrediction]

    @property
    def model_label(self) -> str:
        alias = f" (@{self.model_alias})" if self.model_alias else ""
        return f"{self.model_name} version {self.model_version}{alias}"


@dataclass(frozen=True)
class InferenceClient:
    base_url: str
    timeout: float = 5.0
    predict_timeout: float = 30.0

    def advice(self, status_code: int | None = None) -> str:
        if status_code == 503:
            return (
                "The API runs but has no model yet: train one (trigger `covertype_train` on the Pipeline page, "
                "or `forestops train`) and give it the `champion` alias."
            )
        if status_code == 422:
            return "The API rejected the input; the message names the field and what it accepts."
        return (
            f"Start it with `forestops inference` (or `make demo`), or point FORESTOPS_INFERENCE_URL "
            f"(now {self.base_url}) at a running one."
        )

    def _get(self, path: str) -> Exchange:
        return exchange(SERVICE, "GET", f"{self.base_url}{path}", timeout=self.timeout)

    def _json(self, record: Exchange) -> dict[str, Any] | ServiceError:
        if record.ok and isinstance(record.response_body, dict):
            return record.response_body
        if record.ok:
            return ServiceError(SERVICE, f"unexpected answer from {record.url}", self.advice(), record.status_code)
        return record.error(self.advice(record.status_code))

    def health(self) -> dict[str, Any] | ServiceError:
        return self._json(self._get("/health"))

    def ready(self) -> dict[str, Any] | ServiceError:
        return self._json(self._get("/ready"))

    def model(self) -> dict[str, Any] | ServiceError:
        return self._json(self._get("/model"))

    def predict_exchange(self, payload: Any) -> Exchange:
        return exchange(SERVICE, "POST", f"{self.base_url}/predict", json_body=payload, timeout=self.predict_timeout)

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> PredictionReply | ServiceError:
        """Predict any number of rows, in requests of at most the API's limit."""
        replies: list[PredictionReply] = []
        for start in range(0, len(instances), MAX_ROWS_PER_REQUEST):
            chunk = [dict(row) for row in instances[start : start + MAX_ROWS_PER_REQUEST]]
            reply = self.interpret_prediction(self.predict_exchange({"instances": chunk}))
            if isinstance(reply, ServiceError):
                return reply
            replies.append(reply)
        if not replies:
            return ServiceError(SERVICE, "nothing to predict", "Provide at least one row.")
        # A model swap between two chunks would mix versions; say so rather than hide it.
        versions = {r.model_version for r in replies}
        if len(versions) > 1:
            return ServiceError(
                SERVICE,
                f"the served model changed during the batch (versions {', '.join(sorted(versions))})",
                "Run the batch again.",
            )
        first = replies[0]
        return PredictionReply(
            first.model_name, first.model_version, first.model_alias, [p for r in replies for p in r.predictions]
        )

    def interpret_prediction(self, record: Exchange) -> PredictionReply | ServiceError:
        body = self._json(record)
        if isinstance(body, ServiceError):
            return body
        try:
            model = body["model"]
            predictions = [
                RowPrediction(int(p["cover_type"]), str(p["cover_type_name"]), dict(p.get("probabilities") or {}))
                for p in body["predictions"]
            ]
            return PredictionReply(str(model["name"]), str(model["version"]), model.get("alias"), predictions)
        except (KeyError, TypeError, ValueError) as error:
            return ServiceError(
                SERVICE,
                f"the answer of {record.url} does not follow the contract ({error!r})",
                "Check that FORESTOPS_INFERENCE_URL points at forestops' inference API.",
            )
