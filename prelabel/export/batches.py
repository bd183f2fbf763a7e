"""Pseudo-label export, one batch at a time: read -> infer (through the cache) -> write
(``export_inferred``: the write, once a batch is inferred; the flows overlap the three).

Per batch ``coco/batch_NNNNN.json`` (images, categories, boxes in xywh pixels, RLE masks,
scores, and polygons, keypoints and choices as ``prelabel.export.shapes`` shapes them), one
PNG per object mask under ``masks/``, and optionally the images under
``images/`` (as displayed: ``prelabel.export.images``). The bytes an image was read with
for inference are the bytes exported: nothing is downloaded twice.

Ids never depend on who ran what, so shards on many workers write exactly what one process
writes: an image's id is its position in the run's image list (+1), batches are
consecutive slices of that list, an annotation's id is ``image id * 10,000 + index + 1``,
and fixed categories (``ExportPlan.categories``) number their ids up front. Without fixed
categories labels are numbered in first-seen order, which only one process can do.
Keys carry 8 hex digits of the source's sha256, so equal names never collide.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from prelabel.convert.geometry import xyxy_to_xywh
from prelabel.convert.masks import coco_area, coco_to_mask
from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow, Stage, item_failure
from prelabel.core.images import DEFAULT_MAX_PIXELS
from prelabel.core.paths import safe_file_name
from prelabel.core.redact import redact_url
from prelabel.export.images import frame_for_export, image_for_export
from prelabel.export.shapes import (
    category_fields,
    choice_fields,
    keypoint_fields,
    keypoint_names,
    polygon_area,
    polygon_segmentation,
)
from prelabel.export.targets import BatchIndex, ObjectStore, index_key, read_index, started_key
from prelabel.ingest.fetch import Fetcher
from prelabel.predict.batches import InferResult, ReadBatch, infer_read, read_batch
from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.predict.models.base import class_list as split_classes
from prelabel.records import Detections, ModelSignature, PredictionRecord
from prelabel.store.cache import PredictionCache
from prelabel.store.uris import name_of

__all__ = [
    "MAX_OBJECTS",
    "BatchExport",
    "ExportPlan",
    "batch_shards",
    "export_inferred",
    "export_items",
    "export_records",
    "export_shard_key",
]

MAX_OBJECTS = 9_999
"""Objects per image that fit its annotation id range (``image id * 10,000 + 1 ...``)."""


@dataclass(frozen=True)
class ExportPlan:
    """What every batch of one export agrees on."""

    batch_size: int
    categories: tuple[str, ...] = ()
    label_map: Mapping[str, str] = field(default_factory=dict)
    with_images: bool = False
    keep_original_images: bool = False

    def batch_numbers(self, images: int) -> list[int]:
        """The numbers of the batches ``images`` images make (from 1)."""
        return list(range(1, len(self.batch_sizes(images)) + 1))

    def batch_sizes(self, images: int) -> list[int]:
        """The size of each batch ``images`` images make (the last one may be short)."""
        return [min(self.batch_size, images - start) for start in range(0, images, self.batch_size)]

    @classmethod
    def resolve(
        cls,
        batch_size: int,
        categories: Sequence[str],
        model_options: Mapping[str, Any],
        label_map: Mapping[str, str] | None,
        with_images: bool,
        keep_original: bool,
    ) -> ExportPlan:
        """Categories as given, else the model's ``classes`` option through the label map, else
        none fixed (first-seen order)."""
        mapping = dict(label_map or {})
        names = list(categories) or [mapping.get(c, c) for c in split_classes(model_options.get("classes"))]
        unique = tuple(dict.fromkeys(names))
        return cls(batch_size, unique, mapping, with_images, keep_original)

    def category_ids(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.categories, start=1)}

    def digest(self) -> str:
        text = json.dumps(
            [
                self.batch_size,
                self.categories,
                sorted(self.label_map.items()),
                self.with_images,
                self.keep_original_images,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def batch_shards(images: int, batch_size: int, shard_size: int) -> list[tuple[int, int, int]]:
    """Shards of whole batches, about ``shard_size`` images each: (first batch number, start, end)."""
    step = max(1, -(-shard_size // batch_size)) * batch_size
    return [(start // batch_size + 1, start, min(start + step, images)) for start in range(0, images, step)]


def export_shard_key(
    plan: ExportPlan, signature: ModelSignature, target: str, first: int, uris: Sequence[str]
) -> str:
    """A stable name for one export shard: the plan, the model, the target and its images."""
    digest = hashlib.sha256(f"{plan.digest()}\0{signature.key}\0{target}\0{first}".encode())
    for uri in uris:
        digest.update(b"\0" + uri.encode())
    return f"export-{digest.hexdigest()[:24]}"


@dataclass
class BatchExport:
    """Objects written and skipped (already there, same content) by kind, every key, labels
    outside the fixed categories, and the batch's error rows."""

    written: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)
    unmatched: Counter[str] = field(default_factory=Counter)
    errors: list[ErrorRow] = field(default_factory=list)
    cached: int = 0
    inferred: int = 0

    def line(self) -> str:
        """The batch's line for the log."""
        written, there = self.written.total(), self.skipped.total()
        return f"{written} objects written, {there} already there, {len(self.errors)} failed"

    def add(self, other: BatchExport) -> None:
        self.written.update(other.written)
        self.skipped.update(other.skipped)
        self.unmatched.update(other.unmatched)
        self.keys += other.keys
        self.errors += other.errors
        self.cached += other.cached
        self.inferred += other.inferred


