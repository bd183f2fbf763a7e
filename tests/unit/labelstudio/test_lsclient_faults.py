"""The client's retry policy against a local server that fails on purpose."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from prelabel.core.errors import LabelStudioError, LabelStudioUnavailableError
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import free_port


class _Flaky(BaseHTTPRequestHandler):
    script: ClassVar[list[tuple[int, dict[str, str], str]]] = []
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        status, headers, body = self.script.pop(0) if self.script else (200, {}, '{"id": 1}')
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        _Flaky.script, _Flaky.seen = [], []


def test_retries_429_and_5xx_then_succeeds(flaky: str) -> None:
    _Flaky.script = [(429, {"Retry-After": "0"}, "{}"), (503, {}, "{}"), (502, {}, "{}")]
    with LabelStudioClient(flaky, "legacy-token", retries=3, backoff=0.01) as client:
        assert client.request("GET", "/api/x").json() == {"id": 1}
    assert len(_Flaky.seen) == 4
    assert _Flaky.seen[0] == "Token legacy-token"


def test_gives_up_after_bounded_retries(flaky: str) -> None:
    _Flaky.script = [(503, {}, '{"detail": "down for maintenance"}')] * 5
    with (
        LabelStudioClient(flaky, "t", retries=2, backoff=0.01) as client,
        pytest.raises(LabelStudioUnavailableError, match="503: down for maintenance"),
    ):
        client.request("GET", "/api/x")
    assert len(_Flaky.seen) == 3


def test_4xx_is_not_retried_and_carries_the_message(flaky: str) -> None:
    body = json.dumps({"detail": "Validation error", "validation_errors": {"task": ["bad id"]}})
    _Flaky.script = [(400, {}, body)]
    with (
        LabelStudioClient(flaky, "t", retries=3, backoff=0.01) as client,
        pytest.raises(LabelStudioError) as caught,
    ):
        client.request("GET", "/api/x")
    assert caught.value.status == 400
    assert caught.value.detail == "task: bad id"  # a validation answer, flattened
    assert len(_Flaky.seen) == 1


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        LabelStudioClient(url, "t", retries=1, backoff=0.01, timeout=2) as client,
        pytest.raises(LabelStudioUnavailableError, match="ConnectError"),
    ):
        client.request("GET", "/api/x")


def test_secret_never_in_error_messages(flaky: str) -> None:
    _Flaky.script = [(401, {}, '{"detail": "Invalid token."}')]
    with (
        LabelStudioClient(flaky, "super-secret-token", retries=0) as client,
        pytest.raises(LabelStudioError) as caught,
    ):
        client.request("GET", "/api/x")
    assert "super-secret-token" not in str(caught.value)
    assert "super-secret-token" not in repr(client.__dict__)
