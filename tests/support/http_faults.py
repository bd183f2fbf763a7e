"""A local HTTP server for image sources: images, every fault a download can meet, a paged API.

Paths: ``/img/NAME`` serves the image; ``/slow/``, ``/missing/`` (404), ``/error/`` (500
always), ``/flaky/`` (500 once, then the image), ``/limited/`` (429 with Retry-After once,
then the image), ``/html/`` (wrong content type), ``/truncated/`` (the connection closes
mid-body), ``/huge/`` (declares 100 MB), ``/garbage/`` (image/jpeg that is not an image).
``/redirect/`` (302 to ``/img/`` on 127.0.0.1).
``/api/trees?offset=&limit=`` pages over ``records`` as ``{"trees": [{"image_url", "species"}]}``;
``/api/stuck`` answers the first page whatever the offset.
POSTs (``posts`` holds what the server stored): ``/drop/`` stores the body and closes the
connection without an answer, ``/proxy/`` stores it and answers 502, ``/limited/`` answers
429 once without storing, anything else stores it and answers ``{"created": 1}``.
``latency`` delays every answer (the download benchmark).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback import LoopbackServer


@dataclass
class Site:
    images: dict[str, bytes]
    records: list[dict[str, Any]] = field(default_factory=list)
    latency: float = 0.0
    slow: float = 3.0
    hits: Counter[str] = field(default_factory=Counter)
    posts: list[tuple[str, bytes]] = field(default_factory=list)
    url: str = ""


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no delayed-ACK stalls

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str = "image/jpeg", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", headers.pop("length", str(len(body))))
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if site.latency:
                time.sleep(site.latency)
            parts = urlsplit(self.path)
            with lock:
                site.hits[parts.path] += 1
                seen = site.hits[parts.path]
            if parts.path in ("/api/trees", "/api/stuck"):
                query = {k: int(v[0]) for k, v in parse_qs(parts.query).items()}
                start = 0 if parts.path == "/api/stuck" else query["offset"]  # stuck: ignores the offset
                page = site.records[start : start + query["limit"]]
                self._send(200, json.dumps({"trees": page}).encode(), "application/json")
                return
            kind, _, name = parts.path.strip("/").partition("/")
            if parts.path == "/" and site.images:  # a URL with an empty path: the first image
                kind, name = "img", next(iter(site.images))
            data = site.images.get(name)
            if data is None or kind == "missing":
                self._send(404, b"not found", "text/plain")
            elif kind == "img":
                self._send(200, data)
            elif kind == "redirect":  # onto this machine's loopback address
                self._send(
                    302,
                    b"",
                    "text/plain",
                    Location=f"http://127.0.0.1:{self.server.server_address[1]}/img/{name}",
                )
            elif kind == "slow":
                time.sleep(site.slow)
                self._send(200, data)
            elif kind == "error" or (kind == "flaky" and seen == 1):
                self._send(500, b"boom", "text/plain")
            elif kind == "limited" and seen == 1:
                self._send(429, b"slow down", "text/plain", Retry_After="0")
            elif kind in ("flaky", "limited"):
                self._send(200, data)
            elif kind == "html":
                self._send(200, b"<html>login</html>", "text/html; charset=utf-8")
            elif kind == "truncated":
                self._send(200, data[: len(data) // 2], length=str(len(data)))
                self.close_connection = True
            elif kind == "huge":
                self._send(200, b"", length=str(100 * 2**20))
                self.close_connection = True
            elif kind == "garbage":
                self._send(200, b"\xff\xd8\xff" + b"not really a jpeg" * 10)
            else:
                self._send(404, b"unknown", "text/plain")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = path.strip("/").partition("/")[0]
            with lock:
                site.hits[path] += 1
                refused = kind == "limited" and site.hits[path] == 1
                if not refused:
                    site.posts.append((path, body))
            if refused:
                self._send(429, b'{"detail": "slow down"}', "application/json", Retry_After="0")
            elif kind == "drop":
                self.close_connection = True  # stored, and the answer is lost
            elif kind == "proxy":
                self._send(502, b"bad gateway", "text/plain")
            else:
                self._send(200, b'{"created": 1}', "application/json")

    return Handler


@contextmanager
def serve(site: Site) -> Iterator[Site]:
    """Run ``site`` on a loopback port; ``site.url`` is its base URL."""
    server = LoopbackServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
