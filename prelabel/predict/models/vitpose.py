"""ViTPose through transformers: keypoints for the person boxes another model detected.

ViTPose is top-down: it crops each person box (enlarged by 1.25 to the model's aspect
ratio, an affine warp done with scipy by the image processor), predicts one heatmap per
keypoint and maps the peaks back to the image, so it only runs after a detector
(``--model detr+vitpose``). Detections whose label is one of ``person_labels`` get their
keypoints, those scoring at least ``threshold``; the others pass through unchanged, and so
do person boxes without area on the image (counted: ViTPose has no crop to warp).
Keypoints are in the displayed (EXIF-rotated) image's pixels, like the boxes they refine;
one that lands outside the image (the crop is larger than the box) is dropped and counted,
and so is one not finite (a NaN heatmap).

Names: ``keypoint_names`` "coco-17" (default) gives the 17 COCO names prelabel's projects
use (``prelabel project create --keypoints coco-17``), in COCO's order, which ViTPose's COCO
checkpoints follow (their own names are "L_Eye" style); "model" takes the checkpoint's
``id2label``; or a list of names in the model's order. Every crop of a batch shares a pass
(up to ``batch_size`` crops); each crop is predicted on its own, so batched equals
one-at-a-time.
"""

from __future__ import annotations

import importlib.util
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from prelabel.convert.geometry import clean_boxes
from prelabel.core.errors import PrelabelError, SettingsError
from prelabel.predict.models.base import ImageItem, ModelAdapter, class_list, decode_batch
from prelabel.predict.models.registry import register
from prelabel.predict.models.runtime import autocast, load_pretrained, require_torch, select_device
from prelabel.records import COCO_KEYPOINTS, Detections, Keypoint, ModelSignature

__all__ = ["VitPose"]


