"""Checks before work: what the command line can find out in about a second, it does,
before a flow (and Prefect's temporary server) starts: the model and its options, the
Label Studio URL and key, the server being Label Studio, the key accepted, the project there.

Every command that talks to Label Studio goes through ``label_studio`` (or ``check_project``)
once: a wrong server, a refused key or a missing project is one line, after the one retry
policy has had its chance with a transient answer (a 503, a server still starting).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx

from prelabel.core.errors import (
    LabelStudioError,
    LabelStudioUnavailableError,
    NotLabelStudioError,
    PrelabelError,
)
from prelabel.core.settings import load_settings
from prelabel.labelstudio.client import LabelStudioClient, Project

__all__ = [
    "check_images",
    "check_model",
    "check_project",
    "check_project_meanwhile",
    "check_verifier",
    "label_studio",
]

_TIMEOUT = 5.0  # seconds per request of the check
# Patience for a server that is starting or briefly busy: waits of up to 0.5, 1, 2 and 4 s.
_RETRIES, _BACKOFF = 4, 0.5


def check_model(name: str, options: Mapping[str, Any]) -> None:
    """The model is known and takes these options (adapters load weights lazily: cheap)."""
    from prelabel.predict.models import create_model

    create_model(name, **options)


def check_images(manifest: str | None) -> None:
    """A manifest is read whole before the run (its mistakes are one line, not a failed flow)."""
    if manifest is not None:
        from prelabel.ingest.manifest import read_manifest

        read_manifest(manifest)


@contextlib.contextmanager
def label_studio(ls_url: str | None, project_id: int | None = None) -> Iterator[LabelStudioClient]:
    """A client of the command's Label Studio, checked first (``check_project``; the project
    only when one is named). The command's own work keeps its errors."""
    with _checking(ls_url, project_id) as client:
        if project_id is not None:
            client.get_project(project_id)
    settings = load_settings()
    key = settings.ls_key_for(ls_url)
    with LabelStudioClient(settings.ls_url, key, timeout=settings.request_timeout) as client:
        yield client


def check_project(ls_url: str | None, project_id: int, model_version: str | None = None) -> Project:
    """The project, once its Label Studio is checked: the server is Label Studio (its version
    endpoint answers JSON, before the key is sent), it accepts the key, it has the project (with
    predictions of ``model_version`` when one is given). Each failure is one line."""
    with _checking(ls_url, project_id) as client:
        project = client.get_project(project_id)
        if model_version is not None:
            from prelabel.quality.pairs import require_model_version

            require_model_version(client, project_id, model_version)
    return project


@contextlib.contextmanager
def check_project_meanwhile(ls_url: str | None, project_id: int) -> Iterator[Callable[[], Project]]:
    """``check_project`` in a thread while the block runs; the block gets a function that
    returns the project (or raises the check's error). For the imports of a flow: they keep the
    CPU busy for about a second while the check's requests mostly wait on Label Studio.

    The thread imports nothing (two threads importing modules that import each other can
    deadlock): what httpx loads on its first client and first connection is loaded here first.
    It is a daemon: Ctrl-C during the block does not wait for a slow Label Studio."""
    httpx.Client().close()  # httpx imports its transport (httpcore, h11, h2, certifi) on a first client
    "localhost".encode("idna")  # and the IDNA codec on a first connection
    checked: Future[Project] = Future()

    def check() -> None:
        try:
            checked.set_result(check_project(ls_url, project_id))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, whatever it is)
            checked.set_exception(exc)

    threading.Thread(target=check, name="prelabel-check", daemon=True).start()
    yield checked.result


@contextlib.contextmanager
def _checking(ls_url: str | None, project_id: int | None) -> Iterator[LabelStudioClient]:
    """A quick client of a Label Studio known to be one that accepts the key; the block's Label
    Studio errors as one line."""
    settings = load_settings()
    key, url = settings.ls_key_for(ls_url), settings.ls_url
    checking = LabelStudioClient(url, key, timeout=_TIMEOUT, retries=_RETRIES, backoff=_BACKOFF)
    with _one_line(url, project_id), _quiet_retries(), checking as client:
        client.check()
        yield client


@contextlib.contextmanager
def _quiet_retries() -> Iterator[None]:
    """The check's retries unsaid: what it found is the one line (a server that is down is not
    four warnings and then the line)."""
    logger = logging.getLogger("prelabel.core.retry")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _one_line(url: str, project_id: int | None) -> Iterator[None]:
    """The check's Label Studio errors as the one line a user can act on."""
    try:
        yield
    except NotLabelStudioError as exc:
        raise PrelabelError(f"{url} {exc.detail}") from exc
    except LabelStudioUnavailableError as exc:
        raise PrelabelError(
            f"Label Studio at {url} did not answer ({exc.detail}); start it or pass --ls-url"
        ) from exc
    except LabelStudioError as exc:
        if exc.status in (401, 403):
            raise PrelabelError(
                f"Label Studio at {url} refused the API key ({exc.status}); "
                "check --api-key or PRELABEL_LS_API_KEY"
            ) from exc
        if exc.status == 404 and project_id is not None:
            raise PrelabelError(
                f"Label Studio at {url} has no project {project_id} (or the key cannot see it)"
            ) from exc
        raise


def check_verifier(path: Path | None) -> str | None:
    """A verifier file that is there and readable (before the flow starts), as an absolute path."""
    if path is None:
        return None
    from prelabel.review.verifier import Verifier

    Verifier.load(path)
    return str(path.resolve())
