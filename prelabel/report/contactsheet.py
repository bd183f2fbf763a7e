"""A contact sheet: a grid of sample images with their predictions drawn on them.

Boxes, masks (tinted), labels and scores, as Label Studio will show them, so a person can
judge a run at a glance without opening the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from prelabel.convert.masks import coco_to_mask
from prelabel.core.errors import ImageError, MaskError
from prelabel.core.images import load_image
from prelabel.display import to_display_frame
from prelabel.records import Detections, PredictionRecord

__all__ = ["write_contact_sheet"]

_PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
]


def write_contact_sheet(
    path: Path, records: Sequence[PredictionRecord], *, columns: int = 4, tile: int = 320
) -> Path | None:
    """Draw up to ``len(records)`` tiles into a PNG at ``path``; None when nothing could be drawn."""
    tiles = [t for t in (_tile(r, tile) for r in records) if t is not None]
    if not tiles:
        return None
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * tile), (32, 32, 32))
    for i, image in enumerate(tiles):
        sheet.paste(image, ((i % columns) * tile, (i // columns) * tile))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _tile(record: PredictionRecord, size: int) -> Image.Image | None:
    """One image's tile; an image or mask that cannot be drawn leaves its tile out (the
    contact sheet is a preview: it never fails a run whose predictions were posted)."""
    try:
        image = load_image(record.uri).rgb if record.uri else None
        if image is None:
            return None
        detections = to_display_frame(record.detections, record.image)
        return _draw(image, detections, size)
    except (ImageError, MaskError):
        return None


def _draw(image: Image.Image, detections: Detections, size: int) -> Image.Image:
    scale = min(size / image.width, size / image.height)
    shown = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    colours = {label: _PALETTE[i % len(_PALETTE)] for i, label in enumerate(sorted(set(detections.labels)))}
    pixels = np.asarray(shown, np.float32)
    for mask_rle, label in zip(detections.masks, detections.labels, strict=True):
        if mask_rle is None:
            continue
        decoded = coco_to_mask(mask_rle)
        if decoded.shape != (image.height, image.width):
            raise MaskError(f"a mask of {decoded.shape} on a {image.height}x{image.width} image")
        mask = np.asarray(Image.fromarray(decoded * 255).resize(shown.size)) > 127
        pixels[mask] = pixels[mask] * 0.55 + np.asarray(colours[label], np.float32) * 0.45
    shown = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(shown)
    font = ImageFont.load_default()
    for box, label, score, text in zip(
        detections.xyxy, detections.labels, detections.scores, detections.texts, strict=True
    ):
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colours[label], width=2)
        caption = f"{label} {score:.2f}" + (f": {text}" if text else "")
        draw.text((x1 + 2, max(0.0, y1 - 11)), caption, fill=colours[label], font=font)
    tile = Image.new("RGB", (size, size), (32, 32, 32))
    tile.paste(shown, ((size - shown.width) // 2, (size - shown.height) // 2))
    return tile