def export_items(
    store: ObjectStore,
    plan: ExportPlan,
    number: int,
    uris: Sequence[str],
    model: ModelAdapter,
    cache: PredictionCache | None,
    categories: dict[str, int],
    *,
    refresh: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fetcher: Fetcher | None = None,
) -> BatchExport:
    """Batch ``number`` (images ``uris``, the ``number``-th slice of the run's list): each image
    read once, inferred through the cache, exported with the bytes it was read with."""
    read = read_batch(uris, model, cache, refresh=refresh, max_pixels=max_pixels, fetcher=fetcher)
    return export_inferred(store, plan, number, uris, read, infer_read(read, model, cache), categories)


def export_inferred(
    store: ObjectStore,
    plan: ExportPlan,
    number: int,
    uris: Sequence[str],
    read: ReadBatch,
    inferred: InferResult,
    categories: dict[str, int],
) -> BatchExport:
    """Export batch ``number`` once inferred: its records written with the bytes they were read
    with; its read and inference error rows first."""
    items = {i.uri: i for i in read.items}
    report = export_records(store, plan, number, uris, items, inferred.records, categories)
    report.errors[:0] = inferred.errors
    report.cached, report.inferred = inferred.cached, inferred.inferred
    return report


def export_records(
    store: ObjectStore,
    plan: ExportPlan,
    number: int,
    uris: Sequence[str],
    items: Mapping[str, ImageItem],
    records: Sequence[PredictionRecord],
    categories: dict[str, int],
) -> BatchExport:
    """Write one batch; ``categories`` (label -> id) grows in first-seen order unless the plan fixes them."""
    report = BatchExport()
    index = read_index(store, number)
    crashed = index is None and store.get(started_key(number)) is not None
    if index is None and not crashed:
        store.put(started_key(number), b"", "text/plain")
    found: dict[str, tuple[str, int]] = {}
    kinds: dict[str, str] = {}

    def put(kind: str, key: str, data: bytes, content_type: str) -> None:
        md5 = hashlib.md5(data).hexdigest()  # noqa: S324  (content check, not security)
        found[key], kinds[key] = (md5, len(data)), kind
        report.keys.append(key)
        if index is not None:
            same = index.objects.get(key) == (md5, len(data)) and store.holds(key, len(data))
        else:
            same = crashed and store.md5(key) == md5
        if same:
            report.skipped[kind] += 1
        else:
            store.put(key, data, content_type)
            report.written[kind] += 1

    first_id = (number - 1) * plan.batch_size + 1
    position = {uri: i for i, uri in enumerate(uris)}
    coco: dict[str, Any] = {"images": [], "annotations": []}
    points = keypoint_names(records, plan.label_map, plan.categories)
    for record in sorted(records, key=lambda r: position[r.uri]):
        with item_failure(report.errors, record.uri, Stage.EXPORT):
            image_id = first_id + position[record.uri]
            image, annotations, files = _image_entries(
                record, items[record.uri], image_id, plan, categories, points, report.unmatched
            )
            for kind, key, data, content_type in files:
                put(kind, key, data, content_type)
            coco["images"].append(image)
            coco["annotations"] += annotations
    coco["categories"] = [
        {"id": i, "name": name} | (category_fields(points[name]) if name in points else {})
        for name, i in categories.items()
    ]
    put(
        "coco",
        f"coco/batch_{number:05d}.json",
        json.dumps(coco, sort_keys=True, allow_nan=False).encode(),
        "application/json",
    )
    body = BatchIndex(found, kinds).to_bytes()
    if index is None or index.objects != found or index.kinds != kinds:
        store.put(index_key(number), body, "application/json")
    return report


