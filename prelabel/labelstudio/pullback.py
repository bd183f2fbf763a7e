"""Pull human annotations back: COCO JSON and a one-row-per-region table.

By default each task contributes its latest non-cancelled annotation; ``all_annotators``
keeps every non-cancelled one. Rectangles come back as pixel boxes; a rotated rectangle
keeps its exact corners (the table's ``corners``) and angle (``rotation``; in COCO the
annotation's ``attributes``) beside its enclosing box (COCO ``bbox``). Brush masks are
decoded and re-encoded as COCO RLE. Each result is converted on its own: a malformed one
becomes an error row (``pull_errors.csv``) and the rest is exported; result types not
exported yet (polygons, keypoints, text ...) are counted by type. Pulls are incremental:
the raw tasks are kept in the output directory and a later pull fetches only tasks
updated since the last one (a task deleted in Label Studio stays until a ``full`` pull).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from prelabel.atomic import atomic_write, atomic_writer
from prelabel.convert.geometry import corners_to_xyxy, percent_to_corners, percent_to_xyxy, xyxy_to_xywh
from prelabel.convert.masks import brush_to_mask, mask_to_coco
from prelabel.errors import AnnotationError, MaskError
from prelabel.failures import ErrorRow, Stage, item_failure, write_errors
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.matching import task_file_name

__all__ = [
    "ERRORS_FILE",
    "EXPORTED_TYPES",
    "Extraction",
    "PullReport",
    "extract_regions",
    "pull_annotations",
    "regions",
    "select_annotations",
    "to_coco",
    "to_table",
]

Format = Literal["coco", "parquet", "csv"]
EXPORTED_TYPES = frozenset({"rectanglelabels", "brushlabels"})
ERRORS_FILE = "pull_errors.csv"
_STORE = "tasks.json"
_STATE = "pull_state.json"
Corners = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Region:
    """One annotated region in pixels, with where it came from."""

    task_id: int
    image: str
    annotation_id: int
    annotator: Any
    kind: str
    label: str
    xyxy: tuple[float, float, float, float]
    area: float
    width: int
    height: int
    mask: dict[str, Any] | None
    lead_time: float | None
    created_at: str
    updated_at: str
    from_prediction_unchanged: bool
    rotation: float = 0.0
    corners: Corners | None = None


@dataclass
class Extraction:
    """The regions of some tasks, the results that failed (one row each), and the result
    types left out, counted by type."""

    regions: list[Region] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    not_exported: Counter[str] = field(default_factory=Counter)


@dataclass
class PullReport:
    """What a pull fetched and wrote; ``errors`` are also in ``pull_errors.csv``."""

    fetched: int
    stored: int
    regions: int
    files: list[Path]
    errors: list[ErrorRow] = field(default_factory=list)
    not_exported: dict[str, int] = field(default_factory=dict)
    errors_file: Path | None = None


def select_annotations(task: Task, all_annotators: bool = False) -> list[Mapping[str, Any]]:
    """The task's non-cancelled annotations: the latest one, or all of them."""
    kept = [a for a in task.annotations if not a.get("was_cancelled")]
    if all_annotators or len(kept) <= 1:
        return kept
    return [max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), int(a["id"])))]


def regions(tasks: Iterable[Task], config: LabelConfig, all_annotators: bool = False) -> list[Region]:
    """Every rectangle and brush region of the selected annotations, in pixels (results that
    fail or are not exported are left out: ``extract_regions`` reports them)."""
    return extract_regions(tasks, config, all_annotators).regions


