"""Boxes in pixels, and the one pair of conversions to and from Label Studio percent.

Pixel boxes are xyxy (x1, y1, x2, y2) floats on the displayed image, origin top-left.
Label Studio stores ``x, y, width, height`` in percent of the displayed image.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import MaskError

__all__ = [
    "BoxCleanup",
    "Boxes",
    "clean_boxes",
    "clip_polygon",
    "corners_to_percent",
    "corners_to_xyxy",
    "orient_boxes",
    "orient_mask",
    "orient_points",
    "percent_to_corners",
    "percent_to_xyxy",
    "points_to_percent",
    "polygon_area",
    "xyxy_to_percent",
    "xyxy_to_xywh",
]

Boxes = npt.NDArray[np.float64]
"""(n, 4) float64 xyxy boxes in pixels."""

DropReason = Literal["not finite", "outside image", "zero area"]


def xyxy_to_percent(box: Sequence[float], width: int, height: int) -> dict[str, float]:
    """Pixel xyxy -> Label Studio ``{"x", "y", "width", "height"}`` in percent.

    ``width``/``height`` are the displayed image size in pixels.
    """
    _check_size(width, height)
    x1, y1, x2, y2 = (float(v) for v in box)
    return {
        "x": x1 / width * 100.0,
        "y": y1 / height * 100.0,
        "width": (x2 - x1) / width * 100.0,
        "height": (y2 - y1) / height * 100.0,
    }


def points_to_percent(points: npt.ArrayLike, width: int, height: int) -> list[list[float]]:
    """(n, 2) pixel points -> Label Studio ``[[x, y], ...]`` in percent of the displayed image."""
    _check_size(width, height)
    # divided, then scaled: a point on the right edge is 100 exactly (x * (100 / width) is
    # 100.00000000000001 for 273 widths under 5000, which Label Studio's validator refuses)
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2) / np.array([width, height]) * 100.0
    return [[float(x), float(y)] for x, y in array]


def polygon_area(points: npt.ArrayLike) -> float:
    """Shoelace area of a closed ring of (n, 2) pixel points, square pixels (self-intersections
    count as Label Studio draws them)."""
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    xs, ys = array[:, 0], array[:, 1]
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2.0)


def clip_polygon(points: npt.ArrayLike, width: int, height: int) -> npt.NDArray[np.float64]:
    """The part of a ring of (n, 2) finite pixel points that lies on the image, as one ring.

    Clipping each vertex onto the image would reshape a polygon that leaves it (a triangle
    with one corner far off the image becomes a smaller triangle); this cuts it along the
    image's edges instead (Sutherland-Hodgman: exact for the convex image rectangle; a
    ring that leaves and comes back keeps a zero-width seam along the edge). A ring wholly
    off the image comes back empty, (0, 2).
    """
    _check_size(width, height)
    ring = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if ((ring >= 0) & (ring <= (width, height))).all():
        return ring
    for axis, limit, below in (
        (0, 0.0, False),
        (0, float(width), True),
        (1, 0.0, False),
        (1, float(height), True),
    ):
        inside = ring[:, axis] <= limit if below else ring[:, axis] >= limit
        kept: list[npt.NDArray[np.float64]] = []
        for k in range(len(ring)):
            start, end = ring[k], ring[(k + 1) % len(ring)]
            if inside[k]:
                kept.append(start)
            if inside[k] != inside[(k + 1) % len(ring)]:  # the edge crosses the line: cut it there
                cut = start + (end - start) * ((limit - start[axis]) / (end[axis] - start[axis]))
                cut[axis] = limit
                kept.append(cut)
        ring = np.array(kept, dtype=np.float64).reshape(-1, 2)
    repeated = np.all(ring == np.roll(ring, 1, axis=0), axis=1)  # a vertex cut onto its neighbour
    return ring[~repeated] if len(ring) > 1 else ring


def percent_to_xyxy(value: dict[str, float], width: int, height: int) -> tuple[float, float, float, float]:
    """Label Studio percent ``x, y, width, height`` -> pixel xyxy (rotation must be 0; a
    rotated rectangle goes through ``percent_to_corners``)."""
    _check_size(width, height)
    if float(value.get("rotation", 0) or 0) != 0:
        raise ValueError(f"rotated rectangles are not supported (rotation={value['rotation']})")
    x = float(value["x"]) * width / 100.0
    y = float(value["y"]) * height / 100.0
    return (
        x,
        y,
        x + float(value["width"]) * width / 100.0,
        y + float(value["height"]) * height / 100.0,
    )


def percent_to_corners(
    value: Mapping[str, Any], width: int, height: int
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]:
    """Label Studio percent ``x, y, width, height, rotation`` -> the four corners in pixels.

    Label Studio rotates a rectangle by ``rotation`` degrees clockwise (as displayed, y
    down) about its top-left corner ``(x, y)``. Corners come in the box's own order: top
    left, top right, bottom right, bottom left; the enclosing axis-aligned box is their
    min/max (``corners_to_xyxy``). Exact for any angle, 0 included.
    """
    _check_size(width, height)
    x = float(value["x"]) * width / 100.0
    y = float(value["y"]) * height / 100.0
    w = float(value["width"]) * width / 100.0
    h = float(value["height"]) * height / 100.0
    angle = math.radians(float(value.get("rotation", 0) or 0))
    cos, sin = math.cos(angle), math.sin(angle)
    return (
        (x, y),
        (x + w * cos, y + w * sin),
        (x + w * cos - h * sin, y + w * sin + h * cos),
        (x - h * sin, y + h * cos),
    )


def corners_to_percent(
    corners: Sequence[Sequence[float]] | npt.NDArray[np.float64], width: int, height: int
) -> dict[str, float]:
    """A rectangle's four corners in pixels -> Label Studio ``x, y, width, height, rotation``.

    The inverse of ``percent_to_corners``: corners in the box's own order (top left, top
    right, bottom right, bottom left as the box reads, clockwise on screen); ``x, y`` is
    the first corner, ``rotation`` the direction of the top edge in degrees clockwise,
    in [0, 360). Only the first, second and fourth corners are read: the input must be a
    rectangle (``prelabel.convert.contours.ring_to_rectangle`` makes one from a quad).
    """
    _check_size(width, height)
    (x0, y0), (x1, y1), (x3, y3) = (tuple(float(v) for v in corners[i]) for i in (0, 1, 3))
    rotation = math.degrees(math.atan2(y1 - y0, x1 - x0)) % 360.0
    return {
        "x": x0 / width * 100.0,
        "y": y0 / height * 100.0,
        "width": math.hypot(x1 - x0, y1 - y0) / width * 100.0,
        "height": math.hypot(x3 - x0, y3 - y0) / height * 100.0,
        "rotation": 0.0 if rotation == 360.0 else rotation,
    }


def corners_to_xyxy(corners: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    """The axis-aligned pixel box (xyxy) that encloses ``corners`` ((x, y) pairs)."""
    xs = [float(c[0]) for c in corners]
    ys = [float(c[1]) for c in corners]
    return (min(xs), min(ys), max(xs), max(ys))


def xyxy_to_xywh(box: Sequence[float]) -> tuple[float, float, float, float]:
    """Pixel xyxy -> COCO ``[x, y, width, height]``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2 - x1, y2 - y1)


