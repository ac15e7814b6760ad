"""HTTP client of the batch data API (ours or the course's).

The API is flaky by design: it may time out, answer 500, or send a body that
is not what the contract says.  Transport errors and 5xx are retried with
exponential backoff; a body that cannot be read is handed back as
``unreadable`` (to be quarantined, never a crash); a 400 for our group after
the last batch means the collection is complete.  Only a request the server
rejects because of *our* configuration (bad group, wrong URL) is an error.

A hostile or broken API cannot stall or crash a collection either: the body
is streamed with a byte cap (``FORESTOPS_HTTP_MAX_RESPONSE_BYTES``, checked
on the declared length and on the decoded bytes as they arrive, gzip
inflated in bounded steps), the whole fetch has a deadline
(``FORESTOPS_HTTP_TOTAL_SECONDS``, so a slow drip ends too), JSON nesting is
measured before it is parsed (``FORESTOPS_HTTP_MAX_JSON_DEPTH``), and
redirects are never followed: a 3xx is a configuration error naming where it
pointed, since following it could send our requests to another host.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import httpx
import numpy as np
import orjson
from tenacity import Future, RetryError, Retrying, retry_if_exception

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


class ResponseRefused(Exception):
    """A body we will not read (too large, past the deadline, an unknown encoding); never retried."""


class _ServerError(Exception):
    def __init__(self, status_code: int, text: str, retry_after: float | None = None) -> None:
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(f"HTTP {status_code}: {_one_line(text, 300)}")


@dataclass(frozen=True)
class _Reply:
    """A response read within the caps: status, headers and the decoded body."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="backslashreplace")

    def json(self) -> Any:
        return orjson.loads(self.content)


