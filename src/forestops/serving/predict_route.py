"""``POST /predict``: what a prediction request goes through, served in front of FastAPI's stack.

Why in front: a single-row request through FastAPI's layers (the error
and exception middlewares, the body limit, the Prometheus middleware, the
router, FastAPI's request handling) cost about 0.4 ms of CPU on the
benchmark machine, as much as the 4,200-tree model itself, where uvicorn
alone answers in 0.03 ms.  At 8 connections that decided the p99.
``PredictRoute`` sits outside those layers and does, for this one route,
exactly what they did: the byte limit and its 413, the 422 that names the
field, the 503 that says why no model is loaded, and the same
``http_requests_total`` / ``http_request_duration_*`` samples, written by
the instrumentator's own function.  Every other route, including
``/predict`` with another method, goes on to FastAPI, and ``/predict``
keeps its FastAPI route for the OpenAPI document (the route calls
``predict_body`` too, so both paths give the same bytes).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from forestops.body_limit import ASGIApp, Receive, Scope, Send, declared_length, refusal
from forestops.serving import arrays, contract, validation_errors
from forestops.serving.batching import Answer, NoChampion
from forestops.serving.champion import ALIAS
from forestops.serving.predictors import RowBlock

if TYPE_CHECKING:
    from forestops.serving.app import Service

PATH = "/predict"
# Above this body size (about 100 rows), parsing, validation and rendering move to a worker
# thread so a big request does not hold up the small ones on the event loop.
OFF_LOOP_BODY_BYTES = 32_000
# From this body size (about ten rows) requests are parsed and checked column-wise (see ``parse_rows``).
ARRAY_PARSE_MIN_BYTES = 3_000
_JSON = [(b"content-type", b"application/json")]


def parse_request(body: bytes) -> Any:  # a contract.PredictRequest: built at import, not usable as a type
    try:
        return contract.parse_request(body)
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def parse_rows(body: bytes) -> RowBlock:
    """Plainly valid bodies at array speed; anything else through the pydantic models (and their 422s).

    Below about ten rows the pydantic models are the cheaper of the two (the
    array checks cost a fixed few tens of microseconds), above it the arrays,
    about twice as fast from a hundred rows on (CPU time, measured).
    """
    block = arrays.parse_block(body) if len(body) >= ARRAY_PARSE_MIN_BYTES else None
    if block is None:
        block = arrays.block_from_instances(parse_request(body).instances)
    return block


def render_predictions(answer: Answer) -> bytes:
    model = answer.model
    ref = {"name": model.name, "version": model.version, "alias": ALIAS}
    return arrays.render_predictions(ref, answer.class_ids, answer.probabilities)


def unprocessable(error: RequestValidationError) -> bytes:
    """The 422 body: each problem named, with the field's allowed domain."""
    return orjson.dumps({"detail": validation_errors.describe(error.errors())})


def unavailable(service: Service) -> bytes:
    """The 503 body: why no model is loaded and what to do about it."""
    return orjson.dumps({"detail": service.why_no_model()})


async def predict_body(service: Service, body: bytes) -> bytes:
    """The 200 body for a request body; raises RequestValidationError (422) or NoChampion (503)."""
    big = len(body) > OFF_LOOP_BODY_BYTES
    rows = await run_in_threadpool(parse_rows, body) if big else parse_rows(body)
    answer = await service.batcher.predict(rows)
    if service.shadow is not None:
        service.shadow.offer(rows, answer.model, answer.class_ids)  # enqueue or drop; never waits
    return await run_in_threadpool(render_predictions, answer) if big else render_predictions(answer)


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class PredictRoute:
    """ASGI middleware answering ``POST /predict`` itself; anything else goes on to ``app``."""

    def __init__(self, app: ASGIApp, service: Service, max_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, content = 500, b""  # what is counted if anything below raises
        try:
            status, content = await self._answer(scope, receive)
            headers = [*_JSON, (b"content-length", str(len(content)).encode())]
            if status == 413:  # the rest of the body is never read: this connection is done
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
        except _ClientGone:
            return  # nobody to answer
        except BaseException:
            self._count(scope, status, started, content)  # an unexpected error: answered 500 further out
            raise
        self._count(scope, status, started, content)

    def _count(self, scope: Scope, status: int, started: float, content: bytes) -> None:
        self.service.metrics.record_request(scope, status, time.perf_counter() - started, len(content))

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """Status and body, as FastAPI's stack would have answered."""
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            return 413, refusal(self.max_bytes)
        try:
            body = await self._read(receive)
        except _BodyTooLarge:
            return 413, refusal(self.max_bytes)
        try:
            return 200, await predict_body(self.service, body)
        except RequestValidationError as error:
            return 422, unprocessable(error)
        except NoChampion:
            return 503, unavailable(self.service)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
