"""COCO AP per label through pycocotools' ``COCOeval``, on ground truth and detections built in
memory from the paired tasks (annotated regions are the ground truth; images are task ids).
Brushes and polygons are both compared as masks (``segm``; a polygon rasterised as
``region_mask`` does for matching); keypoints have no AP here: COCO's keypoint AP scores whole
skeletons by OKS, which needs an object area a single Label Studio point does not have."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from prelabel.convert.geometry import xyxy_to_xywh
from prelabel.labelstudio.regions import Region
from prelabel.quality.matching import region_mask
from prelabel.quality.pairs import TaskPair

__all__ = ["coco_ap"]

_IOU_TYPE = {"rectanglelabels": "bbox", "brushlabels": "segm", "polygonlabels": "segm"}


def coco_ap(pairs: Sequence[TaskPair], kind: str) -> dict[str, tuple[float | None, float | None]]:
    """(AP@[.5:.95], AP50) per label of one area type (``rectanglelabels``, ``brushlabels`` or
    ``polygonlabels``); None where COCO leaves it undefined (a label with no annotated region)."""
    labels = sorted({r.label for p in pairs for r in [*p.predicted, *p.annotated] if r.kind == kind})
    if not labels:
        return {}
    category = {label: i + 1 for i, label in enumerate(labels)}
    images = [_image(p) for p in pairs]
    truth: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for pair in pairs:
        for region in pair.annotated:
            if region.kind == kind:
                truth.append(_entry(region, pair.task_id, category) | {"id": len(truth) + 1, "iscrowd": 0})
        for region in pair.predicted:
            if region.kind == kind:
                score = pair.scores.get((region.kind, region.region_id), 1.0)
                found.append(_entry(region, pair.task_id, category) | {"score": score})
    most = max([sum(1 for r in p.predicted if r.kind == kind) for p in pairs] + [100])
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": truth,
            "categories": [{"id": i, "name": n} for n, i in category.items()],
        }
        gt.createIndex()
        dt = gt.loadRes(found) if found else COCO()
        evaluation = COCOeval(gt, dt, _IOU_TYPE[kind])
        evaluation.params.maxDets = [1, 10, most]
        evaluation.evaluate()
        evaluation.accumulate()
    # precision: [IoU thresholds, recall thresholds, categories, area ranges, max dets]; -1 = undefined
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    out: dict[str, tuple[float | None, float | None]] = {}
    for label, cat in category.items():
        k = evaluation.params.catIds.index(cat)
        out[label] = (_mean(precision[:, :, k]), _mean(precision[0, :, k]))
    return out


def _image(pair: TaskPair) -> dict[str, Any]:
    """A COCO image (its size is read when masks are compared; a task without regions has none)."""
    sized = [*pair.annotated, *pair.predicted]
    width, height = (sized[0].width, sized[0].height) if sized else (0, 0)
    return {"id": pair.task_id, "width": width, "height": height}


def _entry(region: Region, image_id: int, category: dict[str, int]) -> dict[str, Any]:
    entry: dict[str, Any] = {"image_id": image_id, "category_id": category[region.label], "area": region.area}
    if _IOU_TYPE[region.kind] == "segm":
        entry["segmentation"] = region_mask(region)
    entry["bbox"] = list(xyxy_to_xywh(region.xyxy))
    return entry


def _mean(values: np.ndarray[Any, Any]) -> float | None:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else None