def _one_line(text: str, limit: int) -> str:
    """Server text fit for a log line or a fetch_log reason: one line, cut, secrets masked."""
    flat = " ".join(text.split())
    return redact(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: use our own backoff
    return seconds if 0 <= seconds < 86_400 else None


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays/objects in a JSON text, without parsing it.

    Strings are removed first (a bracket inside one does not count); what is
    left is counted with numpy, so a 30 MB body costs milliseconds and a
    thousand-level payload never reaches a recursive parser.
    """
    stripped = _JSON_STRING.sub(b'""', body)
    codes = np.frombuffer(stripped, dtype=np.uint8)
    steps = np.zeros(codes.shape, dtype=np.int32)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_UTF8_BOM = b"\xef\xbb\xbf"
# The store keeps batch numbers as SMALLINT; anything outside is not a batch.
BATCH_NUMBER_RANGE = (1, 32_767)


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


def _detail(response: _Reply) -> str:
    try:
        payload = response.json()
    except ValueError:
        return _one_line(response.text, 500)
    if isinstance(payload, dict) and "detail" in payload:
        detail = payload["detail"]
        return _one_line(detail if isinstance(detail, str) else orjson.dumps(detail).decode(), 500)
    return _one_line(response.text, 500)


def describe_transport_error(error: BaseException | None) -> str:
    if isinstance(error, _ServerError):
        return str(error)
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    return _one_line(f"{type(error).__name__}: {error}", 500)


def parse_portion(body: bytes, group_number: int, max_depth: int = 32, content_type: str | None = None) -> FetchResult:
    """Read a 200 body; anything off-contract becomes ``unreadable`` with the reason."""
    if body.startswith(_UTF8_BOM):
        body = body[len(_UTF8_BOM) :]  # a BOM says "UTF-8", which JSON is anyway
    text = body.decode("utf-8", errors="backslashreplace")

    def unreadable(reason: str, batch: int | None = None) -> FetchResult:
        return FetchResult("unreadable", group_number, batch_number=batch, body=text, reason=reason)

    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        return unreadable(f"content type {_one_line(media_type, 80)!r}, expected application/json")
    depth = json_depth(body)
    if depth > max_depth:
        return unreadable(f"JSON nested {depth} levels deep, more than {max_depth} (FORESTOPS_HTTP_MAX_JSON_DEPTH)")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return unreadable(f"malformed JSON: {_one_line(str(error), 300)}")
    if not isinstance(payload, dict):
        return unreadable(f"expected a JSON object, got {type(payload).__name__}")
    missing = [key for key in ("batch_number", "data") if key not in payload]
    if missing:
        return unreadable(f"missing key(s) {', '.join(missing)} in the response")
    duplicated = [key for key in payload if len(re.findall(rb'"' + re.escape(key.encode()) + rb'"\s*:', body)) > 1]
    if duplicated:
        return unreadable(f"key(s) {', '.join(duplicated)} given more than once in the response")
    try:
        batch_number = parse_int("batch_number", payload["batch_number"])
    except ValueError as error:
        return unreadable(_one_line(str(error), 300))
    low, high = BATCH_NUMBER_RANGE
    if not low <= batch_number <= high:
        return unreadable(f"batch_number {batch_number} outside {low}..{high}")
    if "group_number" in payload:
        try:
            served_group = parse_int("group_number", payload["group_number"])
        except ValueError as error:
            return unreadable(_one_line(str(error), 300), batch_number)
        if served_group != group_number:
            return unreadable(f"response is for group {served_group}, asked for {group_number}", batch_number)
    if not isinstance(payload["data"], list):
        return unreadable(f"'data' must be a list of rows, got {type(payload['data']).__name__}", batch_number)
    if not payload["data"]:
        return unreadable("'data' is empty: the portion holds no rows", batch_number)
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
        self.max_bytes = settings.http_max_response_bytes
        self.max_depth = settings.http_max_json_depth
        self.total_seconds = settings.http_total_seconds
        self.read_timeout = settings.http_timeout_seconds
        self._deadline = time.monotonic() + self.total_seconds
        # No redirects: a 3xx is reported (see fetch), never followed to a host we were not given.
        # Only gzip is offered, because only gzip is inflated here in bounded steps.
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=settings.http_timeout_seconds,
            follow_redirects=False,
            headers={"Accept-Encoding": "gzip", "Accept": "application/json"},
        )

    def __enter__(self) -> DataApiClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _remaining(self) -> float:
        return self._deadline - time.monotonic()

    def _read_capped(self, response: httpx.Response) -> bytes:
        """The decoded body, refused as soon as it passes the byte cap or the deadline."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ResponseRefused(
                f"response of {int(declared):,} bytes declared, more than {self.max_bytes:,} "
                "(FORESTOPS_HTTP_MAX_RESPONSE_BYTES)"
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", ""):
            raise ResponseRefused(f"unsupported content encoding {_one_line(encoding, 40)!r} (only gzip is accepted)")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if "gzip" in encoding else None
        parts: list[bytes] = []
        size = 0

        def add(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > self.max_bytes:
                raise ResponseRefused(
                    f"response larger than {self.max_bytes:,} bytes (FORESTOPS_HTTP_MAX_RESPONSE_BYTES)"
                    + (", after gzip inflation" if inflater else "")
                )
            parts.append(data)

        try:
            for raw in response.iter_raw():
                if self._remaining() <= 0:
                    raise ResponseRefused(
                        f"response not complete within {self.total_seconds:g} s (FORESTOPS_HTTP_TOTAL_SECONDS); "
                        f"{size:,} bytes read"
                    )
                if inflater is None:
                    add(raw)
                    continue
                # Inflate in steps of at most the remaining allowance + 1 byte: a bomb stops at the cap.
                data = raw
                while data:
                    add(inflater.decompress(data, self.max_bytes - size + 1))
                    data = inflater.unconsumed_tail
            if inflater is not None:
                add(inflater.flush())
        except zlib.error as error:
            raise ResponseRefused(f"gzip body cannot be inflated: {error}") from None
        return b"".join(parts)

    def _wait(self, state) -> float:
        """Exponential backoff, or the server's Retry-After; never past the fetch's deadline."""
        error = state.outcome.exception()
        backoff = min(self.backoff * 2 ** (state.attempt_number - 1), max(self.backoff * 32, 1e-3))
        if isinstance(error, _ServerError) and error.retry_after is not None:
            backoff = error.retry_after
        return max(0.0, min(backoff, self._remaining()))

    def _get(self, path: str) -> tuple[_Reply, int]:
        """GET with retries on transport errors, 5xx and 429; returns the reply and attempts used."""
        retrying = Retrying(
            stop=lambda state: state.attempt_number > self.retries or self._remaining() <= 0,
            wait=self._wait,
            retry=retry_if_exception(_transient),
            before_sleep=lambda state: log.warning(
                "data API %s%s failed (attempt %d): %s; retrying",
                self.shown_url,
                path,
                state.attempt_number,
                describe_transport_error(cast(Future, state.outcome).exception()),
            ),
        )
        params = {"group_number": self.group_number}
        try:
            for attempt in retrying:
                with attempt:
                    # No single wait may outlast the fetch's deadline.
                    timeout = httpx.Timeout(max(0.1, min(self.read_timeout, self._remaining())))
                    with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                        status = response.status_code
                        if status >= 500 or status == 429:
                            # Read only a little of an error page: its size is not ours to pay for.
                            head = next(response.iter_raw(2048), b"")
                            raise _ServerError(
                                status,
                                head.decode("utf-8", errors="replace"),
                                _retry_after(response.headers.get("retry-after")),
                            )
                        content = self._read_capped(response)
                        reply = _Reply(status, response.headers, content)
                    return reply, attempt.retry_state.attempt_number
        except ResponseRefused as error:
            raise DataApiUnavailable(f"data API {self.shown_url}{path}: {error}") from None
        except RetryError as error:
            last = error.last_attempt.exception()
            attempts = error.last_attempt.attempt_number
            raise DataApiUnavailable(
                f"data API {self.shown_url}{path} failed {attempts} time(s); last: "
                f"{describe_transport_error(last)}; start the data API (`forestops datasource`, or the stack) "
                "or set FORESTOPS_DATASOURCE_URL, then retry"
            ) from last
        raise AssertionError("unreachable")

    def _configuration_error(self, response: _Reply) -> DataApiConfigurationError:
        if 300 <= response.status_code < 400:
            target = _one_line(response.headers.get("location", "(no Location)"), 200)
            return DataApiConfigurationError(
                f"the data API at {self.shown_url} redirected (HTTP {response.status_code}) to {target}; "
                "redirects are not followed: set FORESTOPS_DATASOURCE_URL to the address that answers"
            )
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
        result = parse_portion(
            response.content, self.group_number, self.max_depth, response.headers.get("content-type")
        )
        return FetchResult(**{**result.__dict__, "attempts": attempts})

    def restart(self) -> str:
        """Ask the API to serve the group's batches again from the first one."""
        response, _ = self._get(RESTART_PATH)
        if response.status_code >= 300:
            raise self._configuration_error(response)
        return _one_line(response.text, 500)
