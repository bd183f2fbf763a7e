"""Draw one, find all, with SAM 2 alone: the served model's detections of the drawn box's label.

SAM 2 segments what it is pointed at; it cannot look for more objects like one. Until a SAM 3
adapter (whose exemplar prompt takes the drawn box itself) serves this, "find all" asks the
served detector for the image's detections (through the prediction cache, so usually no model
call), keeps those whose label is the box's (through the label map), drops the ones that are the
drawn object again (IoU with the box at least ``SAME_OBJECT``), and gives each a SAM 2 mask where
the detector gave none. So with SAM 2 it finds instances of the *label*, by the detector's
notion of it, not instances that *look like* the drawn one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from prelabel.convert.masks import CocoRle
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.models.base import ImageItem
from prelabel.models.prompted import Prompt, Segment
from prelabel.records import Detections

__all__ = ["SAME_OBJECT", "DetectionFinder", "box_iou"]

SAME_OBJECT = 0.5
"""IoU with the drawn box from which a detection is the drawn object itself."""


def box_iou(box: npt.NDArray[np.float64], boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """IoU of one xyxy box (4,) with each of ``boxes`` (n, 4), pixels; 0 where a union is empty."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    union = float(np.prod(np.clip(box[2:] - box[:2], 0, None))) + areas - inter
    iou: npt.NDArray[np.float64] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


class DetectionFinder:
    """``InstanceFinder`` from a detector's output and a segmenter (see the module docstring)."""

    def __init__(
        self,
        detect: Callable[[ImageItem], Detections],
        segment: Callable[[ImageItem, Prompt], Segment],
        label_map: LabelMap,
    ) -> None:
        self.detect, self.segment, self.label_map = detect, segment, label_map

    def find(self, item: ImageItem, box: npt.NDArray[np.float64], label: str) -> Detections:
        found = self.detect(item)
        same = np.array([self.label_map.resolve(name, [label]) == label for name in found.labels], dtype=bool)
        others = found[same & (box_iou(box, found.xyxy) < SAME_OBJECT)]
        drawn = self.segment(item, Prompt.of_box(box))
        masks: list[CocoRle | None] = [drawn.mask]
        for xyxy, mask in zip(others.xyxy, others.masks, strict=True):
            masks.append(mask if mask is not None else self.segment(item, Prompt.of_box(xyxy)).mask)
        return Detections(
            xyxy=np.vstack([box[None], others.xyxy]),
            scores=np.concatenate([[drawn.score], others.scores]),
            labels=(label,) * (1 + len(others)),
            masks=tuple(masks),
        )
