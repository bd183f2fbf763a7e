"""Identities across keyframes: a detection continues the track whose propagated box it overlaps.

A detector finds objects on keyframes and a tracker carries each object's box to the frames in
between; on the next keyframe the tracker's box of every live track (propagated there) meets
the detector's new boxes. Pairs are taken greedily by box IoU, highest first, one-to-one and
only at ``min_iou`` or above (IoU trackers' rule: at these overlaps the greedy and the optimal
assignment rarely differ, and greedy is stable). A matched detection keeps its track's id, an
unmatched one starts a track with a new id, and a track no detection matched goes on with its
propagated box for ``patience`` keyframes in a row, then ends (a detector's miss on one
keyframe does not split a track; an object really gone is not followed for ever).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Assignment", "Identities", "iou_matrix", "match_boxes"]

Boxes = npt.NDArray[np.float64]


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> Boxes:
    """Box IoU of every xyxy box of ``a`` (n, 4) with every one of ``b`` (m, 4): (n, m); a box
    without area overlaps nothing."""
    first = np.asarray(a, dtype=np.float64).reshape(-1, 1, 4)
    second = np.asarray(b, dtype=np.float64).reshape(1, -1, 4)
    low = np.maximum(first[..., :2], second[..., :2])
    high = np.minimum(first[..., 2:], second[..., 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)

    union = _area(first) + _area(second) - inter
    out: Boxes = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


def _area(boxes: Boxes) -> Boxes:
    sides: Boxes = np.clip(boxes[..., 2:] - boxes[..., :2], 0, None)
    return sides[..., 0] * sides[..., 1]


def match_boxes(tracked: npt.ArrayLike, detected: npt.ArrayLike, min_iou: float) -> list[tuple[int, int]]:
    """(tracked index, detected index) pairs, greedy by IoU (ties: lower indices first)."""
    ious = iou_matrix(tracked, detected)
    rows, cols = np.nonzero(ious >= min_iou)
    order = sorted(range(len(rows)), key=lambda k: (-ious[rows[k], cols[k]], rows[k], cols[k]))
    pairs: list[tuple[int, int]] = []
    taken_rows: set[int] = set()
    taken_cols: set[int] = set()
    for k in order:
        row, col = int(rows[k]), int(cols[k])
        if row not in taken_rows and col not in taken_cols:
            pairs.append((row, col))
            taken_rows.add(row)
            taken_cols.add(col)
    return pairs


@dataclass(frozen=True)
class Assignment:
    """One keyframe's outcome: an id per detection (in order), and the tracks no detection
    matched that go on (their ids, positions in the propagated list)."""

    detections: list[int]
    kept: list[int]
    kept_positions: list[int]


@dataclass
class Identities:
    """The ids handed out so far and how many keyframes in a row each live track was missed."""

    min_iou: float = 0.5
    patience: int = 1
    next_id: int = 1
    missed: dict[int, int] = field(default_factory=dict)

    def assign(
        self, tracked: Sequence[int], propagated: npt.ArrayLike, detected: npt.ArrayLike
    ) -> Assignment:
        """Ids for a keyframe's ``detected`` boxes (m, 4) given the live tracks' ids ``tracked``
        and their ``propagated`` boxes (n, 4) on the same frame (pixels, xyxy)."""
        boxes = np.asarray(detected, dtype=np.float64).reshape(-1, 4)
        ids: list[int | None] = [None] * len(boxes)
        matched: set[int] = set()
        for row, col in match_boxes(propagated, boxes, self.min_iou):
            ids[col] = tracked[row]
            matched.add(row)
        for col, found in enumerate(ids):
            if found is None:
                ids[col] = self.next_id
                self.next_id += 1
        kept, positions = [], []
        missed: dict[int, int] = {}
        for row, track in enumerate(tracked):
            if row in matched:
                continue
            count = self.missed.get(track, 0) + 1
            if count <= self.patience:
                kept.append(track)
                positions.append(row)
                missed[track] = count
        self.missed = missed
        return Assignment([int(i) for i in ids if i is not None], kept, positions)
