"""``prelabel pull --format mot``: people's video tracks back, a MOTChallenge CSV and a COCO JSON per video.

Each annotated video task contributes its latest non-cancelled annotation (or every one with
``all_annotators``: ``<video>.<annotation id>``), expanded as the frontend draws it
(``prelabel.video.mot``). Pixels need the frame size: the task's ``width``/``height`` (prelabel's
video imports set them), else the result's ``original_width``/``original_height``; a task
without either, or a malformed region, is an error row and the rest is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prelabel.core.atomic import atomic_write
from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow, Stage, failure_row
from prelabel.core.paths import safe_file_name
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.regions import select_annotations
from prelabel.video.mot import MotRow, mot_rows, to_coco_frames, write_mot
from prelabel.video.regions import video_regions

__all__ = ["MotPull", "frame_size", "pull_mot", "task_tracks"]


@dataclass
class MotPull:
    """What a MOT pull wrote: a file per video and kind, its boxes, and the error rows."""

    videos: int = 0
    tracks: int = 0
    boxes: int = 0
    files: list[Path] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)


def frame_size(task: Task, results: Any) -> tuple[int, int] | None:
    """The video's width and height in pixels, from the task data or a result."""
    for source in (task.data, *(r for r in results if isinstance(r, Mapping))):
        width = source.get("width", source.get("original_width"))
        height = source.get("height", source.get("original_height"))
        try:
            if width is not None and height is not None and int(width) > 0 and int(height) > 0:
                return int(width), int(height)
        except (TypeError, ValueError):
            continue
    return None


def task_tracks(
    task: Task, annotation: Mapping[str, Any], name: str
) -> tuple[list[MotRow], int, tuple[int, int]]:
    """An annotation's boxes on every frame (pixels), its frame count and the frame size;
    ``PrelabelError`` when a region is malformed or the frame size is unknown."""
    results = annotation.get("result") or []
    found, problems = video_regions(results)
    if problems:
        raise PrelabelError(f"{name}: " + "; ".join(problems))
    size = frame_size(task, results)
    if size is None:
        raise PrelabelError(f"{name}: no frame size: add width and height to the task data")
    count = max((r.frames_count for r in found), default=0)
    return mot_rows(found, *size), count, size


def pull_mot(
    client: LabelStudioClient,
    project_id: int,
    out_dir: Path,
    all_annotators: bool = False,
    progress: Callable[[int], None] | None = None,
) -> MotPull:
    """Write ``mot/<video>.txt`` and ``coco/<video>.json`` for every annotated video task;
    ``progress(1)`` is called for each task read."""
    project = client.get_project(project_id)
    key = project.config.video.data_key
    labels = list(project.config.video_labels)
    out = MotPull()
    (out_dir / "mot").mkdir(parents=True, exist_ok=True)
    (out_dir / "coco").mkdir(parents=True, exist_ok=True)
    for task in client.iter_tasks(project_id, full=True):
        if progress is not None:
            progress(1)
        annotations = select_annotations(task, all_annotators)
        video = safe_file_name(Path(task.image_ref(key)).name or f"task{task.id}")
        for annotation in annotations:
            name = f"{video}.{annotation['id']}" if all_annotators else video
            try:
                rows, count, size = task_tracks(task, annotation, name)
            except PrelabelError as exc:
                out.errors.append(failure_row(name, Stage.PULL, exc))
                continue
            mot, coco = out_dir / "mot" / f"{name}.txt", out_dir / "coco" / f"{name}.json"
            write_mot(mot, rows)
            atomic_write(coco, json.dumps(to_coco_frames(name, rows, *size, count, labels)))
            out.files += [mot, coco]
            out.videos += 1
            out.tracks += len({r.track for r in rows})
            out.boxes += len(rows)
    return out
