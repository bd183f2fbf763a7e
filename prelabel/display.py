"""The rule for predictions made on another pixel grid than the displayed image.

Boxes and masks are expected on the displayed image (EXIF orientation applied), which is
what prelabel feeds its models. Masks say which grid they were made on (COCO ``size``),
so a record whose masks disagree with the displayed size is placed by this rule, never
silently misplaced:

1. masks of the displayed size: as they are;
2. masks of the *stored* size of a file whose EXIF orientation swaps the axes (5-8): the
   model saw the unrotated pixels, so boxes and masks are rotated like the image;
3. masks of the displayed aspect ratio at another scale (an API that resized the image):
   boxes scaled, masks resized (nearest neighbour);
4. anything else: ``MaskError`` naming both sizes.

Records without masks carry no grid information; their boxes are taken as displayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.convert.geometry import orient_boxes, orient_mask, orient_points
from prelabel.convert.masks import coco_size, coco_to_mask, mask_to_coco
from prelabel.core.errors import MaskError
from prelabel.core.images import ImageInfo
from prelabel.records import Detections, Keypoint

__all__ = ["DisplayFrame", "display_frame", "move_points", "to_display_frame"]

_SWAPS_AXES = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class DisplayFrame:
    """How one record's detections reach the displayed grid.

    ``xyxy`` holds the boxes on the displayed image, pixels (n, 4). ``mask`` decodes a
    COCO RLE once and moves it there, so a mask on its way to a brush is decoded exactly
    once whatever the rule; ``points`` moves polygon vertices and keypoints like the boxes.
    """

    xyxy: npt.NDArray[np.float64]
    orientation: int | None = None
    rows: npt.NDArray[np.int64] | None = None
    cols: npt.NDArray[np.int64] | None = None
    stored: tuple[int, int] | None = None  # rule 2: the stored (width, height)
    scale: tuple[float, float] | None = None  # rule 3: (x, y) factors onto the displayed grid

    @property
    def moves(self) -> bool:
        """Whether masks change on the way (rules 2 and 3)."""
        return self.orientation is not None or self.rows is not None

    def mask(self, rle: Mapping[str, Any]) -> npt.NDArray[np.uint8]:
        """The mask of ``rle`` on the displayed grid, (height, width) 0/1."""
        decoded = coco_to_mask(rle)
        if self.orientation is not None:
            decoded = orient_mask(decoded, self.orientation)
        if self.rows is not None and self.cols is not None:
            decoded = decoded[self.rows][:, self.cols]
        return decoded

    def points(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(n, 2) pixel points (x, y) on the displayed grid, by the rule the boxes follow."""
        array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if self.orientation is not None and self.stored is not None:
            return orient_points(array, *self.stored, self.orientation)
        if self.scale is not None:
            return array * np.asarray(self.scale, dtype=np.float64)
        return array


def display_frame(detections: Detections, image: ImageInfo) -> DisplayFrame:
    """The way onto ``image``'s displayed grid, by the rule in this module's docstring."""
    xyxy = np.asarray(detections.xyxy, dtype=np.float64)
    sizes = {coco_size(m) for m in detections.masks if m is not None}
    if not sizes:
        return DisplayFrame(xyxy)
    if len(sizes) > 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise MaskError(f"{image.name}: masks come in several sizes ({listed}, height x width)")
    mask_h, mask_w = sizes.pop()
    width, height = image.width, image.height
    if (mask_w, mask_h) == (width, height):
        return DisplayFrame(xyxy)
    stored = (image.stored_width, image.stored_height)
    if image.orientation in _SWAPS_AXES and (mask_w, mask_h) == stored:
        return DisplayFrame(
            orient_boxes(xyxy, *stored, image.orientation), orientation=image.orientation, stored=stored
        )
    if abs(mask_w * height - mask_h * width) <= max(width, height) and mask_w <= 4 * width:
        sx, sy = width / mask_w, height / mask_h
        rows = np.minimum(((np.arange(height) + 0.5) / sy).astype(np.int64), mask_h - 1)
        cols = np.minimum(((np.arange(width) + 0.5) / sx).astype(np.int64), mask_w - 1)
        return DisplayFrame(xyxy * np.array([sx, sy, sx, sy]), rows=rows, cols=cols, scale=(sx, sy))
    raise MaskError(
        f"{image.name}: masks are {mask_h}x{mask_w} but the image is displayed at {height}x{width} "
        f"(stored {image.stored_height}x{image.stored_width}, EXIF orientation {image.orientation}); "
        "the prediction was made on another image"
    )


def to_display_frame(detections: Detections, image: ImageInfo) -> Detections:
    """Detections on ``image``'s displayed grid (masks re-encoded as COCO RLE)."""
    frame = display_frame(detections, image)
    if not frame.moves:
        return detections
    return detections.replace(
        xyxy=frame.xyxy,
        masks=tuple(None if m is None else mask_to_coco(frame.mask(m)) for m in detections.masks),
        **move_points(detections, frame.points),
    )


def move_points(
    detections: Detections, move: Callable[[npt.ArrayLike], npt.NDArray[np.float64]]
) -> dict[str, Any]:
    """``polygons`` and ``keypoints`` with every point moved by ``move`` ((n, 2) pixels in and
    out), as ``Detections.replace`` takes them: the one way points follow their boxes."""
    keypoints: list[tuple[Keypoint, ...] | None] = []
    for points in detections.keypoints:
        if points is None:
            keypoints.append(None)
            continue
        moved = move([(p.x, p.y) for p in points])
        keypoints.append(
            tuple(p._replace(x=float(x), y=float(y)) for p, (x, y) in zip(points, moved, strict=True))
        )
    polygons = tuple(None if p is None else tuple(map(tuple, move(p))) for p in detections.polygons)
    return {"polygons": polygons, "keypoints": tuple(keypoints)}
