"""A byte limit on request bodies, enforced before anything parses them.

A pure ASGI middleware (no Starlette ``BaseHTTPMiddleware``, which would
buffer the body first): a declared ``Content-Length`` above the limit is
answered ``413`` without reading a byte, and a chunked (or lying) body is
counted as it arrives and cut off the moment it passes the limit.  Either
way the worker never holds more than about one limit's worth of a request,
so a stream of oversized requests cannot grow its memory.

Used by the inference API and the data API:
``app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the body passes the limit; turned into a 413 here."""


def too_large_message(max_bytes: int) -> str:
    return (
        f"request body larger than the limit of {max_bytes:,} bytes (FORESTOPS_MAX_REQUEST_BYTES); "
        "send fewer rows per request"
    )


class BodyLimit:
    """Answer 413 to any request whose body is larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:  # the app answered before reading everything; nothing more to say
                return
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = refusal(self.max_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is never read: tell the client this connection is done.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def refusal(max_bytes: int) -> bytes:
    """The 413 body."""
    return orjson.dumps({"detail": too_large_message(max_bytes), "max_request_bytes": max_bytes})


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, if it declares a valid one."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed length itself; the count still applies
    return None
