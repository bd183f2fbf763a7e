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

import numpy as np

from prelabel.convert.geometry import orient_boxes, orient_mask
from prelabel.convert.masks import coco_size, coco_to_mask, mask_to_coco
from prelabel.errors import MaskError
from prelabel.images import ImageInfo
from prelabel.records import Detections

__all__ = ["to_display_frame"]

_SWAPS_AXES = frozenset({5, 6, 7, 8})


def to_display_frame(detections: Detections, image: ImageInfo) -> Detections:
    """Detections on ``image``'s displayed grid, by the rule in this module's docstring."""
    sizes = {coco_size(m) for m in detections.masks if m is not None}
    if not sizes:
        return detections
    if len(sizes) > 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise MaskError(f"{image.name}: masks come in several sizes ({listed}, height x width)")
    mask_h, mask_w = sizes.pop()
    width, height = image.width, image.height
    if (mask_w, mask_h) == (width, height):
        return detections
    stored = (image.stored_width, image.stored_height)
    if image.orientation in _SWAPS_AXES and (mask_w, mask_h) == stored:
        return detections.replace(
            xyxy=orient_boxes(detections.xyxy, *stored, image.orientation),
            masks=tuple(
                None if m is None else mask_to_coco(orient_mask(coco_to_mask(m), image.orientation))
                for m in detections.masks
            ),
        )
    if abs(mask_w * height - mask_h * width) <= max(width, height):
        sx, sy = width / mask_w, height / mask_h
        rows = np.minimum(((np.arange(height) + 0.5) / sy).astype(np.int64), mask_h - 1)
        cols = np.minimum(((np.arange(width) + 0.5) / sx).astype(np.int64), mask_w - 1)
        return detections.replace(
            xyxy=detections.xyxy * np.array([sx, sy, sx, sy]),
            masks=tuple(
                None if m is None else mask_to_coco(coco_to_mask(m)[rows][:, cols]) for m in detections.masks
            ),
        )
    raise MaskError(
        f"{image.name}: masks are {mask_h}x{mask_w} but the image is displayed at {height}x{width} "
        f"(stored {image.stored_height}x{image.stored_width}, EXIF orientation {image.orientation}); "
        "the prediction was made on another image"
    )
