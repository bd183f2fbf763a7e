"""Regions -> COCO JSON and a one-row-per-region table (pixels throughout).

COCO: rectangles and brushes as boxes (a brush with its RLE mask), polygons as polygon
segmentations, keypoints in COCO's ``[x, y, v, ...]`` form. A keypoint whose ``parent_id``
names a region of its annotation joins that region's COCO annotation; the other keypoints
of one annotation form one COCO annotation per keypoint control (its category is named
after the control). A category with keypoints lists the keypoint names from the config
(Label Studio has no skeleton, so ``skeleton`` is empty). Choices and TextArea values are
the annotation's ``attributes`` (a rectangle's also carry ``rotation``); task-wide values
are also the COCO image's ``attributes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prelabel.convert.geometry import corners_to_xyxy, xyxy_to_xywh
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.regions import Region, TaskValues

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["keypoint_names", "to_coco", "to_table", "value_controls"]

_AREA_KINDS = {"RectangleLabels", "BrushLabels", "PolygonLabels"}
_COLUMNS = [
    "task_id",
    "image",
    "annotation_id",
    "annotator",
    "type",
    "label",
    "x",
    "y",
    "width",
    "height",
    "area",
    "lead_time",
    "created_at",
    "updated_at",
    "from_prediction_unchanged",
    "rotation",
    "corners",
    "region_id",
    "parent_id",
    "points",
]


def keypoint_names(config: LabelConfig, found: Sequence[Region] = ()) -> list[str]:
    """The keypoint names of the config's KeyPointLabels controls in order, then any others found."""
    names = [label for c in config.controls if c.kind == "KeyPointLabels" for label in c.labels]
    names = list(dict.fromkeys(names))
    return names + sorted({r.label for r in found if r.kind == "keypointlabels"} - set(names) - {""})


def value_controls(
    config: LabelConfig, found: Sequence[Region] = (), tasks: Sequence[TaskValues] = ()
) -> list[str]:
    """Choices and TextArea control names: the config's in order, then any others found."""
    names = [c.name for c in config.controls if c.kind in {"Choices", "TextArea"}]
    seen = {k for r in found for k in r.attributes} | {k for t in tasks for k in t.values}
    return list(dict.fromkeys(names)) + sorted(seen - set(names))


def to_coco(
    found: Sequence[Region], config: LabelConfig, task_values: Sequence[TaskValues] = ()
) -> dict[str, Any]:
    """COCO JSON: images, categories (config order), boxes, RLE masks, polygons, keypoints."""
    kp_names = keypoint_names(config, found)
    names: list[str] = []
    for control in config.controls:
        if control.kind in _AREA_KINDS:
            names += [label for label in control.labels if label not in names]
    names += sorted(
        {r.label for r in found if r.kind != "keypointlabels" and r.label and r.label not in names}
    )
    shapes = [r for r in found if r.kind != "keypointlabels"]
    parents = {(r.annotation_id, r.region_id): r for r in shapes if r.region_id}
    children: dict[tuple[int, str], list[Region]] = {}
    loose: dict[tuple[int, int, str], list[Region]] = {}
    for r in found:
        if r.kind != "keypointlabels":
            continue
        if r.parent_id and (r.annotation_id, r.parent_id) in parents:
            children.setdefault((r.annotation_id, r.parent_id), []).append(r)
        else:
            loose.setdefault((r.task_id, r.annotation_id, r.control), []).append(r)
    names = list(dict.fromkeys([*names, *(c for (_, _, c) in loose)]))
    category = {name: i + 1 for i, name in enumerate(names)}
    with_keypoints = {category[c] for (_, _, c) in loose}
    with_keypoints |= {category[parents[key].label] for key in children if parents[key].label}

    images: dict[int, dict[str, Any]] = {}
    annotations: list[dict[str, Any]] = []
    for region in shapes:
        entry = _entry(len(annotations) + 1, region, category)
        kids = children.get((region.annotation_id, region.region_id))
        if kids:
            entry.update(_keypoints(kids, kp_names))
        images.setdefault(region.task_id, _image(region))
        annotations.append(entry)
    for (_, _, group), points in loose.items():
        first = points[0]
        xyxy = corners_to_xyxy([p.points[0] for p in points if p.points])
        entry = _entry(len(annotations) + 1, first, category, label=group)
        x, y, w, h = xyxy_to_xywh(xyxy)
        entry.update(bbox=[x, y, w, h], area=w * h, **_keypoints(points, kp_names))
        images.setdefault(first.task_id, _image(first))
        annotations.append(entry)
    for values in task_values:
        image = images.setdefault(
            values.task_id, {"id": values.task_id, "file_name": values.image, "width": 0, "height": 0}
        )
        image.setdefault("attributes", {}).update(values.values)
    categories = []
    for name, number in category.items():
        entry = {"id": number, "name": name}
        if number in with_keypoints:
            entry |= {"keypoints": kp_names, "skeleton": []}
        categories.append(entry)
    return {"images": list(images.values()), "categories": categories, "annotations": annotations}


