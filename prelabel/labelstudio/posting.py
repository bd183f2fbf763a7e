"""Post predictions in bulk, exactly once.

Label Studio is the source of truth for "already posted": a task that already has a
prediction with the run's ``model_version`` is skipped, so a rerun (after a crash too)
posts nothing twice. Predictions go in chunks through the bulk import endpoint.

A bulk POST that fails after it was sent (``AmbiguousWriteError``: a proxy's 502, a
dropped connection, a read timeout) may have been stored, so it is never repeated as it
was: the model versions of just that chunk's tasks are read again (one request) and only
the tasks still without the version are posted. ``recheck`` does the same read before
each chunk, for a retried batch whose ``existing`` predates its own first attempt.

A chunk Label Studio refuses as invalid (400: a server with prediction validation on
refuses the whole request for one invalid prediction, and stores none of it) is posted in
halves, recursively, until each refused prediction stands alone: k refused predictions of n
cost O(k log n) requests, the others are posted once, and each refused task is reported
with the server's reason (``PostReport.refused``). It has no prediction (with ``overwrite``,
its old one was deleted before the post), so a rerun tries it again. Other failures (401,
403, 404, 429, 5xx) are not about one prediction: they raise. With validation off, Label
Studio answers 201 and silently drops an invalid prediction: when fewer are created than
sent, the chunk's tasks are read once and those still without the version are reported as
refused too.

``overwrite`` works per chunk: read the chunk's state, delete that version's predictions
of the chunk's tasks (and only theirs), post. A crash leaves each chunk as it was or
replaced; a rerun with ``overwrite`` finishes the job. Either way no task ends with two
predictions of one version.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import Any

from prelabel.core.errors import AmbiguousWriteError, LabelStudioError
from prelabel.core.redact import redact
from prelabel.labelstudio.client import LabelStudioClient

__all__ = ["PostReport", "post_predictions"]

log = logging.getLogger(__name__)


@dataclass
class PostReport:
    """What a post did: counts, the task ids it skipped, and how often it read the state again.

    ``recovered`` counts tasks found stored after an ambiguous failure or a refusal (they are
    in ``created`` too); ``rechecks`` the requests that re-read a chunk's state; ``refused``
    maps each task whose prediction Label Studio refused (or dropped) to its reason.
    """

    created: int = 0
    replaced: int = 0
    requests: int = 0
    skipped: list[int] = field(default_factory=list)
    dry_run: bool = False
    recovered: int = 0
    rechecks: int = 0
    refused: dict[int, str] = field(default_factory=dict)


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
    recheck: bool = False,
    max_rounds: int = 3,
) -> PostReport:
    """Post ``predictions`` (task id -> prediction) for ``model_version``, each task once.

    ``existing`` maps task ids to the model versions they already have (from
    ``LabelStudioClient.iter_tasks``). ``recheck`` reads each chunk's state before posting
    it (pass it when the batch is being retried). ``max_rounds`` bounds the posts of one
    chunk after ambiguous failures (each preceded by a re-read); the last failure is
    raised. ``progress(done, total)`` is called per chunk.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    report = PostReport(dry_run=dry_run)
    if overwrite:
        todo = list(predictions)
    else:
        report.skipped = [t for t in predictions if model_version in existing.get(t, frozenset())]
        skip = set(report.skipped)
        todo = [t for t in predictions if t not in skip]
    if dry_run:
        report.created = len(todo)
        return report
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        if overwrite:
            _clear(client, project_id, model_version, chunk, report)
        elif recheck:
            chunk = _still_missing(client, project_id, model_version, chunk, report, report.skipped)
        _post_chunk(client, project_id, predictions, model_version, chunk, report, max_rounds)
        if progress is not None:
            progress(min(start + chunk_size, len(todo)), len(todo))
    return report


def _post_chunk(
    client: LabelStudioClient,
    project_id: int,
    predictions: Mapping[int, Mapping[str, Any]],
    model_version: str,
    chunk: Sequence[int],
    report: PostReport,
    max_rounds: int,
) -> None:
    """One bulk POST; after an ambiguous failure, re-read the chunk and post what is missing;
    a chunk refused as invalid is posted in halves (``_bisect``), one stored in part is read
    again to name what was dropped (``_dropped``)."""
    pending = list(chunk)
    for round_ in range(1, max_rounds + 1):
        if not pending:
            return
        payload = [{**predictions[t], "task": t, "model_version": model_version} for t in pending]
        report.requests += 1
        try:
            created = client.import_predictions(project_id, payload)
        except AmbiguousWriteError as exc:
            if round_ == max_rounds:
                raise
            log.warning("%s; reading its %d tasks' state to post only what is missing", exc, len(pending))
            stored: list[int] = []
            pending = _still_missing(client, project_id, model_version, pending, report, stored)
            report.created += len(stored)
            report.recovered += len(stored)
        except LabelStudioError as exc:
            if exc.status != 400:  # not about what was sent (auth, a missing project, overload)
                raise
            _bisect(client, project_id, predictions, model_version, pending, report, max_rounds, exc)
            return
        else:
            report.created += created
            if created < len(pending):
                _dropped(client, project_id, model_version, pending, report, created)
            return


