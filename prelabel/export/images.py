"""Exported images as displayed, and detections moved to the pixel grid an export stores.

Most training loaders read pixels without EXIF, while prelabel's boxes and masks are for
the displayed image (orientation applied, as Label Studio shows it). So an exported image
whose EXIF orientation is not 1 is written with the orientation applied and the tag
removed (JPEG at quality 95; other formats as PNG), and orientation-1 bytes are copied as
they are. The encoding is deterministic for one Pillow/libjpeg build, so a rerun finds the
same bytes. Keeping the original bytes instead moves boxes, masks and points to the stored grid.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, ImageOps

from prelabel.convert.geometry import orient_boxes, orient_mask, orient_points
from prelabel.convert.masks import coco_to_mask, mask_to_coco
from prelabel.core.errors import ImageError
from prelabel.core.images import ImageInfo
from prelabel.display import move_points, to_display_frame
from prelabel.records import Detections

__all__ = ["ImageOut", "frame_for_export", "image_for_export"]

JPEG_QUALITY = 95
_INVERSE = {6: 8, 8: 6}  # every other orientation is its own inverse


@dataclass(frozen=True, slots=True)
class ImageOut:
    """The bytes an export writes for one image, its file name, and what was done:
    ``copied`` (orientation 1), ``oriented`` (EXIF applied, tag removed) or ``original``."""

    data: bytes
    name: str
    done: str


def image_for_export(data: bytes, info: ImageInfo, name: str, keep_original: bool) -> ImageOut:
    """The image as displayed (or, with ``keep_original``, the source bytes unchanged)."""
    if keep_original:
        return ImageOut(data, name, "original")
    if info.orientation == 1:
        return ImageOut(data, name, "copied")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            icc = image.info.get("icc_profile")
            oriented = ImageOps.exif_transpose(image)  # the tag is dropped from its EXIF
            buffer = io.BytesIO()
            extra = {"icc_profile": icc} if icc else {}
            if image.format == "JPEG":
                oriented.save(
                    buffer,
                    "JPEG",
                    quality=JPEG_QUALITY,
                    exif=oriented.info.get("exif", b""),
                    optimize=False,
                    **extra,
                )
            else:
                if oriented.mode not in {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}:
                    oriented = oriented.convert("RGB")
                oriented.save(buffer, "PNG", exif=oriented.info.get("exif", b""), **extra)
                name = str(PurePosixPath(name).with_suffix(".png"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(name, f"cannot write the image as displayed ({exc})") from exc
    return ImageOut(buffer.getvalue(), name, "oriented")


def frame_for_export(detections: Detections, info: ImageInfo, keep_original: bool) -> Detections:
    """Detections on the grid of the exported image: the displayed one (``frames`` rule), or
    with ``keep_original`` the stored one (the EXIF orientation undone; boxes, masks, polygon
    vertices and keypoints alike)."""
    shown = to_display_frame(detections, info)
    if not keep_original or info.orientation == 1:
        return shown
    back = _INVERSE.get(info.orientation, info.orientation)
    return shown.replace(
        xyxy=orient_boxes(shown.xyxy, info.width, info.height, back),
        masks=tuple(
            None if m is None else mask_to_coco(orient_mask(coco_to_mask(m), back)) for m in shown.masks
        ),
        **move_points(shown, lambda points: orient_points(points, info.width, info.height, back)),
    )
