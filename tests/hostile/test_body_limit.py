"""Request bodies are capped before parsing: 413 with the limit, for declared and chunked bodies.

The real ``forestops inference`` and ``forestops datasource`` processes,
with a small limit so the test sends little; no model is needed (the limit
answers before the registry matters).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.data import sample_rows, write_csv
from tests.support.processes import ServiceProcess, forestops_argv, free_port

pytestmark = pytest.mark.integration

LIMIT = 65_536


def _service(name: str, command: str, tmp: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    port_variable = "FORESTOPS_INFERENCE_PORT" if command == "inference" else "FORESTOPS_DATASOURCE_PORT"
    env = {
        "FORESTOPS_HOME": str(tmp / "home"),
        "FORESTOPS_MAX_REQUEST_BYTES": str(LIMIT),
        port_variable: str(port),
        **env,
    }
    process = ServiceProcess(name, forestops_argv(command), tmp / f"{command}.log", env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    with process:
        process.wait_http(f"{url}/health", timeout=90, expect=None)
        yield url


@pytest.fixture(scope="module")
def inference_url(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("limit-inference")
    yield from _service(
        "inference",
        "inference",
        tmp,
        {"FORESTOPS_MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "FORESTOPS_MODEL_POLL_SECONDS": "60"},
    )


@pytest.fixture(scope="module")
def datasource_url(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("limit-datasource")
    data = write_csv(tmp / "data.csv", sample_rows(200))
    yield from _service("datasource", "datasource", tmp, {"FORESTOPS_DATA_PATH": str(data)})


def _chunks(total: int, size: int = 16_384) -> Iterator[bytes]:
    yield b'{"instances": ['
    sent = 15
    while sent < total:
        yield b" " * size
        sent += size
    yield b"]}"


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    assert f"{LIMIT:,}" in response.json()["detail"]
    assert response.json()["max_request_bytes"] == LIMIT


@pytest.mark.parametrize("path", ["/predict", "/predict?x=1"])
def test_inference_refuses_a_declared_oversized_body(inference_url, path):
    body = b'{"instances": [' + b" " * (LIMIT * 3) + b"]}"
    _assert_refused(httpx.post(inference_url + path, content=body, timeout=30))


def test_inference_refuses_a_chunked_oversized_body(inference_url):
    # A generator has no length: httpx sends it chunked, so only counting can catch it.
    _assert_refused(httpx.post(inference_url + "/predict", content=_chunks(LIMIT * 4), timeout=30))


def test_inference_still_reads_a_body_within_the_limit(inference_url):
    response = httpx.post(inference_url + "/predict", content=b'{"instances": []}', timeout=30)
    assert response.status_code in (422, 503), response.text[:300]


def test_data_api_refuses_oversized_bodies(datasource_url):
    # The data API's routes never read a body, so a chunked one is left unread (uvicorn's flow control
    # stops reading it) rather than counted: only a declared length can be refused there.
    url = datasource_url + "/data?group_number=1"
    _assert_refused(httpx.request("GET", url, content=b"x" * (LIMIT + 1), timeout=30))
    assert httpx.get(url, timeout=30).status_code == 200
