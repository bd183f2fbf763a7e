"""prelabel's ML backend in a thread of the test process, on a free loopback port, for one test
module or test; stopped (its thread joined) at the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from prelabel.core.settings import Settings, load_settings
from prelabel.labelstudio.server import LocalLabelStudio, free_port
from prelabel.predict.models.prompted import PromptSegmenter
from prelabel.serve import ServeSettings, create_app, load_serve_settings

__all__ = ["HandedOver", "ls_settings", "ml_backend", "serve_settings"]


@dataclass
class HandedOver:
    """A ``Handoff`` that keeps what it was given (the real one is tested against Prefect)."""

    runs: list[tuple[int, list[int], str]] = field(default_factory=list)
    pulls: list[int] = field(default_factory=list)

    def preannotate(self, project_id: int, task_ids: Sequence[int], model_version: str) -> str:
        self.runs.append((project_id, list(task_ids), model_version))
        return f"run-{len(self.runs)}"

    def pull(self, project_id: int) -> str:
        self.pulls.append(project_id)
        return f"pull-{len(self.pulls)}"


def ls_settings(server: LocalLabelStudio, cache: Path, **given: Any) -> Settings:
    """prelabel's settings for ``server`` (its legacy key), the cache in ``cache``, ``given`` over them."""
    key = server.legacy_token.get_secret_value()
    return load_settings(ls_url=server.url, ls_api_key=key, cache_dir=cache, **given)


def serve_settings(state: Path, **given: Any) -> ServeSettings:
    """The backend's settings: ``given`` over defaults fit for tests (state in ``state``)."""
    return load_serve_settings(**{"state_dir": state, "debounce": 0.5, **given})


@contextmanager
def ml_backend(
    settings: ServeSettings, ls: Settings, handoff: Any = None, segmenter: PromptSegmenter | None = None
) -> Iterator[str]:
    """The backend's URL while it runs (its model loaded before this yields)."""
    port = free_port()
    app = create_app(settings, ls, handoff=handoff, segmenter=segmenter)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ML backend did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        if thread.is_alive():
            raise RuntimeError("the ML backend did not stop")
