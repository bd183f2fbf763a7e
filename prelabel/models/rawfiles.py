"""Two-step mode: the "model" reads raw prediction files made earlier.

A file beside the image (or in ``raw_dir``) named ``<stem>_dinox_preannot.json`` or
``<stem>.json`` holds the DINO-X result shape. Nothing is decoded, nothing is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prelabel.errors import PredictionFileError, PrelabelError
from prelabel.failures import Stage
from prelabel.ingest.sources import raw_file_for
from prelabel.models.base import ImageItem, ModelAdapter
from prelabel.models.registry import register
from prelabel.records import Detections, ModelSignature, load_raw_file

__all__ = ["RawFiles"]


@register("raw-files")
class RawFiles(ModelAdapter):
    """Predictions from files on disk."""

    task_types = ("detection", "instance-segmentation", "ocr")
    failure_stage = Stage.READ_PREDICTIONS

    def __init__(self, raw_dir: str | Path | None = None) -> None:
        self.raw_dir = Path(raw_dir) if raw_dir else None

    def signature(self) -> ModelSignature:
        return ModelSignature("raw-files", params={"raw_dir": str(self.raw_dir or "")})

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        out: list[Detections | PrelabelError] = []
        for item in batch:
            path = raw_file_for(Path(item.uri), self.raw_dir)
            if path is None:
                stem = Path(item.uri).stem
                out.append(
                    PredictionFileError(item.uri, f"no {stem}_dinox_preannot.json or {stem}.json found")
                )
                continue
            try:
                out.append(load_raw_file(path))
            except PredictionFileError as exc:
                out.append(exc)
        return out
