"""Pseudo-labels out to an object store (``s3://bucket/prefix`` or a local folder).

Per batch: ``coco/batch_NNNNN.json`` (images, categories, boxes in xywh pixels, RLE masks,
scores), one PNG per object mask under ``masks/``, and optionally the images under
``images/``. Keys carry the first 8 hex digits of the image's sha256 so that equal names
from different folders never collide. Resumable: the store is listed once, and an object
already present with the same content (MD5, S3's ETag for single-part uploads) is skipped,
so a rerun writes only what is missing or changed. Category and annotation ids are carried
across batches by the caller (``ExportState``), so every batch of a run agrees on them.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from prelabel.atomic import atomic_write
from prelabel.convert.geometry import xyxy_to_xywh
from prelabel.convert.masks import coco_area, coco_to_mask
from prelabel.errors import SourceError
from prelabel.paths import safe_file_name, within
from prelabel.records import PredictionRecord
from prelabel.redact import redact_url
from prelabel.store.uris import name_of, split_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from prelabel.settings import Settings

__all__ = [
    "ExportReport",
    "ExportState",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "export_batch",
    "open_store",
]


class ObjectStore(Protocol):
    """Where exported objects go."""

    location: str

    def existing(self) -> dict[str, str]:
        """Keys already present -> MD5 hex of their content."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write one object."""


class LocalStore:
    """A folder; objects are written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def existing(self) -> dict[str, str]:
        if not self.root.is_dir():
            return {}
        found = {}
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                found[path.relative_to(self.root).as_posix()] = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324
        return found

    def put(self, key: str, data: bytes, content_type: str) -> None:
        atomic_write(within(self.root, self.root / key), data)


class S3Store:
    """``s3://bucket/prefix`` through boto3 (endpoint and keys from the settings)."""

    def __init__(self, uri: str, settings: Settings | None = None, client: S3Client | None = None) -> None:
        from prelabel.store.s3 import s3_client

        self.bucket, prefix = split_s3_uri(uri)
        self.prefix = prefix.strip("/")
        self.client = client or s3_client(settings)
        self.location = uri

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def existing(self) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        found = {}
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            ):
                for entry in page.get("Contents", []):
                    found[entry["Key"][len(start) :]] = entry.get("ETag", "").strip('"')
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{self.location}: cannot list the export prefix ({exc})") from exc
        return found

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)


def open_store(target: str, settings: Settings | None = None) -> ObjectStore:
    """An S3 store for ``s3://...``, else a local folder."""
    return S3Store(target, settings) if target.startswith("s3://") else LocalStore(target)


@dataclass
class ExportState:
    """What batches of one run share: category ids (in first-seen order) and the next ids."""

    categories: dict[str, int] = field(default_factory=dict)
    next_image: int = 1
    next_annotation: int = 1


@dataclass
class ExportReport:
    """Objects written and skipped (already present, same content) by kind, and every key."""

    written: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)


def export_batch(
    store: ObjectStore,
    existing: Mapping[str, str],
    number: int,
    records: Sequence[PredictionRecord],
    state: ExportState,
    images: Mapping[str, bytes] | None = None,
    label_map: Mapping[str, str] | None = None,
) -> ExportReport:
    """Write one batch's COCO JSON, masks and (given ``images``) image files."""
    import json

    report = ExportReport()

    def put(kind: str, key: str, data: bytes, content_type: str) -> None:
        report.keys.append(key)
        if existing.get(key) == hashlib.md5(data).hexdigest():  # noqa: S324  (content check, not security)
            report.skipped[kind] += 1
            return
        store.put(key, data, content_type)
        report.written[kind] += 1

    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    for record in records:
        info, found = record.image, record.detections
        name = safe_file_name(name_of(record.uri))  # a URL's name is the source's choice
        tag = f"{info.sha256[:8]}-{PurePosixPath(name).stem}"
        image_key = f"images/{info.sha256[:8]}-{name}"
        image_id = state.next_image
        state.next_image += 1
        size = {"width": info.width, "height": info.height}
        coco["images"].append({"id": image_id, "file_name": image_key, **size, "sha256": info.sha256,
                               "source": redact_url(record.uri)})  # fmt: skip
        if images is not None and record.uri in images:
            put("images", image_key, images[record.uri], "application/octet-stream")
        for k in range(len(found)):
            label = (label_map or {}).get(found.labels[k], found.labels[k])
            category = state.categories.setdefault(label, len(state.categories) + 1)
            box = found.xyxy[k]
            entry: dict[str, Any] = {
                "id": state.next_annotation, "image_id": image_id, "category_id": category,
                "bbox": [round(v, 3) for v in xyxy_to_xywh(box)], "score": round(float(found.scores[k]), 5),
                "iscrowd": 0, "area": round(float((box[2] - box[0]) * (box[3] - box[1])), 3),
                "segmentation": [],
            }  # fmt: skip
            mask = found.masks[k]
            if mask is not None:
                entry["segmentation"], entry["area"] = dict(mask), coco_area(mask)
                entry["mask_file"] = f"masks/{tag}_{k:03d}.png"
                put("masks", entry["mask_file"], _png(coco_to_mask(mask)), "image/png")
            if found.texts[k] is not None:
                entry["text"] = found.texts[k]
            coco["annotations"].append(entry)
            state.next_annotation += 1
    coco["categories"] = [{"id": i, "name": name} for name, i in state.categories.items()]
    put(
        "coco", f"coco/batch_{number:05d}.json", json.dumps(coco, sort_keys=True).encode(), "application/json"
    )
    return report


def _png(mask: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((mask > 0).astype(np.uint8) * 255, mode="L").save(buffer, "PNG", optimize=False)
    return buffer.getvalue()
