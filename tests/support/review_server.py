"""The review page's server in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from prelabel.core.settings import Settings
from prelabel.labelstudio.server import free_port
from prelabel.review.queue import ReviewQueue
from prelabel.review.server import create_app
from prelabel.review.team import Team

__all__ = ["review_server"]


@contextmanager
def review_server(
    queue: ReviewQueue, settings: Settings | None = None, team: Team | None = None
) -> Iterator[str]:
    """The page's URL while the server runs; stopped (and its thread joined) at the end."""
    port = free_port()
    config = uvicorn.Config(
        create_app(queue, settings or Settings(), team), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the review server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError("the review server did not stop")
