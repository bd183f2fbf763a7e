"""Tasks that talk to Label Studio: read the project, match or import, post, pull."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow, Stage, failure_row, write_errors
from prelabel.ingest.taskrefs import task_image_uri
from prelabel.labelstudio.client import Project, Task
from prelabel.labelstudio.exemplars import exemplar_boxes
from prelabel.labelstudio.importing import import_images
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.matching import MatchResult, match_files
from prelabel.labelstudio.posting import PostReport, post_predictions
from prelabel.labelstudio.predictions import BatchBuild, build_batch
from prelabel.labelstudio.pullback import ERRORS_FILE, Format, PullReport, pull_annotations
from prelabel.records import PredictionRecord
from prelabel.video.pull import pull_mot
from tasks.common import RETRY, LabelStudioConnection
from tasks.reporting import Progress

__all__ = [
    "MatchOutcome",
    "load_project",
    "match_images",
    "post_batch",
    "pull",
    "read_exemplars",
    "show_predictions",
    "tasks_by_id",
]


@dataclass
class MatchOutcome:
    """Images paired with tasks, what was imported (in a dry run: would be), what could not be
    paired, and the files refused on import (error rows)."""

    task_ids: dict[str, int] = field(default_factory=dict)
    versions: dict[int, frozenset[str]] = field(default_factory=dict)
    imported: int = 0
    match: MatchResult = field(default_factory=MatchResult)
    errors: list[ErrorRow] = field(default_factory=list)


@task(name="load-project", cache_policy=NO_CACHE, **RETRY)
def load_project(connection: LabelStudioConnection, project_id: int) -> Project:
    """The project and its parsed labeling config."""
    with connection.client() as client:
        return client.get_project(project_id)


@task(name="match-images", cache_policy=NO_CACHE, **RETRY)
def match_images(
    connection: LabelStudioConnection,
    project: Project,
    images: Sequence[str],
    import_new: bool,
    fuzzy: bool = False,
    task_data: Mapping[str, Mapping[str, str]] | None = None,
    *,
    max_pixels: int,
    dry_run: bool = False,
    data_key: str | None = None,
    check: Callable[[str, int], PrelabelError | None] | None = None,
) -> MatchOutcome:
    """Pair images with tasks by name; with ``import_new``, new images become tasks first (each
    file checked first: a bad one is an error row, never a task; a dry run imports nothing).

    ``fuzzy`` allows similar names (never names whose numbers differ); every pair made other
    than by exact name goes to the matches report. ``task_data`` adds fields to new tasks.
    ``data_key`` and ``check``: a video project's key and file checks (default: the image's)."""
    key = data_key or project.config.image.data_key
    with connection.client() as client:
        tasks: list[Task] = list(client.iter_tasks(project.id))
        outcome = MatchOutcome()
        if import_new:
            imported = import_images(
                client,
                project.id,
                key,
                images,
                tasks,
                task_data=task_data,
                max_pixels=max_pixels,
                dry_run=dry_run,
                check=check,
            )
            outcome.imported = len(imported.planned if dry_run else imported.created)
            outcome.errors = imported.refused
            if imported.created:
                tasks = list(client.iter_tasks(project.id))
    refused = {row.file for row in outcome.errors}
    wanted = [image for image in images if image not in refused]
    outcome.match = match_files(wanted, [(t.id, t.image_ref(key)) for t in tasks], fuzzy=fuzzy)
    outcome.task_ids = {m.file: m.task_id for m in outcome.match.matches}
    outcome.versions = {t.id: t.model_versions for t in tasks}
    return outcome


@task(name="tasks-by-id", cache_policy=NO_CACHE, **RETRY)
def tasks_by_id(connection: LabelStudioConnection, project: Project, task_ids: Sequence[int]) -> MatchOutcome:
    """These tasks of the project, each paired with its own image (what the ML backend hands
    over; no matching by name). An id the project does not have, a task without an image and a
    second task showing the same image (its first task gets the prediction) are error rows."""
    key = project.config.image.data_key
    with connection.client() as client:
        tasks = {t.id: t for t in client.iter_tasks(project.id, ids=task_ids)}
    outcome = MatchOutcome()
    for task_id in dict.fromkeys(task_ids):
        found = tasks.get(task_id)
        name = f"task {task_id}"
        if found is None:
            problem = PrelabelError(f"project {project.id} has no task {task_id}")
        elif not found.image_ref(key):
            problem = PrelabelError(f"no image under ${key} in its data")
        else:
            uri = task_image_uri(found.image_ref(key), connection.url)
            first = outcome.task_ids.setdefault(uri, task_id)
            if first == task_id:
                outcome.versions[task_id] = found.model_versions
                continue
            problem = PrelabelError(f"the same image as task {first}, which gets the prediction")
        outcome.errors.append(failure_row(name, Stage.READ, problem))
    return outcome


@task(name="read-exemplars", cache_policy=NO_CACHE, **RETRY)
def read_exemplars(
    connection: LabelStudioConnection,
    project: Project,
    images: Sequence[str],
    label_map: LabelMap,
    fuzzy: bool,
) -> dict[str, list[list[Any]]]:
    """People's boxes in the annotated tasks of the project, by image (paired with tasks as
    ``match-images`` pairs them): a concept model's exemplars."""
    key = project.config.image.data_key
    with connection.client() as client:
        tasks = list(client.iter_tasks(project.id, full=True))
    match = match_files(images, [(t.id, t.image_ref(key)) for t in tasks], fuzzy=fuzzy)
    annotated = [t for t in tasks if t.annotations]
    return exemplar_boxes(annotated, project.config, {m.file: m.task_id for m in match.matches}, label_map)


