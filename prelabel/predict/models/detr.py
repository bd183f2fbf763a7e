"""DETR through transformers: closed-set detection (COCO classes for the default checkpoint).

Any hub id or local directory that ``AutoModelForObjectDetection`` loads works; weights load
on first predict, once per worker. Images are batched by size: padding a batch to its
largest image changes the CNN's features near the padding, so only same-size images share
a forward pass, and batched results equal one-image-at-a-time results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from prelabel.core.errors import PrelabelError
from prelabel.predict.models.base import ImageItem, ModelAdapter, decode_batch
from prelabel.predict.models.registry import register
from prelabel.predict.models.runtime import autocast, load_pretrained, require_torch, select_device
from prelabel.records import Detections, ModelSignature

__all__ = ["Detr"]


@register("detr")
class Detr(ModelAdapter):
    """DETR object detection; ``threshold`` 0.95 by default, as in the Pixeltable tutorial."""

    task_types = ("detection",)

    def __init__(
        self,
        checkpoint: str = "facebook/detr-resnet-50",
        revision: str | None = None,
        threshold: float = 0.95,
        batch_size: int = 8,
        device: str | None = None,
    ) -> None:
        self.checkpoint, self.revision, self.threshold = checkpoint, revision, threshold
        self.batch_size, self.device = max(1, batch_size), device
        self._model: Any = None
        self._processor: Any = None

    def signature(self) -> ModelSignature:
        return ModelSignature(
            "detr", f"{self.checkpoint}@{self.revision or 'main'}", {"threshold": self.threshold}
        )

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            require_torch("detr")
            from transformers import AutoImageProcessor, AutoModelForObjectDetection

            self.device = select_device(self.device)
            self._processor = load_pretrained(AutoImageProcessor, self.checkpoint, self.revision)
            model = load_pretrained(AutoModelForObjectDetection, self.checkpoint, self.revision)
            self._model = model.to(self.device).eval()
        return self._model, self._processor

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        import torch

        model, processor = self._load()
        device = self.device or "cpu"
        loaded, out = decode_batch(batch)
        images = {i: image.rgb for i, image in loaded.items()}
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in images.items():
            by_size[image.size].append(i)
        labels = model.config.id2label
        for (width, height), members in by_size.items():
            for start in range(0, len(members), self.batch_size):
                group = members[start : start + self.batch_size]
                inputs = processor(images=[images[i] for i in group], return_tensors="pt").to(device)
                with torch.inference_mode(), autocast(device):
                    outputs = model(**inputs)
                found = processor.post_process_object_detection(
                    outputs, threshold=self.threshold, target_sizes=[(height, width)] * len(group)
                )
                for i, result in zip(group, found, strict=True):
                    out[i] = Detections(
                        xyxy=result["boxes"].float().cpu().numpy().astype(np.float64).reshape(-1, 4),
                        scores=result["scores"].float().cpu().numpy().astype(np.float64),
                        labels=tuple(str(labels[int(k)]) for k in result["labels"].cpu().tolist()),
                    )
        return out
