"""One HTTP call, recorded, and turned into data or a clear error.

Every client goes through ``exchange()``, which never raises for network or
HTTP problems: it records what was sent and what came back (or why nothing
came back).  The API console shows that record as it is; the other pages use
``ServiceError`` to tell the user what failed and what to do about it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

REDACTED = "***"


@dataclass(frozen=True)
class ServiceError:
    """A service that did not give us what we asked for, said for a person."""

    service: str
    problem: str
    advice: str
    status_code: int | None = None

    def __str__(self) -> str:
        return f"{self.service}: {self.problem}"


@dataclass
class Exchange:
    """A request and its response (or the transport error), for display and interpretation."""

    service: str
    method: str
    url: str
    params: dict[str, Any] | None = None
    request_body: Any = None
    request_headers: dict[str, str] = field(default_factory=dict)
    status_code: int | None = None
    response_body: Any = None
    elapsed_ms: float = 0.0
    transport_error: str | None = None
    content: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.transport_error is None and self.status_code is not None and 200 <= self.status_code < 300

    def error(self, advice: str) -> ServiceError:
        """The failure of this exchange as a ``ServiceError`` (call only when not ``ok``)."""
        if self.transport_error is not None:
            return ServiceError(self.service, f"no answer from {self.url} ({self.transport_error})", advice)
        detail = error_detail(self.response_body)
        return ServiceError(
            self.service, f"HTTP {self.status_code} from {self.url}: {detail}", advice, self.status_code
        )


def error_detail(body: Any) -> str:
    """The human part of an error body: FastAPI ``detail``, MLflow ``message``, else the text."""
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message"))
        if isinstance(detail, list):  # FastAPI/pydantic validation errors
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    location = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{location}: {item.get('msg')}" if location else str(item.get("msg")))
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        if detail is not None:
            return detail if isinstance(detail, str) else json.dumps(detail)
        return json.dumps(body)[:500]
    text = str(body or "").strip()
    return text[:500] if text else "(empty body)"


def _describe_transport_error(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return f"{type(error).__name__}: {error}"


def exchange(
    service: str,
    method: str,
    url: str,
    *,
    timeout: float,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    secret_body: bool = False,
) -> Exchange:
    """Send one request; record it whatever happens.

    ``secret_body`` keeps credentials (Airflow's login) out of the record, and
    an ``Authorization`` header is always shown redacted.
    """
    shown_headers = {k: (REDACTED if k.lower() == "authorization" else v) for k, v in (headers or {}).items()}
    record = Exchange(
        service=service,
        method=method,
        url=url,
        params=params,
        request_body=REDACTED if secret_body else (json_body if json_body is not None else form),
        request_headers=shown_headers,
    )
    started = time.perf_counter()
    try:
        response = httpx.request(
            method, url, params=params, json=json_body, data=form, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as error:
        record.transport_error = _describe_transport_error(error)
    else:
        record.status_code = response.status_code
        record.content = response.content
        record.response_body = _decode(response)
    record.elapsed_ms = (time.perf_counter() - started) * 1000
    return record


def _decode(response: httpx.Response) -> Any:
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return response.json()
        except ValueError:
            pass
    if content_type.startswith(("text/", "application/json")) or not content_type:
        return response.text
    return f"<{len(response.content)} bytes of {content_type}>"
