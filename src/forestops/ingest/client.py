"""HTTP client of the batch data API (ours or the course's).

The API is flaky by design: it may time out, answer 500, or send a body that
is not what the contract says.  Transport errors and 5xx are retried with
exponential backoff; a body that cannot be read is handed back as
``unreadable`` (to be quarantined, never a crash); a 400 for our group after
the last batch means the collection is complete.  Only a request the server
rejects because of *our* configuration (bad group, wrong URL) is an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from forestops.errors import ConfigurationError, ServiceUnavailable
from forestops.redaction import redact
from forestops.schema import parse_int
from forestops.settings import Settings

log = logging.getLogger(__name__)

DATA_PATH = "/data"
RESTART_PATH = "/restart_data_generation"

# A 400 is "collection complete" unless its detail says the group itself is
# wrong.  Our server and the course's word these differently (English /
# Spanish), so match the idea, not a sentence.
_INVALID_GROUP = re.compile(
    r"must be|invalid|not valid|out of range|unknown group|does not exist|inv[aá]lid|no v[aá]lid|"
    r"fuera de rango|no existe",
    re.IGNORECASE,
)


class DataApiConfigurationError(ConfigurationError, ValueError):
    """The data API refuses our request itself: wrong group or wrong URL."""


class DataApiUnavailable(ServiceUnavailable):
    """The data API did not answer usefully within the allowed retries."""


class _ServerError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}: {response.text[:300]}")


@dataclass(frozen=True)
class FetchResult:
    """What one ``GET /data`` produced.

    ``portion``: rows to validate; ``unreadable``: a body to quarantine with
    ``reason``; ``complete``: every batch has been served (``detail`` is the
    server's own words).
    """

    kind: Literal["portion", "unreadable", "complete"]
    group_number: int
    batch_number: int | None = None
    rows: list[Any] = field(default_factory=list)
    body: str = ""
    reason: str = ""
    detail: str = ""
    attempts: int = 1


def _transient(error: BaseException) -> bool:
    return isinstance(error, (httpx.TransportError, _ServerError))


def _detail(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(payload, dict) and "detail" in payload:
        detail = payload["detail"]
        return detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    return response.text.strip()[:500]


def describe_transport_error(error: BaseException) -> str:
    if isinstance(error, _ServerError):
        return str(error)
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"


def parse_portion(body: bytes, group_number: int) -> FetchResult:
    """Read a 200 body; anything off-contract becomes ``unreadable`` with the reason."""
    text = body.decode("utf-8", errors="backslashreplace")

    def unreadable(reason: str, batch: int | None = None) -> FetchResult:
        return FetchResult("unreadable", group_number, batch_number=batch, body=text, reason=reason)

    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return unreadable(f"malformed JSON: {error}")
    if not isinstance(payload, dict):
        return unreadable(f"expected a JSON object, got {type(payload).__name__}")
    missing = [key for key in ("batch_number", "data") if key not in payload]
    if missing:
        return unreadable(f"missing key(s) {', '.join(missing)} in the response")
    try:
        batch_number = parse_int("batch_number", payload["batch_number"])
    except ValueError as error:
        return unreadable(str(error))
    if "group_number" in payload:
        try:
            served_group = parse_int("group_number", payload["group_number"])
        except ValueError as error:
            return unreadable(str(error), batch_number)
        if served_group != group_number:
            return unreadable(f"response is for group {served_group}, asked for {group_number}", batch_number)
    if not isinstance(payload["data"], list):
        return unreadable(f"'data' must be a list of rows, got {type(payload['data']).__name__}", batch_number)
    return FetchResult("portion", group_number, batch_number=batch_number, rows=payload["data"], body=text)


class DataApiClient:
    """One data API, one group; use as a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.datasource_url
        # What messages and logs show: the URL with any user:password masked.
        self.shown_url = redact(self.base_url)
        self.group_number = settings.group_number
        self.retries = settings.http_retries
        self.backoff = settings.http_backoff_seconds
        self._http = httpx.Client(base_url=self.base_url, timeout=settings.http_timeout_seconds, follow_redirects=True)

    def __enter__(self) -> DataApiClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str) -> tuple[httpx.Response, int]:
        """GET with retries on transport errors and 5xx; returns the response and attempts used."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff, min=self.backoff, max=max(self.backoff * 32, 1e-3)),
            retry=retry_if_exception(_transient),
            before_sleep=lambda state: log.warning(
                "data API %s%s failed (attempt %d): %s; retrying",
                self.shown_url,
                path,
                state.attempt_number,
                describe_transport_error(state.outcome.exception()),
            ),
        )
        params = {"group_number": self.group_number}
        try:
            for attempt in retrying:
                with attempt:
                    response = self._http.get(path, params=params)
                    if response.status_code >= 500:
                        raise _ServerError(response)
                    return response, attempt.retry_state.attempt_number
        except RetryError as error:
            last = error.last_attempt.exception()
            raise DataApiUnavailable(
                f"data API {self.shown_url}{path} failed {self.retries + 1} time(s); last: "
                f"{describe_transport_error(last)}; start the data API (`forestops datasource`, or the stack) "
                "or set FORESTOPS_DATASOURCE_URL, then retry"
            ) from last
        raise AssertionError("unreachable")

    def _configuration_error(self, response: httpx.Response) -> DataApiConfigurationError:
        return DataApiConfigurationError(
            f"the data API at {self.shown_url} refused group {self.group_number} "
            f"(HTTP {response.status_code}: {_detail(response)}); check FORESTOPS_GROUP_NUMBER and "
            "FORESTOPS_DATASOURCE_URL"
        )

    def fetch(self) -> FetchResult:
        response, attempts = self._get(DATA_PATH)
        if response.status_code == 400:
            detail = _detail(response)
            if _INVALID_GROUP.search(detail):
                raise self._configuration_error(response)
            log.info("data API says the collection is complete: %s", detail)
            return FetchResult("complete", self.group_number, detail=detail, attempts=attempts)
        if response.status_code >= 300:
            raise self._configuration_error(response)
        result = parse_portion(response.content, self.group_number)
        return FetchResult(**{**result.__dict__, "attempts": attempts})

    def restart(self) -> str:
        """Ask the API to serve the group's batches again from the first one."""
        response, _ = self._get(RESTART_PATH)
        if response.status_code >= 300:
            raise self._configuration_error(response)
        return response.text.strip()[:500]