def _image_entries(
    record: PredictionRecord,
    item: ImageItem,
    image_id: int,
    plan: ExportPlan,
    categories: dict[str, int],
    points: Mapping[str, tuple[str, ...]],
    unmatched: Counter[str],
) -> tuple[dict[str, Any], list[dict[str, Any]], list[tuple[str, str, bytes, str]]]:
    """One image's COCO entry, its annotations and the files to write (nothing written yet);
    ``points``: each category's keypoint names in this batch."""
    info = record.image
    if len(record.detections) > MAX_OBJECTS:
        raise PrelabelError(
            f"{len(record.detections)} objects: more than the {MAX_OBJECTS} an image's ids hold"
        )
    _require_finite(record.detections)
    name = safe_file_name(name_of(record.uri))  # a URL's name is the source's choice
    out = image_for_export(item.data, info, f"{info.sha256[:8]}-{name}", plan.keep_original_images)
    found = frame_for_export(record.detections, info, plan.keep_original_images)
    stored = plan.keep_original_images and info.orientation != 1
    width, height = (info.stored_width, info.stored_height) if stored else (info.width, info.height)
    files: list[tuple[str, str, bytes, str]] = []
    image: dict[str, Any] = {
        "id": image_id,
        "file_name": f"images/{out.name}",
        "width": width,
        "height": height,
        "source": redact_url(record.uri),
        "source_sha256": info.sha256,
        "source_orientation": info.orientation,
        "pixels": "stored" if plan.keep_original_images else "displayed",
    } | choice_fields(found.choices, plan.label_map)
    if plan.with_images:
        image |= {"sha256": hashlib.sha256(out.data).hexdigest(), "image": out.done}
        files.append(("images", image["file_name"], out.data, "application/octet-stream"))
    tag = f"{info.sha256[:8]}-{PurePosixPath(name).stem}"
    annotations = []
    for k in range(len(found)):
        label = plan.label_map.get(found.labels[k], found.labels[k])
        if plan.categories and label not in categories:
            unmatched[label] += 1
            continue
        box = found.xyxy[k]
        entry: dict[str, Any] = {
            "id": image_id * (MAX_OBJECTS + 1) + k + 1,
            "image_id": image_id,
            "category_id": categories.setdefault(label, len(categories) + 1),
            "bbox": [round(v, 3) for v in xyxy_to_xywh(box)],
            "score": round(float(found.scores[k]), 5),
            "iscrowd": 0,
            "area": round(float((box[2] - box[0]) * (box[3] - box[1])), 3),
            "segmentation": [],
        }
        mask = found.masks[k]
        if mask is not None:
            entry["segmentation"], entry["area"] = dict(mask), coco_area(mask)
            entry["mask_file"] = f"masks/{tag}_{k:03d}.png"
            files.append(("masks", entry["mask_file"], _png(coco_to_mask(mask)), "image/png"))
        polygon = found.polygons[k]
        if polygon is not None:
            ring = polygon_segmentation(polygon)
            if mask is None:
                entry["segmentation"], entry["area"] = ring, polygon_area(ring, height, width)
            else:  # the mask is the finer shape; the polygon (an OCR quadrilateral, say) kept beside
                entry["polygon"] = ring
        keypoints = found.keypoints[k]
        if keypoints is not None:
            entry |= keypoint_fields(keypoints, points[label], plan.label_map)
        entry |= choice_fields(found.region_choices[k], plan.label_map)
        if found.texts[k] is not None:
            entry["text"] = found.texts[k]
        annotations.append(entry)
    return image, annotations, files


def _require_finite(found: Detections) -> None:
    """A NaN or infinite score or coordinate (a model's numeric failure, e.g. float16 overflow)
    would make the batch's COCO JSON invalid (and a polygon's could not be rasterised): the
    image is an error row instead."""
    scores = [
        *found.scores.tolist(),
        *(c.score for c in found.choices),
        *(p.score for points in found.keypoints if points for p in points),
        *(c.score for choices in found.region_choices for c in choices),
    ]
    if not all(math.isfinite(score) for score in scores):
        raise PrelabelError("a score is not a finite number (the model's output is broken): not exported")
    coordinates = [
        *found.xyxy.ravel().tolist(),
        *(v for ring in found.polygons if ring for point in ring for v in point),
        *(v for kps in found.keypoints if kps for k in kps for v in (k.x, k.y)),
    ]
    if not all(math.isfinite(v) for v in coordinates):
        raise PrelabelError("a coordinate is not a finite number (a broken model output): not exported")


def _png(mask: np.ndarray[Any, Any]) -> bytes:
    """An 8-bit 0/255 PNG. zlib's run-length strategy suits masks: at 1080p it halves the
    time of the default (benchmarks/export_costs.py) and the file is a little smaller."""
    buffer = io.BytesIO()
    pixels = np.multiply(mask > 0, 255, dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(buffer, "PNG", optimize=False, compress_type=zlib.Z_RLE)
    return buffer.getvalue()
