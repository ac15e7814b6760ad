"""Prometheus metrics: HTTP metrics of every request plus what the model does.

Each app gets its own registry so that several apps in one process (tests)
do not collide on metric names.  With several uvicorn workers
(``forestops.serving.server``) prometheus_client runs in multiprocess mode:
every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and
whichever worker answers ``/metrics`` reports all of them (counters summed;
the served version is the one a live worker set most recently).

The HTTP metrics are the five families of prometheus-fastapi-instrumentator's
default set, with the same names, help texts, labels and buckets (the
dashboard and the alerts query them), recorded by ``HttpMetrics`` below
instead of the instrumentator's middleware.  That middleware built a
``Request``, a ``Response`` and its ``Headers``, matched the path against
every route and awaited an empty ``asyncio.gather`` on every request: about
a sixth of the service's Python time per single-row ``/predict`` (profiled).
The instrumentator still serves ``/metrics`` (multiprocess collection).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.routing import get_route_name
from starlette.requests import HTTPConnection

from forestops import schema
from forestops.body_limit import ASGIApp, Message, Receive, Scope, Send
from forestops.serving.champion import ServedModel

# The instrumentator's defaults, kept so that recorded histograms stay comparable across versions.
LATENCY_HIGHR_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.5,
    2,
    2.5,
    3,
    3.5,
    4,
    4.5,
    5,
    7.5,
    10,
    30,
    60,
)
LATENCY_LOWR_BUCKETS = (0.1, 0.5, 1)
METRICS_ENDPOINT = "/metrics"
# Handlers are resolved once per (method, path); unrouted paths (scanners) are endless, so the cache is bounded.
HANDLER_CACHE_SIZE = 512
CHILDREN_CACHE_SIZE = 512


class HttpMetrics:
    """A pure ASGI middleware recording the instrumentator's default HTTP metrics, per request.

    Same semantics as the instrumentator's middleware with the options this
    service used: the handler is the matched route's path template (a route
    whose path matches but not its method counts too), ``none`` when no route
    matches; ``/metrics`` itself is not counted; statuses are grouped
    (``2xx``); an exception counts as ``5xx``; sizes are the ``Content-Length``
    headers (0 when absent); the duration runs until the app returns.  The
    handler of a (method, path) is resolved once, by the instrumentator's own
    route matching, and remembered.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, excluded_handlers: Sequence[str] = ()) -> None:
        self.app = app
        self.excluded = tuple(excluded_handlers)  # plain substrings (the instrumentator's were regular expressions)
        self.total = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ("method", "status", "handler"),
            registry=registry,
        )
        self.request_size = Summary(
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. "
            "No percentile calculated. ",
            ("handler",),
            registry=registry,
        )
        self.response_size = Summary(
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. "
            "No percentile calculated. ",
            ("handler",),
            registry=registry,
        )
        self.latency_highr = Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
            buckets=LATENCY_HIGHR_BUCKETS,
            registry=registry,
        )
        self.latency_lowr = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
            ("method", "handler"),
            buckets=LATENCY_LOWR_BUCKETS,
            registry=registry,
        )
        self._handlers: dict[tuple[str, str], str | None] = {}
        self._series: dict[tuple[str, int, str], tuple[Any, Any, Any, Any]] = {}

    def _handler(self, scope: Scope) -> str | None:
        """The handler label of a request, or None when it is not counted."""
        key = (scope["method"], scope["path"])
        try:
            return self._handlers[key]
        except KeyError:
            pass
        handler = get_route_name(HTTPConnection(scope), should_include_root_path=False) or "none"
        # The instrumentator searched its patterns in the route's template, or in the raw path when no route matched.
        name = handler if handler != "none" else scope["path"]
        counted = None if any(pattern in name for pattern in self.excluded) else handler
        if len(self._handlers) < HANDLER_CACHE_SIZE:
            self._handlers[key] = counted
        return counted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        handler = self._handler(scope)
        if handler is None:
            await self.app(scope, receive, send)
            return
        status = 500
        response_bytes = 0

        async def recording_send(message: Message) -> None:
            nonlocal status, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                response_bytes = _content_length(message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            duration = max(time.perf_counter() - started, 0.0)
            total, request_size, response_size, latency = self._children(scope["method"], status, handler)
            total.inc()
            request_size.observe(_content_length(scope["headers"]))
            response_size.observe(response_bytes)
            self.latency_highr.observe(duration)
            latency.observe(duration)

    def _children(self, method: str, status: int, handler: str) -> tuple[Any, Any, Any, Any]:
        """The labelled series of a request, looked up once per (method, status, handler) and kept.

        ``labels()`` takes a lock and builds a key on every call; four per
        request were a tenth of the middleware's time.  Handlers are bounded
        (route templates and ``none``), and so are methods and statuses in
        practice; past ``CHILDREN_CACHE_SIZE`` combinations the lookups are
        simply not kept.
        """
        key = (method, status, handler)
        children = self._series.get(key)
        if children is None:
            children = (
                self.total.labels(method, f"{str(int(status))[0]}xx", handler),
                self.request_size.labels(handler),
                self.response_size.labels(handler),
                self.latency_lowr.labels(method, handler),
            )
            if len(self._series) < CHILDREN_CACHE_SIZE:
                self._series[key] = children
        return children


def _content_length(headers) -> int:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value)
    return 0


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.served_version = Gauge(
            "forestops_served_model_version",
            "Registry version of the model being served (0: none loaded).",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )
        self.predictions = Counter(
            "forestops_predictions",
            "Rows predicted, by predicted cover type.",
            ["cover_type"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "forestops_model_load_failures",
            "Champion versions that could not be loaded (the previous model kept serving).",
            registry=self.registry,
        )
        self.refused_models = Counter(
            "forestops_model_refusals",
            "Champion versions refused because loading them could run code (not skops, or untrusted types).",
            registry=self.registry,
        )
        self._by_class = [self.predictions.labels(name) for name in schema.COVER_TYPES]

    def instrument(self, app: FastAPI) -> None:
        app.add_middleware(HttpMetrics, registry=self.registry, excluded_handlers=[METRICS_ENDPOINT])
        Instrumentator(registry=self.registry).expose(
            app, endpoint=METRICS_ENDPOINT, include_in_schema=True, tags=["operations"]
        )

    def record_predictions(self, model: ServedModel, class_ids: np.ndarray) -> None:
        counts = np.bincount(class_ids, minlength=schema.N_CLASSES)
        for class_id, count in enumerate(counts.tolist()):
            if count:
                self._by_class[class_id].inc(count)

    def record_served(self, model_name: str, version: str | None) -> None:
        self.served_version.labels(model_name).set(int(version) if version and version.isdigit() else 0)
