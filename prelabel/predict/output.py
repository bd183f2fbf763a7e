"""Model output made sane on its image, in one place: every model and raw file goes through it.

``sane_detections`` is where a model's (or a raw file's, or a cache entry's) detections
become a record's: placed on the image's displayed grid (``prelabel.display``), then

- boxes ordered (x1 <= x2, y1 <= y2) and clipped to the image (``clean_boxes``, the one
  implementation, which the prediction builder also applies to records made elsewhere);
- scores within ``SCORE_SLACK`` of [0, 1] (float rounding) put onto it.

What cannot be made sane is refused, and the image with it: a number that is not finite
(a box, a score, a polygon vertex, a keypoint, a choice's score), a score outside [0, 1]
(a logit, a percentage: clipping it would post a ranking that is not one), a box with no
area on the image (empty, or wholly outside it). The ``DetectionError`` names each one;
the pipeline makes it the image's error row, so nothing of that image is cached or posted
and a rerun tries it again. Polygons and keypoints stay as given: the prediction builder
cuts polygons along the image's edges and leaves out keypoints off the image, counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from prelabel.convert.geometry import clean_boxes
from prelabel.core.errors import DetectionError
from prelabel.core.images import ImageInfo
from prelabel.display import to_display_frame
from prelabel.records import Detections

__all__ = ["SCORE_SLACK", "sane_detections"]

SCORE_SLACK = 1e-6
"""How far past 0 or 1 a score may be and still be read as 0 or 1 (float rounding)."""

_LISTED = 5  # refusals named in one error


def sane_detections(detections: Detections, image: ImageInfo) -> Detections:
    """``detections`` on ``image``'s displayed grid, boxes ordered and clipped, scores in [0, 1];
    a ``DetectionError`` naming what cannot be made so (``MaskError``: masks of another image)."""
    shown = to_display_frame(detections, image)
    boxes = clean_boxes(shown.xyxy, image.width, image.height)  # ordered and clipped
    refused: list[str] = []
    for i, label in enumerate(shown.labels):
        found = _refusals(shown, i, bool(boxes.keep[i]))
        refused += [f"#{i} {label!r}: {reason}" for reason in found]
    refused += [f"choice {c.label!r} score {r}" for c in shown.choices for r in _score(c.score)]
    if refused:
        listed = "; ".join(refused[:_LISTED])
        more = f"; and {len(refused) - _LISTED} more" if len(refused) > _LISTED else ""
        raise DetectionError(image.name, f"detections refused: {listed}{more}")
    return shown.replace(
        xyxy=boxes.boxes,
        scores=np.clip(shown.scores, 0.0, 1.0),
        keypoints=tuple(
            None if k is None else tuple(p._replace(score=_onto(p.score)) for p in k) for k in shown.keypoints
        ),
        choices=tuple(c._replace(score=_onto(c.score)) for c in shown.choices),
        region_choices=tuple(
            tuple(c._replace(score=_onto(c.score)) for c in cs) for cs in shown.region_choices
        ),
    )


def _refusals(found: Detections, i: int, kept: bool) -> list[str]:
    """Why detection ``i`` (whose box ``clean_boxes`` ``kept`` or not) cannot be posted (none: it can)."""
    reasons = []
    box = found.xyxy[i]
    if not np.isfinite(box).all():
        reasons.append(f"box {_box(box)} is not finite")
    elif not kept:
        x1, y1, x2, y2 = box
        where = "has no area" if x1 == x2 or y1 == y2 else "is outside the image"
        reasons.append(f"box {_box(box)} {where}")
    reasons += [f"score {r}" for r in _score(found.scores[i])]
    polygon = found.polygons[i]
    if polygon is not None and not np.isfinite(np.asarray(polygon, dtype=np.float64)).all():
        reasons.append("a polygon vertex is not finite")
    for point in found.keypoints[i] or ():
        if not (math.isfinite(point.x) and math.isfinite(point.y)):
            reasons.append(f"keypoint {point.label!r} is not finite")
        reasons += [f"keypoint {point.label!r} score {r}" for r in _score(point.score)]
    reasons += [f"choice {c.label!r} score {r}" for c in found.region_choices[i] for r in _score(c.score)]
    return reasons


def _box(box: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _score(score: float) -> list[str]:
    """Why ``score`` cannot be a score (none: it can)."""
    if not math.isfinite(score):
        return [f"{score} is not finite"]
    if not -SCORE_SLACK <= score <= 1 + SCORE_SLACK:
        return [f"{score:g} is outside [0, 1]"]
    return []


def _onto(score: float) -> float:
    return min(max(float(score), 0.0), 1.0)
