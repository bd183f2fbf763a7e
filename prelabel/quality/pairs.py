"""A model version's predictions beside what people kept, task by task.

A prediction's results have the shape of an annotation's, so the annotation converter
(``prelabel.labelstudio.regions``) reads both: the task's predictions of the version stand in
for the annotations of a copy of the task (the latest one when a task has several). Only tasks
with that version's prediction and a non-cancelled annotation count; each contributes its
latest annotation (``select_annotations``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow
from prelabel.labelstudio.client import LabelStudioClient, Project, Task
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.matching import task_file_name
from prelabel.labelstudio.regions import Extraction, Region, extract_regions, select_annotations

__all__ = ["Pairs", "TaskPair", "load_pairs", "pair_tasks", "require_model_version"]

RegionKey = tuple[str, str]
"""(result type, region id): how a predicted region is found again in the annotation."""


@dataclass(frozen=True)
class TaskPair:
    """One task's predicted and annotated regions (pixels) and task-wide values by control.

    ``scores`` are the predicted results' own scores (else the prediction's score), by
    ``(type, region id)``; ``reviewed`` the predicted results people accepted in ``review apply``.
    """

    task_id: int
    image: str
    predicted: list[Region]
    annotated: list[Region]
    predicted_values: Mapping[str, list[str]]
    annotated_values: Mapping[str, list[str]]
    scores: Mapping[RegionKey, float]
    reviewed: frozenset[RegionKey] = frozenset()


@dataclass
class Pairs:
    """The model version's tasks that count, how many predicted tasks had no annotation yet,
    the results that could not be read (one row each, predictions' and annotations' alike) and
    those of types not measured (ellipses, ratings, empty brushes: counted by type)."""

    model_version: str
    tasks: list[TaskPair] = field(default_factory=list)
    unannotated: int = 0
    errors: list[ErrorRow] = field(default_factory=list)
    not_measured: Counter[str] = field(default_factory=Counter)


def load_pairs(
    client: LabelStudioClient,
    project_id: int,
    model_version: str | None,
    page_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> tuple[Project, Pairs]:
    """The project and its tasks' pairs for ``model_version`` (which it must have predictions
    of); None means the project's own model version, the one its annotators are shown.
    ``progress(1)`` is called for each task read."""
    project = client.get_project(project_id)
    version = model_version or project.model_version
    if not version:
        raise PrelabelError(
            f"project {project_id} shows annotators no model version: name the one to measure"
        )
    require_model_version(client, project_id, version)
    tasks = client.iter_tasks(project_id, full=True, page_size=page_size)
    return project, pair_tasks(_ticking(tasks, progress), project.config, version)


def _ticking(tasks: Iterable[Task], progress: Callable[[int], None] | None) -> Iterator[Task]:
    for task in tasks:
        if progress is not None:
            progress(1)
        yield task


def require_model_version(client: LabelStudioClient, project_id: int, model_version: str) -> None:
    """A version the project has no predictions of is an error naming the versions it has."""
    versions = client.model_versions(project_id)
    if model_version not in versions:
        known = ", ".join(f"{v!r} ({n} predictions)" for v, n in sorted(versions.items())) or "none"
        raise PrelabelError(
            f"project {project_id} has no predictions of model version {model_version!r}; "
            f"its model versions: {known}"
        )


def pair_tasks(tasks: Iterable[Task], config: LabelConfig, model_version: str) -> Pairs:
    """Each task with a prediction of ``model_version`` and a non-cancelled annotation, paired."""
    out = Pairs(model_version)
    for task in tasks:
        predictions = [p for p in task.predictions if str(p.get("model_version")) == model_version]
        if not predictions:
            continue
        if not select_annotations(task):
            out.unannotated += 1
            continue
        chosen = select_annotations(dataclasses.replace(task, annotations=predictions))[0]
        predicted = extract_regions([dataclasses.replace(task, annotations=[chosen], predictions=())], config)
        annotated = extract_regions([task], config)
        # the converter calls the prediction it reads an annotation: say which side failed
        side = f"prediction of model version {model_version!r}"
        out.errors += [dataclasses.replace(e, error=f"{side}: {e.error}") for e in predicted.errors]
        out.errors += annotated.errors
        out.not_measured += predicted.not_exported + annotated.not_exported
        out.tasks.append(
            TaskPair(
                task_id=task.id,
                image=task_file_name(task.image_ref(config.image.data_key)),
                predicted=predicted.regions,
                annotated=annotated.regions,
                predicted_values=_task_values(predicted),
                annotated_values=_task_values(annotated),
                scores=_scores(chosen),
                reviewed=_reviewed(chosen),
            )
        )
    return out


def _task_values(extraction: Extraction) -> dict[str, list[str]]:
    """The task-wide Choices/TextArea values of the one selected annotation (or prediction)."""
    values: dict[str, list[str]] = {}
    for row in extraction.task_values:
        values.update(row.values)
    return values


def _scores(prediction: Mapping[str, Any]) -> dict[RegionKey, float]:
    """Each result's score, else the prediction's, else 1 (a prediction need not score)."""
    overall = prediction.get("score")
    default = float(overall) if isinstance(overall, int | float) else 1.0
    scores = {}
    for result in prediction.get("result") or []:
        score = result.get("score")
        key = (str(result.get("type") or ""), str(result.get("id") or ""))
        scores[key] = float(score) if isinstance(score, int | float) else default
    return scores


def _reviewed(prediction: Mapping[str, Any]) -> frozenset[RegionKey]:
    """The results people accepted in ``review apply`` (``meta.reviewed`` true)."""
    return frozenset(
        (str(r.get("type") or ""), str(r.get("id") or ""))
        for r in prediction.get("result") or []
        if isinstance(r.get("meta"), Mapping) and r["meta"].get("reviewed") is True
    )
