"""The FastAPI app: routes, start-up and the background watcher of the ``champion`` alias.

``uvicorn --factory forestops.serving.app:create_app`` (what ``forestops
inference`` runs) builds one app per worker from the environment.  Start-up
waits a short while for the first registry check and then serves anyway, so
a missing champion or a slow registry never stops the service from coming
up: it answers 503 until a model is loaded and picks one up by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from forestops import schema
from forestops.body_limit import BodyLimit
from forestops.monitoring.metrics import MonitoringMetrics
from forestops.redaction import redact
from forestops.serving import contract, predict_route
from forestops.serving.batching import Batcher, NoChampion
from forestops.serving.champion import ALIAS, ChampionWatcher
from forestops.serving.predict_route import PredictRoute, predict_body
from forestops.serving.shadow import ShadowScorer
from forestops.serving.telemetry import ServingMetrics
from forestops.settings import Settings, load_settings

log = logging.getLogger(__name__)

STARTUP_WAIT_SECONDS = 20.0


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json", headers=headers)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


class Service:
    """What the routes share: settings, the watcher, the batcher and the metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.watcher = ChampionWatcher(settings)
        self.metrics = ServingMetrics()
        self.monitoring = MonitoringMetrics(self.metrics.registry)
        self._monitoring_task: asyncio.Task | None = None
        self.batcher = Batcher(self.watcher.holder, on_predicted=self.metrics.record_predictions)
        # Shadow policy: the challenger also scores a sample of requests, off the request path.
        self.shadow = ShadowScorer(settings, self.metrics.registry) if settings.promotion_policy == "shadow" else None
        self._refresh_lock = asyncio.Lock()
        self._poller: asyncio.Task | None = None

    @property
    def holder(self):
        return self.watcher.holder

    async def refresh(self, force: bool = False) -> str:
        async with self._refresh_lock:
            outcome = await run_in_threadpool(self.watcher.refresh, force)
        if outcome == "load failed":
            self.metrics.load_failures.inc()
            if self.holder.load_failure is not None and self.holder.load_failure.refused:
                self.metrics.refused_models.inc()
        current = self.holder.current
        self.metrics.record_served(self.settings.model_name, current.version if current else None)
        return outcome

    async def _poll(self, first_check: asyncio.Event) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # never let the watcher die: the next tick tries again
                log.exception("checking the champion alias failed")
            if self.shadow is not None:
                try:
                    await run_in_threadpool(self.shadow.poll)
                except Exception:
                    log.exception("checking the challenger alias failed")
            first_check.set()
            await asyncio.sleep(self.settings.model_poll_seconds)

    async def _refresh_monitoring(self) -> None:
        """Keep the batch gauges of /metrics in step with batch_monitoring; a database that is down only pauses them."""
        from forestops.storage.db import make_engine

        settings = self.settings
        reader = settings.reader_database_url
        engine = make_engine(reader.get_secret_value() if reader else settings.raw_database_url)
        try:
            while True:
                try:
                    await run_in_threadpool(self.monitoring.refresh, engine)
                except Exception as error:  # a missing table or a database restart: retry next tick
                    log.info("monitoring gauges not refreshed: %s", redact(f"{type(error).__name__}: {error}")[:300])
                await asyncio.sleep(settings.monitor_metrics_refresh_seconds)
        finally:
            engine.dispose()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self.batcher.start()
        if self.shadow is not None:
            self.shadow.start()
        self._monitoring_task = asyncio.create_task(self._refresh_monitoring(), name="forestops-monitoring-gauges")
        first_check = asyncio.Event()
        self._poller = asyncio.create_task(self._poll(first_check), name="forestops-champion-watcher")
        try:
            await asyncio.wait_for(first_check.wait(), STARTUP_WAIT_SECONDS)
        except TimeoutError:
            log.warning("the registry did not answer within %ss; serving without a model for now", STARTUP_WAIT_SECONDS)
        if self.holder.current is None:
            log.warning(self.watcher.no_champion_message)
        yield
        for background in (self._poller, self._monitoring_task):
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
        await self.batcher.stop()
        if self.shadow is not None:
            await run_in_threadpool(self.shadow.stop)

    def model_info(self) -> dict[str, Any]:
        holder = self.holder
        current = holder.current
        failure = holder.load_failure
        return {
            "name": self.settings.model_name,
            "alias": ALIAS,
            "version": current.version if current else None,
            "run_id": current.run_id if current else None,
            "metrics": current.metrics if current else {},
            "loaded_at": _iso(current.loaded_at) if current else None,
            "predictor": current.predictor.kind if current else None,
            "predictor_fallback": current.predictor_fallback if current else None,
            "checked_at": _iso(holder.checked_at),
            "registry_error": holder.registry_error,
            "load_failure": {
                "version": failure.version,
                "error": failure.error,
                "at": _iso(failure.at),
                "refused": failure.refused,
            }
            if failure
            else None,
            "message": None if current else self.why_no_model(),
            "promotion_pin": self.watcher.pin,
        }

    def why_no_model(self) -> str:
        holder = self.holder
        uri = self.settings.mlflow_tracking_uri
        if holder.registry_error:
            return f"no model loaded: the MLflow registry at {uri} cannot be reached ({holder.registry_error})"
        if holder.checked_at is None:
            return f"no model loaded yet: waiting for the first answer of the MLflow registry at {uri}"
        return self.watcher.no_champion_message


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request model, which ``/predict`` parses itself (see ``predict``)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    request_schema = contract.PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(request_schema.pop("$defs", {}))
    components["PredictRequest"] = request_schema
    app.openapi_schema = document
    return document


