"""Sample images made on the spot, with exact detections: data we may redistribute.

Each scene is drawn with Pillow; its detections (boxes and COCO RLE masks) come from
drawing the same shapes into masks, so they are exactly right. One scene is saved as a
phone would save a portrait photo: pixels stored sideways with EXIF orientation 6.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from prelabel.convert.masks import mask_to_coco
from prelabel.records import Detections

__all__ = ["LABEL_CONFIG", "SIGNS", "SampleImage", "make_samples"]

LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="label" toName="image">
    <Label value="civilian vehicle" background="#e6194b"/>
    <Label value="person" background="#3cb44b"/>
    <Label value="traffic light" background="#ffe119"/>
    <Label value="text" background="#4363d8"/>
  </RectangleLabels>
  <TextArea name="transcription" toName="image" perRegion="true" editable="true" displayMode="region-list"/>
  <BrushLabels name="mask" toName="image">
    <Label value="civilian vehicle" background="#e6194b"/>
    <Label value="person" background="#3cb44b"/>
  </BrushLabels>
</View>"""
"""A labeling config for the samples: boxes, masks, and text regions with transcriptions.

The model label ``car`` maps to ``civilian vehicle``."""


@dataclass(frozen=True)
class SampleImage:
    """One sample: file name, encoded bytes, and exact detections on the displayed image."""

    name: str
    data: bytes
    detections: Detections


_Shape = tuple[str, str, tuple[int, int, int, int]]  # label, kind, xyxy


def _scenes() -> list[list[_Shape]]:
    return [
        [("car", "rect", (40, 260, 300, 400)), ("person", "ellipse", (420, 120, 500, 420))],
        [("car", "rect", (330, 300, 610, 450)), ("traffic light", "rect", (80, 40, 130, 200))],
        [
            ("person", "ellipse", (60, 80, 160, 400)),
            ("person", "ellipse", (200, 100, 290, 380)),
            ("car", "rect", (360, 280, 620, 420)),
        ],
        [("car", "rect", (100, 150, 380, 330)), ("dog", "ellipse", (420, 330, 560, 440))],
    ]


_COLOURS = {
    "car": (200, 40, 40),
    "person": (40, 160, 60),
    "traffic light": (230, 200, 20),
    "dog": (120, 80, 40),
}


SIGNS = ("STOP", "PRELABEL 42", "LABEL ME", "DEMO 2026")
"""The text on each scene's sign, for OCR."""


def make_samples(width: int = 640, height: int = 480) -> list[SampleImage]:
    """Four JPEG scenes with a sign each; the third is stored sideways with EXIF orientation 6."""
    samples = []
    font = ImageFont.load_default(size=34)
    for index, shapes in enumerate(_scenes()):
        image = Image.new("RGB", (width, height), (235, 235, 225))
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, height * 2 // 3, width, height), fill=(170, 170, 170))
        draw.rectangle((330, 20, 630, 90), fill=(255, 255, 255), outline=(0, 0, 0), width=3)
        draw.text((345, 35), SIGNS[index], fill=(0, 0, 0), font=font)
        boxes, labels, masks = [], [], []
        for label, kind, box in shapes:
            mask_image = Image.new("L", (width, height), 0)
            shape_draw = ImageDraw.Draw(mask_image)
            (shape_draw.rectangle if kind == "rect" else shape_draw.ellipse)(box, fill=1)
            (draw.rectangle if kind == "rect" else draw.ellipse)(box, fill=_COLOURS[label])
            mask = np.asarray(mask_image, np.uint8)
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(label)
            masks.append(mask)
        # Later shapes hide earlier ones: masks keep only what is visible.
        visible = [
            m & ~np.bitwise_or.reduce(masks[i + 1 :], axis=0) if i + 1 < len(masks) else m
            for i, m in enumerate(masks)
        ]
        detections = Detections(
            xyxy=np.asarray(boxes, np.float64),
            scores=np.linspace(0.95, 0.7, len(boxes), dtype=np.float64),
            labels=tuple(labels),
            masks=tuple(mask_to_coco(m) for m in visible),
        )
        buffer = io.BytesIO()
        if index == 2:
            exif = Image.Exif()
            exif[0x0112] = 6  # displayed = stored rotated 90 degrees clockwise
            image.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=92, exif=exif)
        else:
            image.save(buffer, "JPEG", quality=92)
        samples.append(SampleImage(f"scene_{index + 1}.jpg", buffer.getvalue(), detections))
    return samples
