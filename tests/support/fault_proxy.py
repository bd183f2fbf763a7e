"""A fault-injecting HTTP proxy on loopback, for a real server behind it (Label Studio).

Every request is forwarded to ``upstream`` unless a rule catches it. A rule names a method,
a piece of the path, how many matching requests to let through first (``after``) and how
many to catch (``times``), and what to do with them:

- ``"502"``: forward, let the server finish (it stored the write), then answer 502 as a
  gateway that lost the answer would;
- ``"drop"``: forward, then close the connection without an answer;
- ``"down"``: do not forward; close the connection and refuse every new connection for
  ``seconds`` (the port is closed: connection refused), as a server that went away;
- ``"503"``: do not forward; answer 503 (for reads: a server too busy to answer);
- ``"slow"``: wait ``seconds``, then forward and answer (a client killed meanwhile never sees
  the answer, but the server still stores the write).

Each answer closes its connection, so an outage is seen by the next request at once.
``events`` records (method, path, what happened) for each request, for the assertions.
"""

from __future__ import annotations

import dataclasses
import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Literal
from urllib.parse import urlsplit

from tests.support.loopback import LoopbackServer

Action = Literal["502", "drop", "down", "503", "slow"]
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}


@dataclass
class Rule:
    """Catch ``times`` requests of ``method`` whose path contains ``path``, after ``after`` pass."""

    action: Action
    method: str = "POST"
    path: str = ""
    times: int = 1
    after: int = 0
    seconds: float = 0.0
    seen: int = 0

    def catches(self, method: str, path: str) -> bool:
        if method != self.method or self.path not in path:
            return False
        self.seen += 1
        return self.after < self.seen <= self.after + self.times


@dataclass
class FaultProxy:
    """The proxy's state: its rules, what it did, and its base URL once serving."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    url: str = ""
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None
    _thread: threading.Thread | None = None

    def add(self, *rules: Rule) -> None:
        """Catch requests by these rules (copies: a rule table can be shared by many tests)."""
        with self.lock:
            self.rules.extend(dataclasses.replace(rule, seen=0) for rule in rules)

    def caught(self, action: Action) -> int:
        """How many requests a rule of this kind caught."""
        return sum(1 for _, _, what in self.events if what == action)

    def _rule_for(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.catches(method, path):
                    return rule
        return None

    def _record(self, method: str, path: str, what: str) -> None:
        with self.lock:
            self.events.append((method, path, what))

    # -- the listening socket: open, closed for an outage, open again on the same port ----

    def open(self) -> None:
        server = LoopbackServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)

    def outage(self, seconds: float) -> None:
        """Close the port now, and open it again after ``seconds`` (in the background)."""
        self.close()

        def reopen() -> None:
            time.sleep(seconds)
            self.open()

        threading.Thread(target=reopen, daemon=True).start()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            method, path = self.command, self.path
            body = self._body()
            rule = proxy._rule_for(method, urlsplit(path).path)
            action = rule.action if rule else "forward"
            proxy._record(method, path, action)
            self.close_connection = True
            if rule is not None and rule.action == "down":
                proxy.outage(rule.seconds)
                return
            if rule is not None and rule.action == "503":
                self._answer(503, [("Content-Type", "text/plain")], b"busy")
                return
            if rule is not None and rule.action == "slow":
                time.sleep(rule.seconds)
            status, headers, payload = self._forward(method, path, body)
            if rule is not None and rule.action == "drop":
                return  # stored upstream; the answer never comes
            if rule is not None and rule.action == "502":
                self._answer(502, [("Content-Type", "text/plain")], b"bad gateway")
                return
            self._answer(status, headers, payload)

        def _forward(self, method: str, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            host = upstream.hostname or "127.0.0.1"
            connection = http.client.HTTPConnection(host, upstream.port, timeout=300)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Host"] = upstream.netloc
                headers["Content-Length"] = str(len(body))
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
                return answer.status, kept, payload
            finally:
                connection.close()

        def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A ``FaultProxy`` serving on a free loopback port in front of ``upstream``."""
    proxy = FaultProxy(upstream)
    proxy.open()
    try:
        yield proxy
    finally:
        proxy.close()
