"""Draw one, find all: every instance like the one in a drawn box.

With ``sam3`` served, ``ExemplarFinder``: the drawn box is SAM 3's exemplar prompt for its label
on that image, so SAM 3 finds what *looks like* the drawn object (and what the label's phrase
names). It runs its own ``sam3`` adapter, made once with the served one's options, whose
``exemplars`` are set per request under the model lock; nothing it finds is cached (the
exemplar is one person's box).

With SAM 2 alone, ``DetectionFinder``: SAM 2 segments what it is pointed at; it cannot look for
more objects like one. So "find all" asks the served detector for the image's detections (through
the prediction cache, so usually no model call), keeps those whose label is the box's (through the
label map), drops the ones that are the drawn object again (IoU with the box at least
``SAME_OBJECT``), and gives each a SAM 2 mask where the detector gave none: instances of the
*label*, by the detector's notion of it, not instances that look like the drawn one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from prelabel.convert.masks import CocoRle
from prelabel.core.errors import PrelabelError, SettingsError
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.predict.models.prompted import Prompt, Segment
from prelabel.records import Detections

__all__ = ["SAME_OBJECT", "DetectionFinder", "ExemplarFinder", "box_iou"]

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


class ExemplarFinder:
    """``InstanceFinder`` on SAM 3: the drawn box as the exemplar of its label (module docstring)."""

    def __init__(self, adapter: ModelAdapter, lock: threading.Lock) -> None:
        if not hasattr(adapter, "exemplars"):
            raise SettingsError(f"model {adapter.name!r} takes no exemplar boxes: find-all needs sam3")
        self.adapter, self.lock = adapter, lock

    def find(self, item: ImageItem, box: npt.NDArray[np.float64], label: str) -> Detections:
        with self.lock:  # the served adapter itself: its own exemplars are back before the lock goes
            kept = self.adapter.exemplars
            self.adapter.exemplars = {item.uri: [[label, *(float(v) for v in box)]]}
            try:
                (found,) = self.adapter.predict([item])
            finally:
                self.adapter.exemplars = kept
        if isinstance(found, PrelabelError):
            raise found
        return found[np.array([name == label for name in found.labels], dtype=bool)]
