"""The pipeline's batch steps, free of Prefect: read -> infer (through the cache) -> build.

``tasks/`` wraps each step in a Prefect task working on a batch of images; these
functions hold the logic so that they can be used and tested alone. Per-image failures
come back as error rows (file, stage, error); only whole-batch failures raise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from prelabel.cache import PredictionCache
from prelabel.errors import ImageError, PrelabelError
from prelabel.images import DEFAULT_MAX_PIXELS, read_image_info
from prelabel.models.base import ImageItem, ModelAdapter
from prelabel.records import PredictionRecord
from prelabel.reports import ErrorRow

__all__ = ["InferResult", "chunks", "infer_items", "read_items", "with_tasks"]

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class InferResult:
    """Records of one batch, its error rows, and where the predictions came from."""

    records: list[PredictionRecord] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    cached: int = 0
    inferred: int = 0


def read_items(
    uris: Iterable[str], max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[list[ImageItem], list[ErrorRow]]:
    """Read and hash local image files; unreadable ones become error rows."""
    items, errors = [], []
    for uri in uris:
        try:
            data = Path(uri).read_bytes()
            items.append(
                ImageItem(
                    uri=uri, data=data, info=read_image_info(data, uri, max_pixels), max_pixels=max_pixels
                )
            )
        except OSError as exc:
            errors.append(ErrorRow(uri, "read image", f"{uri}: cannot read file ({exc.strerror or exc})"))
        except ImageError as exc:
            errors.append(ErrorRow(uri, "read image", str(exc)))
    return items, errors


def infer_items(
    items: Sequence[ImageItem],
    model: ModelAdapter,
    cache: PredictionCache | None,
    *,
    refresh: bool = False,
) -> InferResult:
    """Predictions for ``items``: from the cache where present, else from the model (then cached).

    ``refresh`` ignores cached entries (and overwrites them).
    """
    result = InferResult()
    signature = model.signature()
    misses: list[ImageItem] = []
    for item in items:
        hit = None if (refresh or cache is None) else cache.get(item.info.sha256, signature)
        if hit is None:
            misses.append(item)
        else:
            result.records.append(PredictionRecord(item.info, hit, signature, uri=item.uri))
            result.cached += 1
    if misses:
        for item, outcome in zip(misses, model.predict(misses), strict=True):
            if isinstance(outcome, PrelabelError):
                result.errors.append(ErrorRow(item.uri, "infer", str(outcome)))
                continue
            if cache is not None:
                cache.put(item.info.sha256, signature, outcome)
            result.records.append(PredictionRecord(item.info, outcome, signature, uri=item.uri))
            result.inferred += 1
    return result


def with_tasks(records: Iterable[PredictionRecord], task_ids: dict[str, int]) -> list[PredictionRecord]:
    """Records with their task ids set (records without a task are left out)."""
    return [dataclasses.replace(r, task_id=task_ids[r.uri]) for r in records if r.uri in task_ids]
