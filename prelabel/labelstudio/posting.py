"""Post predictions in bulk, idempotently.

Label Studio is the source of truth for "already posted": a task that already has a
prediction with the run's ``model_version`` is skipped, so a rerun (after a crash too)
posts nothing twice. ``overwrite`` replaces that version's predictions of the tasks in
this run, and only theirs. Predictions go in chunks through the bulk import endpoint;
each chunk is one request, created whole or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prelabel.labelstudio.client import LabelStudioClient

__all__ = ["PostReport", "post_predictions"]

log = logging.getLogger(__name__)


@dataclass
class PostReport:
    """What a post did: counts and the task ids it skipped."""

    created: int = 0
    replaced: int = 0
    requests: int = 0
    skipped: list[int] = field(default_factory=list)
    dry_run: bool = False


def post_predictions(
    client: LabelStudioClient,
    project_id: int,
    predictions: Mapping[int, Mapping[str, Any]],
    model_version: str,
    existing: Mapping[int, frozenset[str]],
    *,
    overwrite: bool = False,
    chunk_size: int = 500,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PostReport:
    """Post ``predictions`` (task id -> prediction) for ``model_version``.

    ``existing`` maps task ids to the model versions they already have (from
    ``LabelStudioClient.iter_tasks``). ``progress(done, total)`` is called per chunk.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    report = PostReport(dry_run=dry_run)
    already = [t for t in predictions if model_version in existing.get(t, frozenset())]
    if overwrite:
        if already and not dry_run:
            report.replaced = _delete_version(client, project_id, model_version, already, existing)
        todo = list(predictions)
    else:
        report.skipped = already
        skip = set(already)
        todo = [t for t in predictions if t not in skip]
    payload = [{**predictions[t], "task": t, "model_version": model_version} for t in todo]
    if dry_run:
        report.created = len(payload)
        return report
    for start in range(0, len(payload), chunk_size):
        chunk = payload[start : start + chunk_size]
        report.created += client.import_predictions(project_id, chunk)
        report.requests += 1
        if progress is not None:
            progress(min(start + chunk_size, len(payload)), len(payload))
    return report


def _delete_version(
    client: LabelStudioClient,
    project_id: int,
    model_version: str,
    tasks: Sequence[int],
    existing: Mapping[int, frozenset[str]],
) -> int:
    """Delete ``model_version``'s predictions of ``tasks``: one call when they are all of them."""
    holders = {t for t, versions in existing.items() if model_version in versions}
    if holders <= set(tasks):
        return client.delete_model_version(project_id, model_version)
    deleted = 0
    for task_id in tasks:
        for prediction in client.task_predictions(task_id):
            if prediction.get("model_version") == model_version:
                client.delete_prediction(int(prediction["id"]))
                deleted += 1
    log.info("deleted %d predictions of %s one by one (other tasks keep theirs)", deleted, model_version)
    return deleted