@register("vitpose")
class VitPose(ModelAdapter):
    """Person keypoints on a detector's boxes (the second part of a chain)."""

    task_types = ("keypoints",)
    detects = False
    refines = True

    def __init__(
        self,
        checkpoint: str = "usyd-community/vitpose-base-simple",
        revision: str | None = None,
        threshold: float = 0.3,
        person_labels: Sequence[str] | str = "person",
        keypoint_names: Sequence[str] | str = "coco-17",
        dataset_index: int = 0,
        batch_size: int = 8,
        device: str | None = None,
    ) -> None:
        self.checkpoint, self.revision, self.threshold = checkpoint, revision, threshold
        self.person_labels = class_list(person_labels)
        if not self.person_labels:
            raise SettingsError("vitpose person_labels is empty: name the labels of person boxes")
        self.keypoint_names: str | list[str] = (
            keypoint_names if keypoint_names in ("coco-17", "model") else class_list(keypoint_names)
        )
        self.dataset_index = dataset_index
        self.batch_size, self.device = max(1, batch_size), device
        self._loaded: tuple[Any, Any, tuple[str, ...]] | None = None
        self._counts: Counter[str] = Counter()

    def signature(self) -> ModelSignature:
        params = {
            "threshold": self.threshold,
            "person_labels": self.person_labels,
            "keypoint_names": self.keypoint_names,
            "dataset_index": self.dataset_index,
        }
        return ModelSignature("vitpose", f"{self.checkpoint}@{self.revision or 'main'}", params)

    def drain_counts(self) -> dict[str, int]:
        counts, self._counts = dict(self._counts), Counter()
        return counts

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        raise SettingsError("vitpose refines a detector's person boxes: run it as --model detr+vitpose")

    def refine(
        self, batch: Sequence[ImageItem], previous: Sequence[Detections]
    ) -> list[Detections | PrelabelError]:
        torch = require_torch("vitpose")
        model, processor, names = self._load()
        device = self.device or "cpu"
        loaded, out = decode_batch(batch)
        persons = {label.lower() for label in self.person_labels}
        jobs: dict[int, list[int]] = {}  # image -> its person detections
        coco_boxes = []  # their boxes as posted: on the image, corners in order (clean_boxes)
        for i in loaded:
            people = [j for j, label in enumerate(previous[i].labels) if label.lower() in persons]
            cleanup = clean_boxes(previous[i].xyxy[people], *loaded[i].rgb.size)
            for reason, n in cleanup.dropped.items():  # no crop to warp (the processor raises)
                self._counts[f"person boxes {reason}: no keypoints"] += n
            if cleanup.keep.any():
                jobs[i] = [j for j, keep in zip(people, cleanup.keep, strict=True) if keep]
                coco_boxes.append(_xywh(cleanup.boxes[cleanup.keep]))
        heatmaps = []
        if jobs:
            crops = torch.cat(
                [
                    processor(images=loaded[i].rgb, boxes=[boxes], return_tensors="pt")["pixel_values"]
                    for i, boxes in zip(jobs, coco_boxes, strict=True)
                ]
            )
            experts = int(getattr(model.config.backbone_config, "num_experts", 1))
            for start in range(0, len(crops), self.batch_size):
                chunk = crops[start : start + self.batch_size].to(device)
                extra = {}
                if experts > 1:  # ViTPose++: one expert head per training dataset
                    extra["dataset_index"] = torch.full((len(chunk),), self.dataset_index, device=device)
                with torch.inference_mode(), autocast(device):
                    heatmaps.append(model(pixel_values=chunk, **extra).heatmaps.float().cpu())
        poses: list[list[dict[str, Any]]] = []
        if heatmaps:
            from transformers.models.vitpose.modeling_vitpose import VitPoseEstimatorOutput

            poses = processor.post_process_pose_estimation(
                VitPoseEstimatorOutput(heatmaps=torch.cat(heatmaps)), boxes=coco_boxes
            )
        refined = {i: list(previous[i].keypoints) for i in loaded}
        for (i, found), image_poses in zip(jobs.items(), poses, strict=True):
            width, height = loaded[i].rgb.size
            for j, pose in zip(found, image_poses, strict=True):
                points = []
                for k, (x, y), score in zip(
                    pose["labels"].tolist(), pose["keypoints"].tolist(), pose["scores"].tolist(), strict=True
                ):
                    if not math.isfinite(
                        x + y + score
                    ):  # a NaN heatmap: no place, and score < threshold is False
                        self._counts["keypoints not finite"] += 1
                        continue
                    if score < self.threshold:
                        continue
                    if not (0 <= x <= width and 0 <= y <= height):
                        self._counts["keypoints outside the image"] += 1
                        continue
                    # a heatmap's peak, not a probability: it may leave [0, 1] a little (a record's
                    # scores lie in [0, 1], prelabel.predict.output)
                    points.append(Keypoint(names[k], x, y, min(max(score, 0.0), 1.0)))
                refined[i][j] = tuple(points)
        for i, keypoints in refined.items():
            out[i] = previous[i].replace(keypoints=tuple(keypoints))
        return out

    def _load(self) -> tuple[Any, Any, tuple[str, ...]]:
        """The model, its image processor and the keypoint names in the model's order."""
        if self._loaded is None:
            require_torch("vitpose")
            if importlib.util.find_spec("scipy") is None:  # the image processor's affine warp
                raise SettingsError("the vitpose model needs scipy: pip install 'prelabel[models]'")
            from transformers import AutoImageProcessor, VitPoseForPoseEstimation

            self.device = select_device(self.device)
            processor = load_pretrained(AutoImageProcessor, self.checkpoint, self.revision)
            model = load_pretrained(VitPoseForPoseEstimation, self.checkpoint, self.revision)
            count = int(model.config.num_labels)
            if self.keypoint_names == "model":
                names = tuple(str(model.config.id2label[k]) for k in range(count))
            else:
                names = COCO_KEYPOINTS if self.keypoint_names == "coco-17" else tuple(self.keypoint_names)
            if len(names) != count:
                raise SettingsError(
                    f"{self.checkpoint!r} predicts {count} keypoints, not {len(names)}: pass "
                    "keypoint_names=model (its own names) or a list of as many names"
                )
            self._loaded = (model.to(self.device).eval(), processor, names)
        return self._loaded


def _xywh(xyxy: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Boxes x1, y1, x2, y2 -> COCO's x, y, width, height (what the image processor takes)."""
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