def extract_regions(tasks: Iterable[Task], config: LabelConfig, all_annotators: bool = False) -> Extraction:
    """Every rectangle and brush region of the selected annotations, in pixels, each result
    converted on its own: a malformed one is an error row, an unexported type is counted."""
    data_key = config.image.data_key
    out = Extraction()
    for task in tasks:
        image = task_file_name(task.image_ref(data_key))
        predictions = {int(p["id"]): p for p in task.predictions if "id" in p}
        for annotation in select_annotations(task, all_annotators):
            parent = predictions.get(int(annotation.get("parent_prediction") or 0))
            predicted = {
                (r.get("id"), r.get("type")): r.get("value") for r in (parent or {}).get("result", [])
            }
            for result in annotation.get("result", []):
                with item_failure(out.errors, image, Stage.PULL):
                    region = _region(task, image, annotation, result, predicted)
                    if isinstance(region, Region):
                        out.regions.append(region)
                    else:
                        out.not_exported[region] += 1
    return out


def _region(
    task: Task,
    image: str,
    annotation: Mapping[str, Any],
    result: Mapping[str, Any],
    predicted: Mapping[tuple[Any, Any], Any],
) -> Region | str:
    """One result as a region, or its type name when that type is not exported (an empty
    brush counts as ``brushlabels (empty)``); a malformed result raises ``AnnotationError``."""
    kind = str(result.get("type") or "(no type)")
    if kind not in EXPORTED_TYPES:
        return kind
    value = result.get("value")
    where = f"task {task.id}, annotation {annotation.get('id')}, result {result.get('id')!r} ({kind})"
    if not isinstance(value, Mapping):
        raise AnnotationError(image, f"{where}: no value")
    try:
        width, height = int(result["original_width"]), int(result["original_height"])
        if kind == "rectanglelabels":
            labels = value.get("rectanglelabels") or []
            rotation = float(value.get("rotation") or 0)
            corners = percent_to_corners(value, width, height)
            xyxy = corners_to_xyxy(corners) if rotation else percent_to_xyxy(dict(value), width, height)
            area = float(value["width"]) * width / 100.0 * float(value["height"]) * height / 100.0
            mask = None
        else:
            if value.get("format") != "rle":
                raise AnnotationError(image, f"{where}: brush format {value.get('format')!r}, not 'rle'")
            labels = value.get("brushlabels") or []
            binary = brush_to_mask(value["rle"], height, width)
            ys, xs = np.nonzero(binary)
            if xs.size == 0:
                return f"{kind} (empty)"
            xyxy = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            area, mask, rotation, corners = float(xs.size), mask_to_coco(binary), 0.0, None
    except (KeyError, TypeError, ValueError, MaskError) as exc:
        raise AnnotationError(image, f"{where}: {type(exc).__name__}: {exc}") from exc
    return Region(
        task_id=task.id,
        image=image,
        annotation_id=int(annotation["id"]),
        annotator=annotation.get("completed_by"),
        kind=kind,
        label=str(labels[0]) if labels else "",
        xyxy=xyxy,
        area=area,
        width=width,
        height=height,
        mask=mask,
        lead_time=annotation.get("lead_time"),
        created_at=str(annotation.get("created_at") or ""),
        updated_at=str(annotation.get("updated_at") or ""),
        from_prediction_unchanged=predicted.get((result.get("id"), kind)) == value,
        rotation=rotation,
        corners=corners,
    )


def to_coco(found: Sequence[Region], config: LabelConfig) -> dict[str, Any]:
    """COCO detection JSON: images, categories (config order), boxes and RLE masks in pixels."""
    names: list[str] = []
    for control in config.controls:
        if control.kind in {"RectangleLabels", "BrushLabels", "PolygonLabels"}:
            names += [label for label in control.labels if label not in names]
    names += sorted({r.label for r in found if r.label and r.label not in names})
    category = {name: i + 1 for i, name in enumerate(names)}
    images: dict[int, dict[str, Any]] = {}
    annotations = []
    for number, region in enumerate(found, start=1):
        images.setdefault(
            region.task_id,
            {"id": region.task_id, "file_name": region.image, "width": region.width, "height": region.height},
        )
        entry: dict[str, Any] = {
            "id": number,
            "image_id": region.task_id,
            "category_id": category[region.label] if region.label else 0,
            "bbox": list(xyxy_to_xywh(region.xyxy)),
            "area": region.area,
            "iscrowd": 0,
            "segmentation": region.mask if region.mask is not None else [],
            "ls_annotation_id": region.annotation_id,
            "ls_annotator": region.annotator,
        }
        if region.kind == "rectanglelabels":
            entry["attributes"] = {"rotation": region.rotation}
        annotations.append(entry)
    return {
        "images": list(images.values()),
        "categories": [{"id": i, "name": name} for name, i in category.items()],
        "annotations": annotations,
    }