def _image(region: Region) -> dict[str, Any]:
    return {"id": region.task_id, "file_name": region.image, "width": region.width, "height": region.height}


def _entry(
    number: int, region: Region, category: Mapping[str, int], label: str | None = None
) -> dict[str, Any]:
    """A COCO annotation for one region (keypoints are added by the caller)."""
    name = region.label if label is None else label
    segmentation: Any = []
    if region.mask is not None:
        segmentation = region.mask
    elif region.kind == "polygonlabels" and region.points:
        segmentation = [[v for point in region.points for v in point]]
    attributes: dict[str, Any] = dict(region.attributes)
    if region.kind == "rectanglelabels":
        attributes["rotation"] = region.rotation
    entry: dict[str, Any] = {
        "id": number,
        "image_id": region.task_id,
        "category_id": category[name] if name else 0,
        "bbox": list(xyxy_to_xywh(region.xyxy)),
        "area": region.area,
        "iscrowd": 0,
        "segmentation": segmentation,
        "ls_annotation_id": region.annotation_id,
        "ls_annotator": region.annotator,
    }
    if attributes:
        entry["attributes"] = attributes
    return entry


def _keypoints(points: Sequence[Region], names: Sequence[str]) -> dict[str, Any]:
    """COCO ``keypoints`` ([x, y, v] per name; v 2 = labelled, 0 = absent) and ``num_keypoints``."""
    flat = [0.0] * (3 * len(names))
    for point in points:
        if point.points and point.label in names:
            i = names.index(point.label)
            flat[3 * i : 3 * i + 3] = [point.points[0][0], point.points[0][1], 2]
    return {"keypoints": flat, "num_keypoints": sum(1 for p in points if p.label in names)}


def to_table(
    found: Sequence[Region], task_values: Sequence[TaskValues] = (), controls: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per region: task, image, annotator, label, box (pixels; the enclosing box of a
    rotated rectangle or polygon, the point of a keypoint), area, times, for rectangles the
    angle (degrees, clockwise about the top-left corner) and exact corners (JSON ``[[x, y],
    ...]``: top-left, top-right, bottom-right, bottom-left), the region's id and a keypoint's
    parent region id, a polygon's vertices or a keypoint's position (JSON, pixels), then one
    column per Choices/TextArea control (``controls``; a name that clashes with a column
    above gets an ``ls_`` prefix): the value, or a JSON list when there are several. An
    annotation with task-wide values and no region is one row without geometry."""
    names = list(
        dict.fromkeys(
            [
                *controls,
                *(k for r in found for k in r.attributes),
                *(k for t in task_values for k in t.values),
            ]
        )
    )
    headers = [f"ls_{n}" if n in _COLUMNS else n for n in names]
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
            r.region_id,
            r.parent_id,
            json.dumps([list(p) for p in r.points]) if r.points is not None else "",
            *(_cell(r.attributes.get(n)) for n in names),
        )
        for r in found
    ]
    blank = (None,) * 4
    rows += [
        (
            t.task_id,
            t.image,
            t.annotation_id,
            t.annotator,
            "",
            "",
            *blank,
            None,
            None,
            "",
            "",
            None,
            None,
            "",
            "",
            "",
            "",
            *(_cell(t.values.get(n)) for n in names),
        )
        for t in task_values
        if not t.has_regions
    ]
    import pandas as pd  # here, not at the top: every flow imports this module, few build tables

    return pd.DataFrame(rows, columns=[*_COLUMNS, *headers])


def _cell(values: Sequence[str] | None) -> str:
    if not values:
        return ""
    return values[0] if len(values) == 1 else json.dumps(list(values))