@task(name="post-batch", cache_policy=NO_CACHE, **RETRY)
def post_batch(
    connection: LabelStudioConnection,
    project: Project,
    records: Sequence[PredictionRecord],
    versions: Mapping[int, frozenset[str]],
    label_map: LabelMap,
    model_version: str,
    *,
    overwrite: bool,
    dry_run: bool,
    masks: bool | None,
    polygon_tolerance: float,
    chunk_size: int,
) -> tuple[BatchBuild, PostReport]:
    """Convert a batch of records into predictions and post them exactly once.

    ``versions`` were read before the run; a retried run of this task re-reads each chunk's
    tasks before posting it (an earlier try may have stored some of them). A prediction Label
    Studio refuses becomes its image's error row (stage "post", the server's reason).
    """
    from prefect.runtime import task_run

    batch = build_batch(
        records, project.config, label_map, model_version, masks=masks, polygon_tolerance=polygon_tolerance
    )
    with connection.client() as client:
        report = post_predictions(
            client,
            project.id,
            batch.predictions,
            model_version,
            versions,
            overwrite=overwrite,
            chunk_size=chunk_size,
            dry_run=dry_run,
            recheck=task_run.run_count > 1,
        )
    for task_id, reason in report.refused.items():
        refused = PrelabelError(f"Label Studio refused the prediction: {reason}")
        batch.errors.append(failure_row(batch.names[task_id], Stage.POST, refused))
    return batch, report


@task(name="show-predictions", cache_policy=NO_CACHE, **RETRY)
def show_predictions(connection: LabelStudioConnection, project_id: int, model_version: str) -> None:
    """Make ``model_version`` the project's model version, its predictions shown to annotators."""
    with connection.client() as client:
        client.show_predictions(project_id, model_version)


@task(name="pull-annotations", cache_policy=NO_CACHE, **RETRY)
def pull(
    connection: LabelStudioConnection,
    project_id: int,
    out_dir: Path,
    formats: Sequence[Format],
    all_annotators: bool,
    full: bool,
) -> PullReport:
    """Export human annotations (incrementally) to COCO and tables; ``mot``: a video project's tracks
    as MOTChallenge CSV and COCO JSON per video (every annotated task, each pull)."""
    progress = Progress(0, f"prelabel-pull-project-{project_id}-progress", unit="tasks read")
    with connection.client() as client:
        if "mot" in formats:
            mot = pull_mot(client, project_id, out_dir, all_annotators, progress=progress.advance)
            errors_file = out_dir / ERRORS_FILE
            write_errors(errors_file, mot.errors)
            return PullReport(
                fetched=mot.videos,
                stored=mot.videos,
                regions=mot.tracks,
                files=mot.files,
                errors=mot.errors,
                errors_file=errors_file,
            )
        return pull_annotations(
            client,
            project_id,
            out_dir,
            formats=formats,
            all_annotators=all_annotators,
            full=full,
            progress=progress.advance,
        )


def payload_rows(batch: BatchBuild) -> list[tuple[str, int, dict[str, Any]]]:
    """(image name, task id, payload) of every prediction in a batch, for the report files."""
    return [(batch.names[t], t, p) for t, p in batch.predictions.items()]
