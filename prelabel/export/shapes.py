"""The COCO fields an export writes beyond boxes and masks: polygons, keypoints and choices.

Shaped as the pull-side COCO export (``prelabel.labelstudio.exports``) writes them, so a
pseudo-label export and an export of reviewed annotations read alike: a polygon is a COCO
polygon ``segmentation``, keypoints are COCO's ``[x, y, v, ...]`` with the names on the
category, choices are ``attributes: {"choices": [...]}`` on the annotation or the image.
Scores have no COCO field; they go beside as ``keypoint_scores`` and ``choice_scores``.

A category's keypoint names depend only on the batch's own records, never on earlier
batches, so a shard writes exactly what one process writes: COCO's 17 person keypoints in
COCO's order (with COCO's skeleton) when any of the category's points has one of those
names, then its other names sorted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from prelabel.convert.masks import coco_area, polygon_to_coco
from prelabel.records import COCO_KEYPOINTS, Choice, Keypoint, PredictionRecord

__all__ = [
    "COCO_SKELETON",
    "category_fields",
    "choice_fields",
    "keypoint_fields",
    "keypoint_names",
    "polygon_area",
    "polygon_segmentation",
]

COCO_SKELETON = (
    (16, 14),
    (14, 12),
    (17, 15),
    (15, 13),
    (12, 13),
    (6, 12),
    (7, 13),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (9, 11),
    (2, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
)
"""COCO's person skeleton: 1-based index pairs into ``COCO_KEYPOINTS`` (person_keypoints_*.json)."""


def keypoint_names(
    records: Iterable[PredictionRecord], label_map: Mapping[str, str], categories: Collection[str]
) -> dict[str, tuple[str, ...]]:
    """Category -> its keypoint names in the batch (the module's order rule), labels and names
    through ``label_map``; with fixed ``categories`` only theirs."""
    found: dict[str, set[str]] = {}
    for record in records:
        for label, points in zip(record.detections.labels, record.detections.keypoints, strict=True):
            category = label_map.get(label, label)
            if points is None or (categories and category not in categories):
                continue
            found.setdefault(category, set()).update(label_map.get(p.label, p.label) for p in points)
    names = {}
    for category, seen in found.items():
        coco = COCO_KEYPOINTS if seen & set(COCO_KEYPOINTS) else ()
        names[category] = (*coco, *sorted(seen - set(coco)))
    return names


def category_fields(names: Sequence[str]) -> dict[str, Any]:
    """A COCO category's ``keypoints`` and ``skeleton`` (COCO's when the names start with COCO's)."""
    coco = tuple(names[: len(COCO_KEYPOINTS)]) == COCO_KEYPOINTS
    return {"keypoints": list(names), "skeleton": [list(pair) for pair in COCO_SKELETON] if coco else []}


def keypoint_fields(
    points: Sequence[Keypoint], names: Sequence[str], label_map: Mapping[str, str]
) -> dict[str, Any]:
    """An annotation's ``keypoints`` ([x, y, v] per name, pixels; v 2 = given, 0 = missing),
    ``num_keypoints`` and ``keypoint_scores`` (0 where missing). A name given twice keeps its
    first point: COCO has one slot per name."""
    flat: list[float] = [0] * (3 * len(names))
    scores: list[float] = [0] * len(names)
    given: set[int] = set()
    slot = {name: i for i, name in enumerate(names)}
    for point in points:
        i = slot[label_map.get(point.label, point.label)]
        if i in given:
            continue
        given.add(i)
        flat[3 * i : 3 * i + 3] = [round(point.x, 3), round(point.y, 3), 2]
        scores[i] = round(point.score, 5)
    return {"keypoints": flat, "num_keypoints": len(given), "keypoint_scores": scores}


def polygon_segmentation(points: Sequence[tuple[float, float]]) -> list[list[float]]:
    """A COCO polygon ``segmentation``: one ring, ``[[x1, y1, x2, y2, ...]]`` pixels."""
    return [[round(v, 3) for point in points for v in point]]


def polygon_area(segmentation: Sequence[Sequence[float]], height: int, width: int) -> int:
    """The pixels pycocotools rasterises a one-ring polygon ``segmentation`` to on a ``height``
    x ``width`` image: the area COCO's own tools give it."""
    (ring,) = segmentation
    return coco_area(polygon_to_coco([ring[i : i + 2] for i in range(0, len(ring), 2)], height, width))


def choice_fields(choices: Sequence[Choice], label_map: Mapping[str, str]) -> dict[str, Any]:
    """``attributes: {"choices": [labels]}`` and ``choice_scores`` (same order), labels through
    ``label_map``; nothing when there are no choices."""
    if not choices:
        return {}
    return {
        "attributes": {"choices": [label_map.get(c.label, c.label) for c in choices]},
        "choice_scores": [round(c.score, 5) for c in choices],
    }
