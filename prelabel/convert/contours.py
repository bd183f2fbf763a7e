"""Masks to polygon outlines, and text quadrilaterals to rectangles, with OpenCV.

Label Studio's polygons are single rings, so a mask becomes one polygon per outer part
(each its own region: a car split by a pole stays two drawn parts, none lost) and its
holes cannot be shown: they are dropped and counted. Outlines are OpenCV's contours
(``RETR_CCOMP``: outer rings and their holes) simplified by ``approxPolyDP`` with
``tolerance`` pixels (the largest distance the simplified ring may stray from the traced
one); a part left with under 3 points is dropped and counted. Vertices are pixel centres
(contour pixel ``(col, row)`` -> ``(col + 0.5, row + 0.5)``), so a 40x20 block at
``[20:60, 10:30]`` outlines as (20.5, 10.5) .. (59.5, 29.5).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from prelabel.core.defaults import DEFAULT_TOLERANCE

__all__ = ["DEFAULT_TOLERANCE", "Outline", "mask_to_polygons", "ring_to_rectangle"]


Points = npt.NDArray[np.float64]
"""(n, 2) float64 pixel points (x, y)."""


@dataclass
class Outline:
    """A mask's outer rings (pixels), and what was dropped on the way, counted by reason."""

    polygons: list[Points] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def mask_to_polygons(mask: npt.NDArray[np.uint8], tolerance: float = DEFAULT_TOLERANCE) -> Outline:
    """The outer rings of a (height, width) 0/1 mask, largest part first."""
    if tolerance < 0:
        raise ValueError(f"polygon tolerance must be >= 0 pixels, got {tolerance}")
    binary = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outline = Outline()
    if hierarchy is None:
        return outline
    parts: list[tuple[float, Points]] = []
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True):
        if parent != -1:
            outline.dropped["polygon: hole dropped"] += 1
            continue
        ring = cv2.approxPolyDP(contour, tolerance, True).reshape(-1, 2)
        if len(ring) < 3:
            outline.dropped["polygon: part under 3 points dropped"] += 1
            continue
        parts.append((float(cv2.contourArea(contour)), ring.astype(np.float64) + 0.5))
    parts.sort(key=lambda part: -part[0])
    outline.polygons = [ring for _, ring in parts]
    return outline


def ring_to_rectangle(
    ring: Sequence[Sequence[float]] | Points, first: Sequence[float] | None = None
) -> Points:
    """The minimum-area rectangle of a ring of 3 or more points, (4, 2) pixels, in its own order.

    Corners run clockwise on screen (y down) from the one nearest ``first`` (default: the
    ring's first point), so an OCR quad's reading direction survives: its top-left stays
    the rectangle's, also when the ring is the quad cut to the image.
    """
    points = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3 or not np.isfinite(points).all():
        raise ValueError(
            f"a rectangle around a ring needs 3 or more finite (x, y) points, got {points.tolist()}"
        )
    corners = cv2.boxPoints(cv2.minAreaRect(points.astype(np.float32))).astype(np.float64)
    x, y = corners[:, 0], corners[:, 1]
    if float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) < 0:  # counter-clockwise on screen
        corners = corners[::-1]
    start = int(np.argmin(np.linalg.norm(corners - (points[0] if first is None else first), axis=1)))
    return np.roll(corners, -start, axis=0)
