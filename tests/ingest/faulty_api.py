"""A fault-injecting wrapper around the real data API, for ingestion tests.

It listens on its own port, forwards to the real ``forestops datasource``
process, and for chosen calls answers 500, stalls past the client's timeout,
truncates the JSON, drops the ``batch_number`` key, cuts rows to 12 fields,
puts unknown soil codes in, or repeats rows.  It records exactly what it
delivered, so a test can compute the rows that *should* be stored and the
payloads that *should* be quarantined without asking the code under test.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

from forestops import schema

FAULTS = ("ok", "http500", "stall", "truncated_json", "missing_key", "short_rows", "unknown_soil", "duplicate_rows")
SOIL = schema.RAW_COLUMNS.index(schema.SOIL_TYPE)


@dataclass
class Delivery:
    """One answer to a ``/data`` call as the client received it."""

    fault: str
    status: int
    body: bytes
    batch_number: int | None = None  # the batch the real API served
    upstream_rows: list[list[str]] = field(default_factory=list)  # untouched rows that reached the client
    corrupted_rows: list[list[str]] = field(default_factory=list)  # rows we broke on purpose


class FaultyDataApi:
    def __init__(self, upstream: str, faults: Iterable[str] = ("ok",), stall_seconds: float = 1.0) -> None:
        self.upstream = upstream.rstrip("/")
        self._faults: Iterator[str] = itertools.cycle(list(faults))
        self.stall_seconds = stall_seconds
        self.deliveries: list[Delivery] = []
        self.restarts = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultyDataApi:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    # -- what the tests read ------------------------------------------------
    def delivered_valid_rows(self) -> list[list[str]]:
        return [row for d in self.deliveries for row in d.upstream_rows]

    def delivered_bad_payloads(self) -> list[str]:
        """Quarantine candidates: each broken row, and each unreadable body as a whole."""
        payloads = []
        for delivery in self.deliveries:
            if delivery.fault in ("truncated_json", "missing_key"):
                payloads.append(delivery.body.decode())
            payloads.extend(json.dumps(row, separators=(",", ":")) for row in delivery.corrupted_rows)
        return payloads

    # -- the faults -----------------------------------------------------------
    def _answer_data(self, query: str) -> tuple[int, bytes, Delivery | None]:
        with self._lock:
            fault = next(self._faults)
        if fault == "http500":
            return 500, b'{"detail":"injected failure"}', None
        if fault == "stall":
            time.sleep(self.stall_seconds)
            return 500, b'{"detail":"stalled"}', None
        upstream = self._http.get(f"{self.upstream}/data?{query}")
        if upstream.status_code != 200:
            return upstream.status_code, upstream.content, None
        payload = upstream.json()
        rows = payload["data"]
        delivery = Delivery(fault, 200, b"", payload["batch_number"])
        if fault == "truncated_json":
            delivery.body = upstream.content[: len(upstream.content) // 2]
        elif fault == "missing_key":
            delivery.body = json.dumps({"group_number": payload["group_number"], "data": rows}).encode()
        else:
            sent = []
            for index, row in enumerate(rows):
                if fault == "short_rows" and index % 4 == 0:
                    broken = row[:-1]
                elif fault == "unknown_soil" and index % 5 == 0:
                    broken = [*row[:SOIL], "C9999", *row[SOIL + 1 :]]
                else:
                    delivery.upstream_rows.append(row)
                    sent.append(row)
                    continue
                delivery.corrupted_rows.append(broken)
                sent.append(broken)
            if fault == "duplicate_rows":
                sent.extend(rows[: max(1, len(rows) // 3)])
            delivery.body = json.dumps({**payload, "data": sent}).encode()
        return 200, delivery.body, delivery

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                delivery = None
                if parts.path == "/data":
                    status, body, delivery = api._answer_data(parts.query)
                else:
                    if parts.path == "/restart_data_generation":
                        api.restarts += 1
                    upstream = api._http.get(f"{api.upstream}{self.path}")
                    status, body = upstream.status_code, upstream.content
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (timeout): nothing was delivered
                if delivery is not None:
                    with api._lock:
                        api.deliveries.append(delivery)

        return Handler
