"""Human annotations as regions in pixels: every image tag, each result converted on its own.

Rectangles (rotated ones keep their exact corners and angle), brushes (decoded to COCO RLE),
polygons (vertices in pixels) and keypoints (a point each; ``parent_id`` names the region a
keypoint belongs to) become ``Region``s. Choices and TextArea results are values, not
regions: a result that shares its ``id`` with a region of the same annotation belongs to
that region (Label Studio's per-region classification), any other belongs to the whole
task. Both end in ``Region.attributes`` (by control name); an annotation with task values
and no region is kept as a ``TaskValues`` row. Labels and choices come back as the config
names them: a stored alias is mapped back to its label (``LabelConfig.stored_label``). A
malformed result is one error row; a result type not exported (e.g. ``ellipselabels``,
``rating``) is counted by type.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prelabel.convert.geometry import corners_to_xyxy, percent_to_corners, percent_to_xyxy, polygon_area
from prelabel.convert.masks import brush_to_mask, mask_to_coco
from prelabel.core.errors import AnnotationError, MaskError
from prelabel.core.failures import ErrorRow, Stage, item_failure
from prelabel.labelstudio.client import Task
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.matching import task_file_name

__all__ = [
    "EXPORTED_TYPES",
    "VALUE_TYPES",
    "Extraction",
    "Region",
    "TaskValues",
    "extract_regions",
    "regions",
    "select_annotations",
]

REGION_TYPES = frozenset({"rectanglelabels", "brushlabels", "polygonlabels", "keypointlabels"})
VALUE_TYPES = frozenset({"choices", "textarea"})
EXPORTED_TYPES = REGION_TYPES | VALUE_TYPES
Point = tuple[float, float]


@dataclass(frozen=True)
class Region:
    """One annotated region in pixels, with where it came from.

    ``xyxy`` encloses the region (a keypoint's is the point itself); ``points`` are a
    polygon's vertices or a keypoint's position; ``attributes`` hold the Choices (a list)
    and TextArea (a list of lines) values of the region and of its task, by control name.
    """

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
    corners: tuple[Point, ...] | None = None
    region_id: str = ""
    control: str = ""
    points: tuple[Point, ...] | None = None
    parent_id: str = ""
    attributes: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskValues:
    """The task-wide Choices/TextArea values of one annotation (by control name)."""

    task_id: int
    image: str
    annotation_id: int
    annotator: Any
    values: Mapping[str, list[str]]
    has_regions: bool


@dataclass
class Extraction:
    """The regions of some tasks, their task-wide values, the results that failed (one row
    each), and the result types left out, counted by type."""

    regions: list[Region] = field(default_factory=list)
    task_values: list[TaskValues] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    not_exported: Counter[str] = field(default_factory=Counter)


def select_annotations(task: Task, all_annotators: bool = False) -> list[Mapping[str, Any]]:
    """The task's non-cancelled annotations: the latest one, or all of them."""
    kept = [a for a in task.annotations if not a.get("was_cancelled")]
    if all_annotators or len(kept) <= 1:
        return kept
    return [max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), int(a["id"])))]


def regions(tasks: Iterable[Task], config: LabelConfig, all_annotators: bool = False) -> list[Region]:
    """Every region of the selected annotations, in pixels (results that fail or are not
    exported are left out: ``extract_regions`` reports them)."""
    return extract_regions(tasks, config, all_annotators).regions


def extract_regions(tasks: Iterable[Task], config: LabelConfig, all_annotators: bool = False) -> Extraction:
    """Every region and value of the selected annotations, each result converted on its own:
    a malformed one is an error row, an unexported type is counted."""
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
            _annotation(out, config, task, image, annotation, predicted)
    return out


def _annotation(
    out: Extraction,
    config: LabelConfig,
    task: Task,
    image: str,
    annotation: Mapping[str, Any],
    predicted: Mapping[tuple[Any, Any], Any],
) -> None:
    """One annotation: its regions first, then its values attached to them or to the task."""
    found: list[Region] = []
    values: list[tuple[str, str, list[str]]] = []  # (result id, control, values)
    for result in annotation.get("result", []):
        with item_failure(out.errors, image, Stage.PULL):
            kind = str(result.get("type") or "(no type)")
            if kind in VALUE_TYPES:
                values.append(_values(config, task, image, annotation, result, kind))
                continue
            region = _region(config, task, image, annotation, result, predicted)
            if isinstance(region, Region):
                found.append(region)
            else:
                out.not_exported[region] += 1
    found = _unique_keypoints(out, found)
    by_id = {r.region_id for r in found if r.region_id}
    task_wide = {control: v for rid, control, v in values if rid not in by_id}
    per_region: dict[str, dict[str, list[str]]] = {}
    for rid, control, v in values:
        if rid in by_id:
            per_region.setdefault(rid, {})[control] = v
    out.regions += [
        dataclasses.replace(r, attributes={**task_wide, **per_region.get(r.region_id, {})}) for r in found
    ]
    if task_wide:
        out.task_values.append(
            TaskValues(
                task.id,
                image,
                int(annotation["id"]),
                annotation.get("completed_by"),
                task_wide,
                has_regions=bool(found),
            )
        )