@dataclass
class BoxCleanup:
    """Which boxes survive clipping, and why the others were dropped (counted)."""

    boxes: Boxes
    keep: npt.NDArray[np.bool_]
    dropped: Counter[str] = field(default_factory=Counter)


def clean_boxes(boxes: npt.ArrayLike, width: int, height: int) -> BoxCleanup:
    """Clip xyxy boxes to the image; mark degenerate ones for dropping, with a reason.

    Coordinates given as x2 < x1 are reordered. Reasons: "not finite" (NaN/inf),
    "outside image" (no overlap with the image), "zero area" (no width or height after
    clipping).
    """
    _check_size(width, height)
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.asarray(np.isfinite(array).all(axis=1), dtype=np.bool_)
    safe = np.where(finite[:, None], array, 0.0)
    x1 = np.minimum(safe[:, 0], safe[:, 2])
    x2 = np.maximum(safe[:, 0], safe[:, 2])
    y1 = np.minimum(safe[:, 1], safe[:, 3])
    y2 = np.maximum(safe[:, 1], safe[:, 3])
    outside: npt.NDArray[np.bool_] = (x2 <= 0) | (y2 <= 0) | (x1 >= width) | (y1 >= height)
    clipped = np.stack(
        [
            np.clip(x1, 0, width),
            np.clip(y1, 0, height),
            np.clip(x2, 0, width),
            np.clip(y2, 0, height),
        ],
        axis=1,
    )
    zero: npt.NDArray[np.bool_] = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    reasons: list[tuple[npt.NDArray[np.bool_], DropReason]] = [
        (~finite, "not finite"),
        (finite & outside, "outside image"),
        (finite & ~outside & zero, "zero area"),
    ]
    dropped: Counter[str] = Counter()
    for flags, reason in reasons:
        if int(flags.sum()):
            dropped[reason] = int(flags.sum())
    return BoxCleanup(boxes=clipped, keep=finite & ~outside & ~zero, dropped=dropped)


def orient_points(
    points: npt.ArrayLike, stored_width: int, stored_height: int, orientation: int
) -> npt.NDArray[np.float64]:
    """Move (n, 2) pixel points from a file's stored pixel grid to its displayed (EXIF) grid."""
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    w, h = float(stored_width), float(stored_height)
    xs, ys = array[:, 0], array[:, 1]
    mapping = {
        1: (xs, ys),
        2: (w - xs, ys),
        3: (w - xs, h - ys),
        4: (xs, h - ys),
        5: (ys, xs),
        6: (h - ys, xs),
        7: (h - ys, w - xs),
        8: (ys, w - xs),
    }
    if orientation not in mapping:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    new_x, new_y = mapping[orientation]
    return np.stack([new_x, new_y], axis=1)


def orient_boxes(boxes: npt.ArrayLike, stored_width: int, stored_height: int, orientation: int) -> Boxes:
    """Move xyxy boxes from a file's stored pixel grid to its displayed (EXIF) grid."""
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = orient_points(array.reshape(-1, 2), stored_width, stored_height, orientation).reshape(-1, 2, 2)
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)


def orient_mask(mask: npt.NDArray[np.uint8], orientation: int) -> npt.NDArray[np.uint8]:
    """Move a (stored_height, stored_width) mask to the displayed (EXIF) grid."""
    ops = {
        1: lambda m: m,
        2: np.fliplr,
        3: lambda m: m[::-1, ::-1],
        4: np.flipud,
        5: lambda m: m.T,
        6: lambda m: np.rot90(m, -1),
        7: lambda m: m[::-1, ::-1].T,
        8: lambda m: np.rot90(m, 1),
    }
    if orientation not in ops:
        raise MaskError(f"EXIF orientation must be 1..8, got {orientation}")
    return np.ascontiguousarray(ops[orientation](mask))


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height} (width x height)")
