"""One builder per Label Studio result type, each in Label Studio's own shape.

Geometry comes in displayed-image pixels and leaves in percent of the displayed image
(through ``prelabel.convert.geometry``). Region results carry the image's displayed size
(``original_width/height``) and ``image_rotation: 0``; a label is stored as Label Studio
stores it (``ControlTag.result_label``: its alias when it has one); results that share an ``id`` are
one region in the labeling UI (a rectangle and its TextArea, a region and its per-region
Choices); a keypoint's ``parentID``
names the region it belongs to (the person's rectangle), as the frontend's
``RegionsMixin.parentID`` reads it. A keypoint's ``width`` is the drawn point's size in
percent of the image width (the frontend's ``KeyPointRegion`` serialises it so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.convert.geometry import corners_to_percent, points_to_percent, xyxy_to_percent
from prelabel.convert.masks import mask_to_brush
from prelabel.labelstudio.config import ControlTag

__all__ = ["KEYPOINT_WIDTH", "ImageFields", "Result", "box_geometry", "region_choices"]

Result = dict[str, Any]

KEYPOINT_WIDTH = 0.5
"""A posted keypoint's drawn size, percent of the image width."""


@dataclass(frozen=True)
class ImageFields:
    """The image a prediction's results attach to: its tag name and displayed size (pixels)."""

    to_name: str
    width: int
    height: int

    def _region(self, region: str, control: ControlTag, value: dict[str, Any], score: float) -> Result:
        return {
            "id": region,
            "type": control.result_type,
            "from_name": control.name,
            "to_name": self.to_name,
            "original_width": self.width,
            "original_height": self.height,
            "image_rotation": 0,
            "value": value,
            "score": score,
        }

    def rectangle(
        self, region: str, control: ControlTag, label: str, geometry: dict[str, float], score: float
    ) -> Result:
        """``rectanglelabels``; ``geometry`` from :func:`box_geometry`."""
        return self._region(
            region, control, {**geometry, "rectanglelabels": [control.result_label(label)]}, score
        )

    def textarea(
        self, region: str, control: ControlTag, text: str, geometry: dict[str, float], score: float
    ) -> Result:
        """A per-region ``textarea`` on the rectangle ``region`` (same id, same geometry)."""
        return self._region(region, control, {**geometry, "text": [text]}, score)

    def brush(
        self, region: str, control: ControlTag, label: str, mask: npt.NDArray[np.uint8], score: float
    ) -> Result:
        """``brushlabels`` of a (height, width) 0/1 mask on the displayed grid."""
        value = {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": [control.result_label(label)]}
        return self._region(region, control, value, score)

    def polygon(
        self, region: str, control: ControlTag, label: str, points: npt.NDArray[np.float64], score: float
    ) -> Result:
        """``polygonlabels`` of one closed ring, (n, 2) pixels on the displayed image."""
        value = {
            "points": points_to_percent(points, self.width, self.height),
            "closed": True,
            "polygonlabels": [control.result_label(label)],
        }
        return self._region(region, control, value, score)

    def keypoint(
        self,
        region: str,
        control: ControlTag,
        label: str,
        point: Sequence[float],
        score: float,
        parent: str | None,
    ) -> Result:
        """``keypointlabels`` at ``point`` (x, y pixels), inside region ``parent`` when given."""
        ((x, y),) = points_to_percent([point], self.width, self.height)
        result = self._region(
            region,
            control,
            {"x": x, "y": y, "width": KEYPOINT_WIDTH, "keypointlabels": [control.result_label(label)]},
            score,
        )
        if parent is not None:
            result["parentID"] = parent
        return result

    def choices(self, control: ControlTag, labels: Sequence[str], score: float) -> Result:
        """A task-level ``choices`` result (no geometry, no image size)."""
        return {
            "id": control.name,
            "type": "choices",
            "from_name": control.name,
            "to_name": self.to_name,
            "value": {"choices": [control.result_label(c) for c in labels]},
            "score": score,
        }


def region_choices(region: Result, control: ControlTag, labels: Sequence[str], score: float) -> Result:
    """A per-region ``choices`` result on ``region`` (a rectangle, brush or polygon result): its
    id, image size and geometry (its value without its labels), as the frontend serialises a
    per-region classification (``Result.serialize``: the area's own serialisation, then the
    control's name, type and value)."""
    geometry = {k: v for k, v in region["value"].items() if k != region["type"]}
    value = {**geometry, "choices": [control.result_label(c) for c in labels]}
    return {**region, "type": "choices", "from_name": control.name, "value": value, "score": score}


def box_geometry(
    fields: ImageFields, xyxy: Sequence[float], rectangle: npt.NDArray[np.float64] | None
) -> dict[str, float]:
    """A rectangle's ``x, y, width, height, rotation`` in percent: the rotated rectangle
    when its four corners (pixels, from ``ring_to_rectangle``) are given, else ``xyxy``."""
    if rectangle is not None:
        return corners_to_percent(rectangle, fields.width, fields.height)
    return {**xyxy_to_percent(xyxy, fields.width, fields.height), "rotation": 0}