_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/PredictRequest"},
                "examples": {
                    "one row": {
                        "summary": "One row of the data set (a Lodgepole Pine stand)",
                        "value": {"instances": [schema.example_features()]},
                    },
                    "variants": {
                        "summary": "Strings and spelling variants are normalised",
                        "value": {
                            "instances": [
                                {
                                    **{k: str(v) for k, v in schema.example_features().items()},
                                    "Wilderness_Area": "Comanche Peak",
                                    "Soil_Type": "7745",
                                }
                            ]
                        },
                    },
                },
            }
        },
    }
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    service = Service(settings)
    app = FastAPI(
        title="forestops inference API",
        version="1",
        description=(
            f"Predicts the forest cover type with the model holding the `{ALIAS}` alias of "
            f"`{settings.model_name}` in MLflow, and follows the alias without a restart."
        ),
        lifespan=service.lifespan,
    )
    app.state.service = service
    service.metrics.instrument(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    # Outermost of the app's own layers: POST /predict is answered here (see ``predict_route``).
    app.add_middleware(PredictRoute, service=service, max_bytes=settings.max_request_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        return Response(predict_route.unprocessable(error), status_code=422, media_type="application/json")

    @app.exception_handler(NoChampion)
    async def _no_champion(request: Request, error: NoChampion) -> Response:
        return Response(predict_route.unavailable(service), status_code=503, media_type="application/json")

    @app.post(
        "/predict",
        tags=["prediction"],
        summary="Predict the cover type of 1 to 10,000 rows",
        response_model=contract.PredictResponse,
        responses={
            422: {"description": "A field is missing, unknown or outside its domain; the detail names it."},
            503: {"description": "No champion model is loaded yet; the detail says how to get one."},
        },
        openapi_extra=_PREDICT_BODY,
    )
    async def predict(request: Request) -> Response:
        """Class id, name and all 7 probabilities per row, and the version that answered.

        The body is read and validated by the service rather than by FastAPI
        so that pydantic-core parses it straight from the bytes, and big
        requests are parsed in a worker thread instead of on the event loop.
        Requests that reach the app are answered by ``predict_route.PredictRoute``
        before this route; it is what the OpenAPI document shows.
        """
        return Response(await predict_body(service, await request.body()), media_type="application/json")

    @app.get("/model", tags=["operations"], response_model=contract.ModelInfo)
    async def model() -> Response:
        """The version being served, its run and metrics, and the last registry check."""
        return json_response(service.model_info())

    @app.get("/health", tags=["operations"])
    async def health() -> Response:
        """The process is up (a model may not be loaded yet: see /ready)."""
        return json_response({"status": "ok", "model_loaded": service.holder.current is not None})

    @app.get("/ready", tags=["operations"], responses={503: {"description": "No model loaded yet."}})
    async def ready() -> Response:
        """200 only when a model is loaded and requests can be answered."""
        current = service.holder.current
        if current is None:
            return json_response({"status": "not ready", "detail": service.why_no_model()}, 503)
        return json_response({"status": "ready", "model": {"name": current.name, "version": current.version}})

    @app.post(
        "/admin/reload",
        tags=["operations"],
        responses={401: {"description": "Missing or wrong token."}, 403: {"description": "Admin API disabled."}},
    )
    async def reload(authorization: Annotated[str | None, Header()] = None) -> Response:
        """Check the alias now (and retry a version that failed to load). Needs `Authorization: Bearer <token>`."""
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        if not token:
            return json_response(
                {"detail": "the admin API is disabled: set FORESTOPS_ADMIN_TOKEN to enable POST /admin/reload"}, 403
            )
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            return json_response(
                {"detail": "send the admin token as 'Authorization: Bearer <FORESTOPS_ADMIN_TOKEN>'"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        outcome = await service.refresh(force=True)
        return json_response({"outcome": outcome, "model": service.model_info()})

    return app
