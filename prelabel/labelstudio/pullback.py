"""Pull human annotations back: COCO JSON and a one-row-per-region table.

By default each task contributes its latest non-cancelled annotation; ``all_annotators``
keeps every non-cancelled one. Rectangles come back as pixel boxes; brush masks are
decoded and re-encoded as COCO RLE. Pulls are incremental: the raw tasks are kept in
the output directory and a later pull fetches only tasks updated since the last one
(a task deleted in Label Studio stays until a ``full`` pull).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from prelabel.atomic import atomic_write, atomic_writer
from prelabel.convert.geometry import percent_to_xyxy, xyxy_to_xywh
from prelabel.convert.masks import brush_to_mask, mask_to_coco
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.matching import task_file_name

__all__ = ["PullReport", "pull_annotations", "regions", "select_annotations", "to_coco", "to_table"]

Format = Literal["coco", "parquet", "csv"]
_STORE = "tasks.json"
_STATE = "pull_state.json"


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


@dataclass
class PullReport:
    """What a pull fetched and wrote."""

    fetched: int
    stored: int
    regions: int
    files: list[Path]


def select_annotations(task: Task, all_annotators: bool = False) -> list[Mapping[str, Any]]:
    """The task's non-cancelled annotations: the latest one, or all of them."""
    kept = [a for a in task.annotations if not a.get("was_cancelled")]
    if all_annotators or len(kept) <= 1:
        return kept
    return [max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), int(a["id"])))]


def regions(tasks: Iterable[Task], config: LabelConfig, all_annotators: bool = False) -> list[Region]:
    """Every rectangle and brush region of the selected annotations, in pixels."""
    data_key = config.image.data_key
    out: list[Region] = []
    for task in tasks:
        image = task_file_name(task.image_ref(data_key))
        predictions = {int(p["id"]): p for p in task.predictions if "id" in p}
        for annotation in select_annotations(task, all_annotators):
            parent = predictions.get(int(annotation.get("parent_prediction") or 0))
            predicted = {
                (r.get("id"), r.get("type")): r.get("value") for r in (parent or {}).get("result", [])
            }
            for result in annotation.get("result", []):
                region = _region(task, image, annotation, result, predicted)
                if region is not None:
                    out.append(region)
    return out


def _region(
    task: Task,
    image: str,
    annotation: Mapping[str, Any],
    result: Mapping[str, Any],
    predicted: Mapping[tuple[Any, Any], Any],
) -> Region | None:
    kind = str(result.get("type", ""))
    value = result.get("value") or {}
    width, height = int(result.get("original_width") or 0), int(result.get("original_height") or 0)
    mask = None
    if kind == "rectanglelabels" and width and height:
        labels = value.get("rectanglelabels") or []
        xyxy = percent_to_xyxy(value, width, height)
        area = (xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1])
    elif kind == "brushlabels" and width and height and value.get("format") == "rle":
        labels = value.get("brushlabels") or []
        binary = brush_to_mask(value["rle"], height, width)
        ys, xs = np.nonzero(binary)
        if xs.size == 0:
            return None
        xyxy = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        area = float(xs.size)
        mask = mask_to_coco(binary)
    else:
        return None
    return Region(
        task_id=task.id,
        image=image,
        annotation_id=int(annotation["id"]),
        annotator=annotation.get("completed_by"),
        kind=kind,
        label=str(labels[0]) if labels else "",
        xyxy=xyxy,
        area=float(area),
        width=width,
        height=height,
        mask=mask,
        lead_time=annotation.get("lead_time"),
        created_at=str(annotation.get("created_at") or ""),
        updated_at=str(annotation.get("updated_at") or ""),
        from_prediction_unchanged=predicted.get((result.get("id"), kind)) == value,
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
        annotations.append(entry)
    return {
        "images": list(images.values()),
        "categories": [{"id": i, "name": name} for name, i in category.items()],
        "annotations": annotations,
    }


def to_table(found: Sequence[Region]) -> pd.DataFrame:
    """One row per region: task, image, annotator, label, box (pixels), area, times."""
    columns = ["task_id", "image", "annotation_id", "annotator", "type", "label", "x", "y", "width", "height",
               "area", "lead_time", "created_at", "updated_at", "from_prediction_unchanged"]  # fmt: skip
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
    found = regions(tasks, project.config, all_annotators)
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
    return PullReport(fetched=fetched, stored=len(stored), regions=len(found), files=files)


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data))
