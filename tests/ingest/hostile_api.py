"""A data API that misbehaves on purpose, one misbehaviour per URL path.

``GET /<case>/data?group_number=N`` answers the way ``CASES[case]`` says:
slow drips, endless or gigabyte-long bodies (streamed from a small buffer,
never held in memory), gzip bombs, HTML pages, redirects, deep nesting,
resets mid-body...  One server serves every case, so the catalogue test
starts it once.  ``/ok/data`` serves a valid portion (the rows given), for
the "rows stored earlier stay intact" check.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

Handler = BaseHTTPRequestHandler
GIB = 1024**3


def _send(handler: Handler, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def _portion(group: int, batch: object = 1, rows: object = None, **extra: object) -> bytes:
    payload = {"group_number": group, "batch_number": batch, "data": rows if rows is not None else [], **extra}
    return orjson.dumps(payload)


def _endless(handler: Handler, declared: int | None, chunk: bytes) -> None:
    """Stream ``chunk`` until the client hangs up (or ``declared`` bytes are sent)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    if declared is not None:
        handler.send_header("Content-Length", str(declared))
    handler.end_headers()
    sent = 0
    try:
        handler.wfile.write(b'{"group_number": 1, "batch_number": 1, "data": [')
        while declared is None or sent < declared:
            handler.wfile.write(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the client stopped reading: that is the point
    handler.close_connection = True


def _gzip_bomb() -> bytes:
    """A gzip body inflating to 1 GiB of JSON whitespace, about 1 MB on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1024 * 1024)
    parts = [compressor.compress(b'{"group_number": 1, "batch_number": 1, "data": [')]
    parts += [compressor.compress(block) for _ in range(1024)]
    parts.append(compressor.compress(b"]}") + compressor.flush())
    return b"".join(parts)


class HostileApi:
    """Every misbehaviour of ``cases()`` behind one threaded HTTP server."""

    def __init__(self, good_rows: list[list[str]], row_template: list[str]) -> None:
        self.good_rows = good_rows
        self.row = row_template
        self._bomb: bytes | None = None
        api = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                case = url.path.strip("/").split("/")[0]
                group = int(parse_qs(url.query).get("group_number", ["1"])[0])
                behaviour = api.cases().get(case)
                if behaviour is None:
                    _send(self, 404, b'{"detail": "no such case"}')
                    return
                behaviour(self, group)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, case: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{case}"

    def __enter__(self) -> HostileApi:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the catalogue -----------------------------------------------------
    def cases(self) -> dict[str, Callable[[Handler, int], None]]:
        row = self.row

        def rows_with(value_at_0: str) -> list[list[str]]:
            return [[value_at_0, *row[1:]]]

        def ok(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, self.good_rows))

        def slow_drip(h: Handler, g: int) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "100000")
            h.end_headers()
            try:
                for _ in range(100_000):
                    h.wfile.write(b" ")
                    h.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass

        def several_gb_declared(h: Handler, g: int) -> None:
            _endless(h, 5 * GIB, b"[" + b'"1",' * 2047 + b'"1"],')

        def several_gb_chunked(h: Handler, g: int) -> None:
            # HTTP/1.0-style: no length, the body ends when the connection does (never, here).
            h.protocol_version = "HTTP/1.0"
            _endless(h, None, b" " * 65536)

        def gzip_bomb(h: Handler, g: int) -> None:
            if self._bomb is None:
                self._bomb = _gzip_bomb()
            _send(h, 200, self._bomb, Content_Encoding="gzip")

        def brotli_claimed(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, [row]), Content_Encoding="br")

        def wrong_content_type(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, [row]), content_type="text/csv")

        def html_200(h: Handler, g: int) -> None:
            page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
            _send(h, 200, page, content_type="text/html; charset=utf-8")

        def redirect_loop(h: Handler, g: int) -> None:
            _send(h, 302, b"", Location=f"/redirect_loop/data?group_number={g}")

        def redirect_other_host(h: Handler, g: int) -> None:
            _send(h, 307, b"", Location=f"http://collector.invalid/steal/data?group_number={g}")

        def deep_nesting(h: Handler, g: int) -> None:
            nested = b"[" * 1000 + b"1" + b"]" * 1000
            _send(h, 200, b'{"group_number": %d, "batch_number": 1, "data": [%s]}' % (g, nested))

        def deep_nesting_in_row(h: Handler, g: int) -> None:
            nested = b"[" * 40 + b"1" + b"]" * 40
            _send(h, 200, b'{"group_number": %d, "batch_number": 1, "data": [["1", %s]]}' % (g, nested))

        def nan_infinity(h: Handler, g: int) -> None:
            body = b'{"group_number": %d, "batch_number": 1, "data": [[NaN, Infinity, -Infinity]]}' % g
            _send(h, 200, body)

        def nan_batch(h: Handler, g: int) -> None:
            _send(h, 200, b'{"group_number": %d, "batch_number": NaN, "data": []}' % g)

        def duplicate_keys(h: Handler, g: int) -> None:
            body = b'{"group_number": %d, "batch_number": 1, "batch_number": 2, "data": [%s]}' % (
                g,
                orjson.dumps(row),
            )
            _send(h, 200, body)

        def unicode_digits(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, rows_with("\u0663\u0661\u0661\u0668")))  # Arabic-Indic 3118

        def unicode_batch(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, "\u0663"))

        def negative_batch(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, -1, [row]))

        def zero_batch(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 0, [row]))

        def huge_batch(h: Handler, g: int) -> None:
            _send(h, 200, b'{"group_number": %d, "batch_number": %d, "data": []}' % (g, 10**30))

        def float_batch(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1.5, [row]))

        def other_group(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g + 1, 1, [row]))

        def huge_group(h: Handler, g: int) -> None:
            _send(h, 200, b'{"group_number": 1e308, "batch_number": 1, "data": []}')

        def rows_of_12(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, [row[:12]]))

        def rows_of_14(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, [[*row, "extra"]]))

        def whitespace_and_bom(h: Handler, g: int) -> None:
            _send(h, 200, b"\xef\xbb\xbf  \n" + _portion(g, 1, rows_with("\ufeff" + row[0])) + b"\n  ")

        def empty_data(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, []))

        def empty_body(h: Handler, g: int) -> None:
            _send(h, 200, b"")

        def data_not_list(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, {"rows": [row]}))

        def json_array_top(h: Handler, g: int) -> None:
            _send(h, 200, orjson.dumps([row]))

        def too_many_requests(h: Handler, g: int) -> None:
            _send(h, 429, b'{"detail": "slow down"}', Retry_After="3600")

        def reset_mid_body(h: Handler, g: int) -> None:
            body = _portion(g, 1, [row] * 50)
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            # SO_LINGER 0: close with a TCP RST instead of a FIN.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True

        def long_error_text(h: Handler, g: int) -> None:
            _send(h, 500, b'{"detail": "' + b"x" * 1_000_000 + b'"}')

        def long_400_text(h: Handler, g: int) -> None:
            _send(h, 400, orjson.dumps({"detail": "invalid group " + "y" * 200_000}))

        def truncated_gzip(h: Handler, g: int) -> None:
            body = gzip.compress(_portion(g, 1, [row] * 20))
            _send(h, 200, body[: len(body) // 2] + b"garbage", Content_Encoding="gzip")

        def invalid_utf8(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, [])[:-2] + b'[["\xff\xfe", "1"]]}')

        def huge_number_in_row(h: Handler, g: int) -> None:
            _send(h, 200, _portion(g, 1, rows_with("9" * 400)))

        return {name: value for name, value in locals().items() if callable(value) and name not in ("rows_with",)}
