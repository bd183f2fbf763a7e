"""Stand-ins, on loopback, for the servers a user may point prelabel at: Label Studio (just
enough of it), one that is briefly unavailable, and servers that are not Label Studio.

``kind``:

- ``"html"``: every request gets a login page (200, text/html), as a web app, a reverse
  proxy's portal or a wrong port does;
- ``"other-api"``: every request gets ``{"ok": true}``, as another JSON API does;
- ``"not-found"``: every request gets 404 (JSON), as an API without Label Studio's paths does;
- ``"label-studio"``: answers as Label Studio does, with just enough of its API for the
  checks commands make before their work: the version, the current user, project 1 (the
  samples' labeling config, one model version ``v1``), an empty task list, a created project;
- ``"busy-once"``: the first request gets 503, then answers as ``"label-studio"``;
- ``"late"``: the port refuses connections for ``late`` seconds, then answers as
  ``"label-studio"``.

``seen`` records (method, path, Authorization header) of every request answered.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import urlsplit

from prelabel.ingest.samples import LABEL_CONFIG
from prelabel.labelstudio.server import free_port
from tests.support.loopback import LoopbackServer

Kind = Literal["html", "other-api", "not-found", "label-studio", "busy-once", "late"]
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>"
PROJECT = {
    "id": 1,
    "title": "stand-in",
    "label_config": LABEL_CONFIG,
    "task_number": 0,
    "total_annotations_number": 0,
    "model_version": "",
}
_ANSWERS: dict[tuple[str, str], Any] = {
    ("GET", "/api/version"): {"release": "1.23.2"},
    ("GET", "/api/current-user/whoami"): {"id": 1, "email": "someone@example.org"},
    ("GET", "/api/projects/1/"): PROJECT,
    ("GET", "/api/projects/1/model-versions/"): {"v1": 2},
    ("GET", "/api/tasks"): {"tasks": [], "total": 0},
    ("GET", "/api/ml"): [],  # the backends connected to a project (project show lists them)
    ("POST", "/api/projects/"): {**PROJECT, "id": 7, "title": "made here"},
}


@dataclass
class StandIn:
    kind: Kind
    late: float = 1.5
    url: str = ""
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, auth: str) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request."""
        with self.lock:
            self.seen.append((method, path, auth))
            first = len(self.seen) == 1
        if self.kind == "html":
            return 200, "text/html; charset=utf-8", LOGIN_PAGE
        if self.kind == "other-api":
            return 200, "application/json", b'{"ok": true}'
        if self.kind == "busy-once" and first:
            return 503, "text/plain", b"busy"
        found = None if self.kind == "not-found" else _ANSWERS.get((method, path))
        if found is None:
            return 404, "application/json", b'{"detail": "Not found."}'
        return 200, "application/json", json.dumps(found).encode()


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, kind, body = standin.answer(
                self.command, urlsplit(self.path).path, self.headers.get("Authorization", "")
            )
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

    return Handler


@contextmanager
def standin(kind: Kind, late: float = 1.5) -> Iterator[StandIn]:
    """A ``StandIn`` of ``kind`` on a loopback port (``url`` is set at once, even when late)."""
    server = StandIn(kind, late)
    port = free_port()
    server.url = f"http://127.0.0.1:{port}"
    running: list[LoopbackServer] = []

    def serve() -> None:
        if kind == "late":
            time.sleep(late)
        http = LoopbackServer(("127.0.0.1", port), _handler(server))
        http.daemon_threads = True
        running.append(http)
        http.serve_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    while kind != "late" and not running:
        time.sleep(0.01)
    try:
        yield server
    finally:
        thread.join(late if kind == "late" and not running else 0)
        for http in running:
            http.shutdown()
            http.server_close()
