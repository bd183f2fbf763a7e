"""Predicted regions against annotated ones: one-to-one matches, and region fates.

Matching follows COCO's rule: predictions in descending score order, each taking the
still-unmatched annotated region of the same type and label with the highest similarity at
or above the threshold. For areas the similarity is pycocotools' IoU (boxes as their
enclosing xywh in pixels, brushes as masks, polygons as masks pycocotools rasterises on the
image's displayed grid), the same function ``COCOeval`` uses, so the counts here and the AP
agree on what overlaps. A keypoint has no area: its similarity is its closeness to the
annotated point (``point_closeness``), so it matches within a distance instead.

Fates follow region ids: Label Studio copies a prediction's result ids into the annotation when
the annotator starts from the prediction, so a predicted id absent from the annotation was
deleted, an annotated id absent from the prediction was added, and a shared id was kept
unchanged (same label, same geometry) or edited. A region without an id (results posted or
imported without one) has no fate: the labeling UI gives such a prediction's results new ids,
so nothing ties them to the annotation's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from pycocotools import mask as coco_mask

from prelabel.convert.geometry import xyxy_to_xywh
from prelabel.convert.masks import CocoRle, polygon_to_coco
from prelabel.core.defaults import DEFAULT_KEYPOINT_TOLERANCE
from prelabel.labelstudio.regions import Region

__all__ = [
    "AREA_TYPES",
    "DEFAULT_KEYPOINT_TOLERANCE",
    "KEYPOINTS",
    "MEASURED_TYPES",
    "SAME_GEOMETRY_PX",
    "Fate",
    "Match",
    "fate",
    "greedy_match",
    "iou_matrix",
    "point_closeness",
    "point_distances",
    "region_mask",
]

KEYPOINTS = "keypointlabels"
AREA_TYPES = ("rectanglelabels", "brushlabels", "polygonlabels")
"""Region types matched by IoU (and given COCO AP); keypoints are matched by distance."""
MEASURED_TYPES = (*AREA_TYPES, KEYPOINTS)
SAME_GEOMETRY_PX = 0.5
"""A rectangle whose corners, a polygon whose vertices or a keypoint that all moved less than
this (pixels) is unchanged: the labeling UI writes back percentages it has recomputed, which
may differ from the prediction's in the last digits; no one edits a region by half a pixel."""


class Fate(StrEnum):
    KEPT = "kept"
    EDITED = "edited"
    DELETED = "deleted"
    ADDED = "added"


@dataclass(frozen=True)
class Match:
    """A predicted region (index into the predictions) paired with an annotated one, and their
    similarity (IoU; for keypoints, ``point_closeness``)."""

    predicted: int
    annotated: int
    similarity: float


def iou_matrix(
    kind: str, predicted: Sequence[Region], annotated: Sequence[Region]
) -> npt.NDArray[np.float64]:
    """IoU of every predicted region (rows) with every annotated one (columns), shape (p, a)."""
    if not predicted or not annotated:
        return np.zeros((len(predicted), len(annotated)))
    if kind in ("brushlabels", "polygonlabels"):
        dt: list[object] = [region_mask(r) for r in predicted]
        gt: list[object] = [region_mask(r) for r in annotated]
    else:
        dt = [list(xyxy_to_xywh(r.xyxy)) for r in predicted]
        gt = [list(xyxy_to_xywh(r.xyxy)) for r in annotated]
    return np.asarray(coco_mask.iou(dt, gt, [0] * len(gt)), dtype=np.float64).reshape(len(dt), len(gt))


def region_mask(region: Region) -> CocoRle | None:
    """A brush's mask, or a polygon's rasterised on its image's displayed grid (None otherwise)."""
    if region.kind == "polygonlabels" and region.points is not None:
        return polygon_to_coco(region.points, region.height, region.width)
    return region.mask


def point_distances(predicted: Sequence[Region], annotated: Sequence[Region]) -> npt.NDArray[np.float64]:
    """Pixel distance of every predicted keypoint (rows) to every annotated one (columns)."""
    dt = np.array([r.xyxy[:2] for r in predicted], np.float64).reshape(-1, 2)  # a keypoint's xyxy is
    gt = np.array([r.xyxy[:2] for r in annotated], np.float64).reshape(-1, 2)  # its point, twice
    return np.asarray(np.linalg.norm(dt[:, None, :] - gt[None, :, :], axis=-1), np.float64)


def point_closeness(
    distances: npt.NDArray[np.float64], annotated: Sequence[Region], tolerance: float
) -> npt.NDArray[np.float64]:
    """``1 - distance / (tolerance x the annotated point's image diagonal)``: 1 on the point, 0 at
    the tolerance, negative beyond it, so ``greedy_match`` at threshold 0 pairs the nearest
    points within the tolerance (a size-free distance: images of any size count alike)."""
    diagonals = np.array([np.hypot(r.width, r.height) for r in annotated], np.float64)
    return 1.0 - distances / (tolerance * diagonals[None, :])


def greedy_match(ious: npt.NDArray[np.float64], scores: Sequence[float], threshold: float) -> list[Match]:
    """One-to-one matches: by descending score (ties in given order), each prediction takes the
    unmatched column of highest similarity >= ``threshold`` (at least -1: taken columns read -1)."""
    taken = np.zeros(ious.shape[1], dtype=bool)
    matches = []
    for row in sorted(range(ious.shape[0]), key=lambda i: -scores[i]):
        candidates = np.where(taken, -1.0, ious[row])
        if candidates.size == 0:
            break
        best = int(np.argmax(candidates))
        if candidates[best] >= threshold:
            taken[best] = True
            matches.append(Match(row, best, float(candidates[best])))
    return matches


def fate(predicted: Region, annotated: Region | None) -> Fate:
    """What the annotator did with a predicted region: the annotated region of the same id and
    type, or None when there is none."""
    if annotated is None:
        return Fate.DELETED
    if annotated.label != predicted.label:
        return Fate.EDITED
    if predicted.kind == "brushlabels":
        same = predicted.mask == annotated.mask
    else:
        before, after = _outline(predicted), _outline(annotated)
        same = (
            len(before) == len(after) and float(np.abs(np.subtract(before, after)).max()) < SAME_GEOMETRY_PX
        )
    return Fate.KEPT if same else Fate.EDITED


def _outline(region: Region) -> tuple[tuple[float, float], ...]:
    """The points that say where a region is: a rectangle's corners, a polygon's vertices (a
    vertex added or removed is an edit), a keypoint's point; else its enclosing box's corners."""
    if region.corners is not None:
        return region.corners
    if region.points is not None:
        return region.points
    x1, y1, x2, y2 = region.xyxy
    return ((x1, y1), (x2, y2))
