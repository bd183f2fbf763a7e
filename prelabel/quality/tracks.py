"""A video project's quality: a model version's tracks against people's, per label.

Both sides go through one converter, as images do: the version's prediction (the latest one of
a task) and the task's latest non-cancelled annotation are expanded as the frontend draws them
(``prelabel.video.mot``) and scored by ``prelabel.video.metrics.track_scores`` (MOTA and IDF1 at
a box IoU, HOTA). Boxes are in pixels when the task data or a result gives the frame size,
else in percent of the frame: a box IoU is the same in both for unrotated boxes. A video counts
its frames as the longer side says (``framesCount``).

Files in the output folder: ``tracks.csv`` (a row per label, ``TRACK_COLUMNS``),
``summary.json`` and ``errors.csv`` (regions that could not be read).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prelabel.core.atomic import atomic_write, atomic_write_csv
from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow, Stage, failure_row, write_errors
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.matching import task_file_name
from prelabel.labelstudio.regions import select_annotations
from prelabel.quality.markdown import cell, text
from prelabel.quality.pairs import require_model_version
from prelabel.video.metrics import TrackScore, VideoPair, track_scores
from prelabel.video.mot import MotRow, mot_rows
from prelabel.video.pull import frame_size
from prelabel.video.regions import video_regions

__all__ = [
    "TRACK_COLUMNS",
    "TrackPairs",
    "TrackQuality",
    "is_video_project",
    "load_track_pairs",
    "measure_tracks",
    "pair_videos",
    "write_track_quality",
]

TRACK_COLUMNS = [f.name for f in dataclasses.fields(TrackScore)]
_PERCENT = (100, 100)  # the frame in percent: boxes as Label Studio stores them


def is_video_project(config: LabelConfig) -> bool:
    """Whether the project labels videos (its media is a ``<Video>``): its quality is tracks'."""
    return config.media.kind == "Video"


@dataclass
class TrackPairs:
    """The videos with the version's prediction and an annotation, how many predicted videos had
    no annotation yet, and the regions that could not be read."""

    model_version: str
    videos: list[VideoPair] = field(default_factory=list)
    unannotated: int = 0
    errors: list[ErrorRow] = field(default_factory=list)


def load_track_pairs(
    client: LabelStudioClient,
    project_id: int,
    model_version: str | None,
    progress: Callable[[int], None] | None = None,
) -> TrackPairs:
    """The project's videos paired for ``model_version`` (None: the project's own, the one its
    annotators are shown); ``progress(1)`` is called for each task read."""
    project = client.get_project(project_id)
    version = model_version or project.model_version
    if not version:
        raise PrelabelError(
            f"project {project_id} shows annotators no model version: name the one to measure"
        )
    require_model_version(client, project_id, version)
    tasks = client.iter_tasks(project_id, full=True)
    return pair_videos(_ticking(tasks, progress), project.config, version)


def _ticking(tasks: Iterable[Task], progress: Callable[[int], None] | None) -> Iterable[Task]:
    for task in tasks:
        if progress is not None:
            progress(1)
        yield task


def pair_videos(tasks: Iterable[Task], config: LabelConfig, model_version: str) -> TrackPairs:
    """Each video task with a prediction of ``model_version`` and a non-cancelled annotation, as
    people's boxes and the model's on every frame; a video with an unreadable region is an error
    row (both sides of it are left out: half a video would skew the scores)."""
    out = TrackPairs(model_version)
    key = config.video.data_key
    for task in tasks:
        predictions = [p for p in task.predictions if str(p.get("model_version")) == model_version]
        if not predictions:
            continue
        annotations = select_annotations(task)
        if not annotations:
            out.unannotated += 1
            continue
        prediction = select_annotations(dataclasses.replace(task, annotations=predictions))[0]
        name = task_file_name(task.image_ref(key)) or f"task {task.id}"
        try:
            model, model_frames = _boxes(task, prediction, f"prediction of model version {model_version!r}")
            people, people_frames = _boxes(task, annotations[0], f"annotation {annotations[0].get('id')}")
        except PrelabelError as exc:
            out.errors.append(failure_row(name, Stage.PULL, exc))
            continue
        out.videos.append(VideoPair(name, people, model, max(model_frames, people_frames)))
    return out


def _boxes(task: Task, holder: Mapping[str, Any], side: str) -> tuple[list[MotRow], int]:
    """One side's boxes on every frame they are drawn on, and its frame count."""
    results = holder.get("result") or []
    found, problems = video_regions(results)
    if problems:
        raise PrelabelError(f"{side}: " + "; ".join(problems))
    size = frame_size(task, results) or _PERCENT
    count = max((r.frames_count for r in found), default=0)
    return mot_rows(found, *size), count


@dataclass
class TrackQuality:
    """What a video project's quality run found (the flow's result); ``files`` names what was written."""

    project_id: int
    model_version: str
    iou_threshold: float
    videos: int
    unannotated: int
    labels: list[TrackScore]
    errors: int
    files: dict[str, str] = field(default_factory=dict)

    def label_rows(self) -> list[dict[str, Any]]:
        """One row per label (``TRACK_COLUMNS``); undefined metrics are None."""
        return [asdict(s) for s in self.labels]

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "model_version": self.model_version,
            "iou_threshold": self.iou_threshold,
            "videos": self.videos,
            "unannotated": self.unannotated,
            "labels": self.label_rows(),
            "errors": self.errors,
            "files": self.files,
        }

    def markdown(self) -> str:
        lines = [
            f"# Tracks of model version {text(self.model_version)}, project {self.project_id}",
            "",
            f"{self.videos} videos with a prediction and an annotation (latest, not cancelled); "
            f"{self.unannotated} predicted videos not annotated yet. MOTA and IDF1 match boxes at IoU "
            f"{self.iou_threshold}; HOTA averages its own thresholds.",
            "",
            "| " + " | ".join(TRACK_COLUMNS) + " |",
            "|" + "---|" * len(TRACK_COLUMNS),
        ]
        lines += ["| " + " | ".join(cell(v) for v in row.values()) + " |" for row in self.label_rows()]
        if self.errors:
            lines += ["", f"- {self.errors} videos could not be read (errors.csv)"]
        return "\n".join(lines)


def measure_tracks(pairs: TrackPairs, project_id: int, iou_threshold: float = 0.5) -> TrackQuality:
    """Every number of the report, from the paired videos."""
    return TrackQuality(
        project_id=project_id,
        model_version=pairs.model_version,
        iou_threshold=iou_threshold,
        videos=len(pairs.videos),
        unannotated=pairs.unannotated,
        labels=track_scores(pairs.videos, iou_threshold),
        errors=len(pairs.errors),
    )


def write_track_quality(out_dir: Path, summary: TrackQuality, errors: list[ErrorRow]) -> TrackQuality:
    """Write the report's files into ``out_dir``; the summary comes back naming them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"tracks": out_dir / "tracks.csv", "errors": out_dir / "errors.csv"}
    atomic_write_csv(files["tracks"], TRACK_COLUMNS, ([*r.values()] for r in summary.label_rows()))
    write_errors(files["errors"], errors)
    summary.files = {key: str(path) for key, path in files.items()}
    summary.files["summary"] = str(out_dir / "summary.json")
    atomic_write(out_dir / "summary.json", json.dumps(summary.to_json(), indent=2))
    return summary
