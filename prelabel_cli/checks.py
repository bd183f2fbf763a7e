"""Checks before work: what the command line can find out in about a second, it does,
before a flow (and Prefect's temporary server) starts: the model and its options, the
Label Studio URL and key, the key accepted, the project there."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prelabel.errors import LabelStudioError, LabelStudioUnavailableError, PrelabelError
from prelabel.ingest.manifest import read_manifest
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.models import create_model
from prelabel.quality.pairs import require_model_version
from prelabel.settings import load_settings

__all__ = ["check_images", "check_model", "check_project"]

_TIMEOUT = 5.0


def check_model(name: str, options: Mapping[str, Any]) -> None:
    """The model is known and takes these options (adapters load weights lazily: cheap)."""
    create_model(name, **options)


def check_images(manifest: str | None) -> None:
    """A manifest is read whole before the run (its mistakes are one line, not a failed flow)."""
    if manifest is not None:
        read_manifest(manifest)


def check_project(ls_url: str | None, project_id: int, model_version: str | None = None) -> None:
    """Label Studio answers at the URL, accepts the key, and has the project (with predictions
    of ``model_version``, when one is given)."""
    settings = load_settings()
    key = settings.ls_key_for(ls_url)
    url = settings.ls_url
    try:
        with LabelStudioClient(url, key, timeout=_TIMEOUT, retries=0) as client:
            client.get_project(project_id)
            if model_version is not None:
                require_model_version(client, project_id, model_version)
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
        if exc.status == 404:
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