def to_table(found: Sequence[Region]) -> pd.DataFrame:
    """One row per region: task, image, annotator, label, box (pixels; the enclosing box of a
    rotated rectangle), area, times, and for rectangles the angle (degrees, clockwise about
    the top-left corner) and the exact corners (JSON ``[[x, y], ...]`` in pixels, the box's
    own top-left, top-right, bottom-right, bottom-left)."""
    columns = ["task_id", "image", "annotation_id", "annotator", "type", "label", "x", "y", "width", "height",
               "area", "lead_time", "created_at", "updated_at", "from_prediction_unchanged", "rotation",
               "corners"]  # fmt: skip
    rows = [
        (
            r.task_id,
            r.image,
            r.annotation_id,
            r.annotator,
            r.kind,
            r.label,
            *xyxy_to_xywh(r.xyxy),
            r.area,
            r.lead_time,
            r.created_at,
            r.updated_at,
            r.from_prediction_unchanged,
            r.rotation,
            json.dumps([list(c) for c in r.corners]) if r.corners is not None else "",
        )
        for r in found
    ]
    return pd.DataFrame(rows, columns=columns)


def pull_annotations(
    client: LabelStudioClient,
    project_id: int,
    out_dir: Path,
    *,
    formats: Sequence[Format] = ("coco", "parquet"),
    all_annotators: bool = False,
    full: bool = False,
    page_size: int = 500,
) -> PullReport:
    """Fetch annotated tasks (only those changed since the last pull unless ``full``) and write exports."""
    out_dir.mkdir(parents=True, exist_ok=True)
    project = client.get_project(project_id)
    store_path, state_path = out_dir / _STORE, out_dir / _STATE
    stored: dict[str, Any] = {}
    since = None
    if not full and store_path.exists() and state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("project") == project_id:
            stored = json.loads(store_path.read_text())
            since = state.get("last_updated_at")
    fetched = 0
    latest = since or ""
    for task in client.iter_tasks(project_id, full=True, updated_after=since, page_size=page_size):
        fetched += 1
        latest = max(latest, task.updated_at)
        if task.annotations:
            stored[str(task.id)] = dict(task.raw)
        else:
            stored.pop(str(task.id), None)
    _write_json(store_path, stored)
    _write_json(state_path, {"project": project_id, "last_updated_at": latest or None})

    tasks = [Task.from_json(raw) for _, raw in sorted(stored.items(), key=lambda item: int(item[0]))]
    extraction = extract_regions(tasks, project.config, all_annotators)
    found = extraction.regions
    files = []
    if "coco" in formats:
        files.append(out_dir / "annotations.coco.json")
        _write_json(files[-1], to_coco(found, project.config))
    table = to_table(found) if {"parquet", "csv"} & set(formats) else None
    if table is not None and "parquet" in formats:
        files.append(out_dir / "regions.parquet")
        with atomic_writer(files[-1]) as handle:
            table.to_parquet(handle, index=False)
    if table is not None and "csv" in formats:
        files.append(out_dir / "regions.csv")
        atomic_write(files[-1], table.to_csv(index=False))
    errors_file = out_dir / ERRORS_FILE
    write_errors(errors_file, extraction.errors)
    return PullReport(
        fetched=fetched, stored=len(stored), regions=len(found), files=files, errors=extraction.errors,
        not_exported=dict(sorted(extraction.not_exported.items())), errors_file=errors_file,
    )  # fmt: skip


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data))
