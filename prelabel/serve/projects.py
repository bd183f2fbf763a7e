"""The projects a request names, read from Label Studio (never from the request) and kept briefly.

A request says which project it is for; its labeling config is taken from Label Studio itself, so
a forged config cannot change what is predicted or how. A project this server is not told to
serve is 403, one Label Studio does not have 404; a key Label Studio refuses or a Label Studio that
does not answer is 502 (the backend's own setup, not the request, is at fault).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from prelabel.core.errors import LabelStudioError, LabelStudioUnavailableError, RefusedRequestError
from prelabel.labelstudio.client import LabelStudioClient, Project

__all__ = ["BadGatewayError", "Projects"]


class BadGatewayError(LabelStudioError):
    """Label Studio, behind the backend, failed it: answered 502 with Label Studio's reason."""


class Projects:
    """Projects by id, each read from Label Studio at most every ``ttl`` seconds."""

    def __init__(self, client: LabelStudioClient, served: Sequence[int] = (), ttl: float = 30.0) -> None:
        self.client, self.served, self.ttl = client, frozenset(served), ttl
        self._kept: dict[int, tuple[float, Project]] = {}
        self._lock = threading.Lock()

    def get(self, project_id: int) -> Project:
        """The project (its config parsed); 403, 404 or 502 as the module docstring says."""
        if self.served and project_id not in self.served:
            raise RefusedRequestError(
                403, f"project {project_id} is not served here (PRELABEL_SERVE_PROJECTS)"
            )
        with self._lock:
            kept = self._kept.get(project_id)
        if kept is not None and time.monotonic() - kept[0] < self.ttl:
            return kept[1]
        try:
            project = self.client.get_project(project_id)
        except LabelStudioUnavailableError as exc:
            raise BadGatewayError(
                exc.method, exc.url, exc.status, f"Label Studio did not answer: {exc.detail}"
            ) from exc
        except LabelStudioError as exc:
            if exc.status == 404:
                raise RefusedRequestError(
                    404, f"Label Studio at {self.client.url} has no project {project_id}"
                ) from exc
            raise BadGatewayError(
                exc.method, exc.url, exc.status, f"Label Studio refused: {exc.detail}"
            ) from exc
        with self._lock:
            self._kept[project_id] = (time.monotonic(), project)
        return project
