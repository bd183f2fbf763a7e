"""Reading a screenshot against the image it shows: what was drawn over it, and where.

The test knows the displayed image exactly (it made it), so a screen pixel counts as drawn
over when its colour lies outside the colours the image has near the point it shows
(``change_map``). Comparing against a neighbourhood, not one pixel, makes the measure blind
to the browser's scaling and antialiasing of the image itself, and independent of the
colours Label Studio picks for labels. Geometry is given in displayed-image pixels and
mapped to the screen through ``Placement``, read from the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["Placement", "change_map", "dot_centre", "edge_coverage", "quiet_share", "share_above"]

Point = tuple[float, float]


@dataclass(frozen=True)
class Placement:
    """Where the displayed image lies on the screen: its top-left corner and CSS pixels per image pixel."""

    left: float
    top: float
    scale: float

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        return self.left + x * self.scale, self.top + y * self.scale

    def to_image_pixels(
        self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The image pixel (column, row) each screen pixel's centre shows; may lie outside the image."""
        u = np.floor((cols + 0.5 - self.left) / self.scale).astype(np.int64)
        v = np.floor((rows + 0.5 - self.top) / self.scale).astype(np.int64)
        return u, v


def change_map(
    screenshot: npt.NDArray[np.uint8],
    image: npt.NDArray[np.uint8],
    placement: Placement,
    visible: tuple[float, float, float, float],
    reach: int = 2,
) -> npt.NDArray[np.float64]:
    """Per screen pixel (H, W), how far (0-255, the largest channel) its colour lies outside the
    range of the image's colours within ``reach`` image pixels of the point it shows; NaN where
    the screen shows no part of the image or lies outside ``visible`` (left, top, right, bottom)."""
    height, width = image.shape[:2]
    padded = np.pad(image.astype(np.int16), ((reach, reach), (reach, reach), (0, 0)), mode="edge")
    windows = sliding_window_view(padded, (2 * reach + 1, 2 * reach + 1), axis=(0, 1))
    low, high = windows.min(axis=(-2, -1)), windows.max(axis=(-2, -1))
    rows, cols = np.indices(screenshot.shape[:2])
    u, v = placement.to_image_pixels(rows, cols)
    left, top, right, bottom = visible
    shown = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    shown &= (cols >= left) & (cols < right) & (rows >= top) & (rows < bottom)
    u, v = np.clip(u, 0, width - 1), np.clip(v, 0, height - 1)
    pixels = screenshot[..., :3].astype(np.int16)
    outside = np.maximum(low[v, u] - pixels, pixels - high[v, u]).max(axis=-1).clip(min=0)
    return np.where(shown, outside.astype(np.float64), np.nan)


def _near(
    change: npt.NDArray[np.float64], x: float, y: float, radius: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], int, int]:
    """The window of ``change`` around screen point (x, y), which of its pixels lie within
    ``radius``, and the window's top-left corner."""
    top, left = max(int(y - radius) - 1, 0), max(int(x - radius) - 1, 0)
    window = change[top : int(y + radius) + 2, left : int(x + radius) + 2]
    rows, cols = np.indices(window.shape)
    return window, (cols + left + 0.5 - x) ** 2 + (rows + top + 0.5 - y) ** 2 <= radius**2, top, left


def _disc_max(change: npt.NDArray[np.float64], x: float, y: float, radius: float) -> float:
    window, near, _, _ = _near(change, x, y, radius)
    values = window[near]
    return float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")


def edge_coverage(
    change: npt.NDArray[np.float64],
    placement: Placement,
    start: Point,
    end: Point,
    threshold: float,
    *,
    radius: float = 2.5,
    skip_ends: float = 6.0,
) -> float:
    """Share of points along an image-pixel segment (every 2 screen pixels, ``skip_ends`` screen
    pixels from its ends left out) that have a screen pixel drawn over by more than
    ``threshold`` within ``radius`` screen pixels: 1.0 when a line is drawn along it."""
    (x0, y0), (x1, y1) = placement.to_screen(*start), placement.to_screen(*end)
    length = float(np.hypot(x1 - x0, y1 - y0))
    steps = np.arange(skip_ends, length - skip_ends, 2.0) / length
    hits = [_disc_max(change, x0 + t * (x1 - x0), y0 + t * (y1 - y0), radius) > threshold for t in steps]
    return float(np.mean(hits))


def _screen_box(placement: Placement, box: Sequence[float]) -> tuple[slice, slice]:
    (x0, y0), (x1, y1) = placement.to_screen(box[0], box[1]), placement.to_screen(box[2], box[3])
    return slice(int(np.ceil(y0)), int(np.floor(y1))), slice(int(np.ceil(x0)), int(np.floor(x1)))


def share_above(
    change: npt.NDArray[np.float64], placement: Placement, box: Sequence[float], threshold: float
) -> float:
    """Share of the screen pixels inside an image-pixel box (x1, y1, x2, y2) drawn over by more
    than ``threshold``."""
    rows, cols = _screen_box(placement, box)
    values = change[rows, cols]
    return float(np.mean(values > threshold))


def dot_centre(
    change: npt.NDArray[np.float64],
    placement: Placement,
    point: Point,
    threshold: float,
    search: float = 15.0,
) -> tuple[Point, int] | None:
    """The centre, in image pixels, of what is drawn over by more than ``threshold`` within
    ``search`` screen pixels of an image point, and how many screen pixels that is; None if nothing."""
    x, y = placement.to_screen(*point)
    window, near, top, left = _near(change, x, y, search)
    drawn = near & (np.nan_to_num(window) > threshold)
    if not drawn.any():
        return None
    rows, cols = np.nonzero(drawn)
    cx, cy = float(cols.mean()) + left + 0.5, float(rows.mean()) + top + 0.5
    return ((cx - placement.left) / placement.scale, (cy - placement.top) / placement.scale), int(drawn.sum())


def quiet_share(
    change: npt.NDArray[np.float64],
    placement: Placement,
    image_size: tuple[int, int],
    boxes: Sequence[Sequence[float]],
    margin: int,
    threshold: float,
) -> tuple[float, int]:
    """Share of the screen pixels showing image points ``margin`` pixels or more from every box
    that are drawn over by more than ``threshold``, and how many such pixels were looked at."""
    width, height = image_size
    far = np.ones((height, width), bool)
    for x1, y1, x2, y2 in boxes:
        far[max(int(y1) - margin, 0) : int(y2) + margin, max(int(x1) - margin, 0) : int(x2) + margin] = False
    u, v = placement.to_image_pixels(*np.indices(change.shape))
    looked = np.isfinite(change) & far[v.clip(0, height - 1), u.clip(0, width - 1)]
    return float(np.mean(change[looked] > threshold)), int(looked.sum())
