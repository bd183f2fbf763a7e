"""An answered item's region found again in a task's current prediction, by what it is.

Region ids do not identify a box across posts: a rerun with ``--overwrite`` reposts every
prediction, and prelabel numbers regions by detection (``det0``, ``det1``, ...), so an id may
name another box after a rerun whose detections come in another order. A box item is its
task, its label and its box: a rectangle of the same label whose four coordinates each lie
within ``GEOMETRY_TOLERANCE`` pixels of the item's box is the item's region (the closest one;
the same region id breaks a tie). Each region answers for one item at most. A whole-image
item (``per image``) is its task and label: every region of that label. A result without an id
(predictions made by other tools may carry none) is known by its place in the prediction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prelabel.review.sets import ReviewItem, pixel_box, region_label

__all__ = ["GEOMETRY_TOLERANCE", "match_regions", "region_key"]

GEOMETRY_TOLERANCE = 2.0
"""Pixels each box coordinate may differ by (float round trips, a model rerun on other hardware)."""


def region_key(index: int, result: Mapping[str, Any]) -> str:
    """What names the ``index``-th result of a prediction: its region id, else ``#index``."""
    return str(result.get("id") or f"#{index}")


def match_regions(items: Iterable[ReviewItem], results: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Box item id -> the ``region_key`` of its rectangle among ``results`` (one prediction's);
    items whose box no rectangle matches are left out."""
    rectangles = []
    for index, result in enumerate(results):
        box = pixel_box(result) if result.get("type") == "rectanglelabels" else None
        if box is not None:
            rectangles.append((region_key(index, result), region_label(result), box))
    pairs = []
    for item in items:
        if item.box is None:
            continue
        for region, label, box in rectangles:
            distance = max(abs(a - b) for a, b in zip(item.box, box, strict=True))
            if label == item.label and distance <= GEOMETRY_TOLERANCE:
                pairs.append((distance, region != item.region_id, item.id, region))
    found: dict[int, str] = {}
    taken: set[str] = set()
    for _, _, item_id, region in sorted(pairs):
        if item_id not in found and region not in taken:
            found[item_id] = region
            taken.add(region)
    return found