def _dropped(
    client: LabelStudioClient,
    project_id: int,
    model_version: str,
    chunk: Sequence[int],
    report: PostReport,
    created: int,
) -> None:
    """Name the tasks of a chunk stored in part (one request): a server with prediction
    validation off answers 201 and drops each invalid prediction, its reason only in its log."""
    missing = _still_missing(client, project_id, model_version, chunk, report, [])
    reason = (
        f"Label Studio stored {created} of the {len(chunk)} predictions sent and dropped this one "
        "without saying why (an invalid prediction, on a server with prediction validation off; "
        "its log has the reason)"
    )
    for task_id in missing:
        report.refused[task_id] = reason
    log.warning("Label Studio dropped the predictions of tasks %s without saying why", missing)


def _bisect(
    client: LabelStudioClient,
    project_id: int,
    predictions: Mapping[int, Mapping[str, Any]],
    model_version: str,
    refused: Sequence[int],
    report: PostReport,
    max_rounds: int,
    error: LabelStudioError,
) -> None:
    """Post the halves of a refused chunk until each refused prediction is alone, then report it.

    Before splitting, the chunk's tasks are read again (one request): a server that imports
    in sub-batches (Label Studio's memory-efficient import, 500 a time) may have stored the
    first ones before refusing a later one, and those must not be posted twice.
    """
    if len(refused) == 1:
        report.refused[refused[0]] = _reason(error.detail)
        log.warning("Label Studio refused the prediction of task %d: %s", refused[0], redact(error.detail))
        return
    stored: list[int] = []
    pending = _still_missing(client, project_id, model_version, refused, report, stored)
    report.created += len(stored)
    report.recovered += len(stored)
    half = (len(pending) + 1) // 2
    for part in (pending[:half], pending[half:]):
        _post_chunk(client, project_id, predictions, model_version, part, report, max_rounds)


def _reason(detail: str) -> str:
    """Label Studio's reason for refusing one prediction, without its place in the request
    ("Prediction 0: "), which means nothing outside it."""
    return re.sub(r"(^|; )Prediction \d+: ", r"\1", detail)


def _still_missing(
    client: LabelStudioClient,
    project_id: int,
    model_version: str,
    chunk: Sequence[int],
    report: PostReport,
    has_it: MutableSequence[int],
) -> list[int]:
    """The tasks of ``chunk`` without ``model_version`` now (one request); the others go to ``has_it``."""
    state = client.task_versions(project_id, chunk)
    report.rechecks += 1
    missing = []
    for task_id in chunk:
        if model_version in state.get(task_id, frozenset()):
            has_it.append(task_id)
        else:
            missing.append(task_id)
    return missing


def _clear(
    client: LabelStudioClient, project_id: int, model_version: str, chunk: Sequence[int], report: PostReport
) -> None:
    """Delete ``model_version``'s predictions of the chunk's tasks, as read now.

    Tasks holding only that version lose all their predictions in one request; a task
    that also holds other versions has just this version's predictions deleted, one by one.
    """
    state = client.task_versions(project_id, chunk)
    report.rechecks += 1
    holders = [t for t in chunk if model_version in state.get(t, frozenset())]
    only_ours = [t for t in holders if state[t] == {model_version}]
    mixed = [t for t in holders if state[t] != {model_version}]
    if only_ours:
        report.replaced += client.delete_task_predictions(project_id, only_ours)
        report.requests += 1
    if not mixed:
        return
    for task in client.iter_tasks(project_id, ids=mixed, full=True, page_size=len(mixed)):
        for prediction in task.predictions:
            if prediction.get("model_version") == model_version:
                client.delete_prediction(int(prediction["id"]))
                report.replaced += 1
                report.requests += 1
    log.info("deleted %s's predictions of %d tasks that hold other versions too", model_version, len(mixed))
