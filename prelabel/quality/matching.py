"""Predicted regions against annotated ones: one-to-one matches at an IoU, and region fates.

Matching follows COCO's rule: predictions in descending score order, each taking the
still-unmatched annotated region of the same type and label with the highest IoU at or above
the threshold. IoU is pycocotools' (boxes as their enclosing xywh in pixels, brushes as masks),
the same function ``COCOeval`` uses, so the counts here and the AP agree on what overlaps.

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
from prelabel.labelstudio.regions import Region

__all__ = ["MEASURED_TYPES", "SAME_GEOMETRY_PX", "Fate", "Match", "fate", "greedy_match", "iou_matrix"]

MEASURED_TYPES = ("rectanglelabels", "brushlabels")
SAME_GEOMETRY_PX = 0.5
"""A rectangle whose corners all moved less than this (pixels) is unchanged: the labeling UI
writes back percentages it has recomputed, which may differ from the prediction's in the last
digits; no one edits a box by half a pixel."""


class Fate(StrEnum):
    KEPT = "kept"
    EDITED = "edited"
    DELETED = "deleted"
    ADDED = "added"


@dataclass(frozen=True)
class Match:
    """A predicted region (index into the predictions) paired with an annotated one, and their IoU."""

    predicted: int
    annotated: int
    iou: float


def iou_matrix(
    kind: str, predicted: Sequence[Region], annotated: Sequence[Region]
) -> npt.NDArray[np.float64]:
    """IoU of every predicted region (rows) with every annotated one (columns), shape (p, a)."""
    if not predicted or not annotated:
        return np.zeros((len(predicted), len(annotated)))
    if kind == "brushlabels":
        dt: list[object] = [r.mask for r in predicted]
        gt: list[object] = [r.mask for r in annotated]
    else:
        dt = [list(xyxy_to_xywh(r.xyxy)) for r in predicted]
        gt = [list(xyxy_to_xywh(r.xyxy)) for r in annotated]
    return np.asarray(coco_mask.iou(dt, gt, [0] * len(gt)), dtype=np.float64).reshape(len(dt), len(gt))


def greedy_match(ious: npt.NDArray[np.float64], scores: Sequence[float], threshold: float) -> list[Match]:
    """One-to-one matches: by descending score (ties in given order), each prediction takes the
    unmatched column of highest IoU >= ``threshold``."""
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
    elif predicted.corners is not None and annotated.corners is not None:
        moved = np.abs(np.subtract(predicted.corners, annotated.corners))
        same = float(moved.max()) < SAME_GEOMETRY_PX
    else:
        same = predicted.xyxy == annotated.xyxy
    return Fate.KEPT if same else Fate.EDITED