def _where(task: Task, annotation: Mapping[str, Any], result: Mapping[str, Any], kind: str) -> str:
    return f"task {task.id}, annotation {annotation.get('id')}, result {result.get('id')!r} ({kind})"


def _values(
    config: LabelConfig,
    task: Task,
    image: str,
    annotation: Mapping[str, Any],
    result: Mapping[str, Any],
    kind: str,
) -> tuple[str, str, list[str]]:
    """A Choices or TextArea result as (result id, control name, its values as strings: choices
    as the config names them)."""
    value = result.get("value")
    key = "choices" if kind == "choices" else "text"
    found = value.get(key) if isinstance(value, Mapping) else None
    if isinstance(found, str):
        found = [found]
    if not isinstance(found, list) or not result.get("from_name"):
        raise AnnotationError(
            image, f"{_where(task, annotation, result, kind)}: no {key!r} list or from_name"
        )
    control = str(result["from_name"])
    texts = [str(v) for v in found]
    if kind == "choices":
        texts = [config.stored_label(control, v) for v in texts]
    return str(result.get("id") or ""), control, texts


def _unique_keypoints(out: Extraction, found: list[Region]) -> list[Region]:
    """Drop (as error rows) a keypoint whose name its group already has: COCO holds one each."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for region in found:
        if region.kind == "keypointlabels":
            key = (region.parent_id or region.control, region.control, region.label)
            if key in seen:
                group = f"region {region.parent_id!r}" if region.parent_id else f"control {region.control!r}"
                out.errors.append(
                    ErrorRow(
                        region.image,
                        Stage.PULL,
                        f"task {region.task_id}, annotation {region.annotation_id}, "
                        f"result {region.region_id!r} (keypointlabels): "
                        f"a second {region.label!r} keypoint in {group}",
                    )
                )
                continue
            seen.add(key)
        kept.append(region)
    return kept


def _region(
    config: LabelConfig,
    task: Task,
    image: str,
    annotation: Mapping[str, Any],
    result: Mapping[str, Any],
    predicted: Mapping[tuple[Any, Any], Any],
) -> Region | str:
    """One result as a region, or its type name when that type is not exported (an empty
    brush counts as ``brushlabels (empty)``); a malformed result raises ``AnnotationError``."""
    kind = str(result.get("type") or "(no type)")
    if kind not in REGION_TYPES:
        return kind
    value = result.get("value")
    where = _where(task, annotation, result, kind)
    if not isinstance(value, Mapping):
        raise AnnotationError(image, f"{where}: no value")
    rotation, corners, points, mask = 0.0, None, None, None
    try:
        width, height = int(result["original_width"]), int(result["original_height"])
        labels = value.get(kind) or []
        if kind == "rectanglelabels":
            rotation = float(value.get("rotation") or 0)
            corners = percent_to_corners(value, width, height)
            xyxy = corners_to_xyxy(corners) if rotation else percent_to_xyxy(dict(value), width, height)
            area = float(value["width"]) * width / 100.0 * float(value["height"]) * height / 100.0
        elif kind == "polygonlabels":
            _positive(width, height)
            points = tuple((float(x) * width / 100.0, float(y) * height / 100.0) for x, y in value["points"])
            if len(points) < 3:
                raise AnnotationError(image, f"{where}: a polygon needs 3 points, got {len(points)}")
            xyxy, area = corners_to_xyxy(points), polygon_area(points)
        elif kind == "keypointlabels":
            _positive(width, height)
            points = ((float(value["x"]) * width / 100.0, float(value["y"]) * height / 100.0),)
            xyxy, area = (*points[0], *points[0]), 0.0
        else:
            if value.get("format") != "rle":
                raise AnnotationError(image, f"{where}: brush format {value.get('format')!r}, not 'rle'")
            binary = brush_to_mask(value["rle"], height, width)
            ys, xs = np.nonzero(binary)
            if xs.size == 0:
                return f"{kind} (empty)"
            xyxy = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            area, mask = float(xs.size), mask_to_coco(binary)
    except (KeyError, TypeError, ValueError, MaskError) as exc:
        raise AnnotationError(image, f"{where}: {type(exc).__name__}: {exc}") from exc
    if not np.isfinite([*xyxy, *(v for point in points or () for v in point)]).all():
        raise AnnotationError(image, f"{where}: a coordinate is not a finite number")  # "NaN" parses
    return Region(
        task_id=task.id,
        image=image,
        annotation_id=int(annotation["id"]),
        annotator=annotation.get("completed_by"),
        kind=kind,
        label=config.stored_label(str(result.get("from_name") or ""), str(labels[0])) if labels else "",
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
        region_id=str(result.get("id") or ""),
        control=str(result.get("from_name") or ""),
        points=points,
        parent_id=str(result.get("parentID") or ""),
    )


def _positive(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
