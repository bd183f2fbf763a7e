"""Two-step mode: the "model" reads raw prediction files made earlier.

A file beside the image (or in ``raw_dir``, the input's folders mirrored under it) holds
the DINO-X result shape: ``<name>.prelabel.json`` as ``infer`` writes it, or the names the
DINO-X scripts write, ``<stem>_dinox_preannot.json`` and ``<stem>.json``, where only one
image claims them (``prelabel.ingest.rawpaths``). Nothing is decoded, nothing is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prelabel.core.errors import PredictionFileError, PrelabelError
from prelabel.core.failures import Stage
from prelabel.ingest.rawpaths import RAW_SUFFIX, RawFileRule
from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.predict.models.registry import register
from prelabel.records import Detections, ModelSignature, load_raw_file

__all__ = ["RawFiles"]


@register("raw-files")
class RawFiles(ModelAdapter):
    """Predictions from files on disk."""

    task_types = ("detection", "instance-segmentation", "ocr")
    failure_stage = Stage.READ_PREDICTIONS
    decodes_pixels = False

    def __init__(self, raw_dir: str | Path | None = None, input_root: str | Path | None = None) -> None:
        self.raw_dir = Path(raw_dir) if raw_dir else None
        self.input_root = Path(input_root) if input_root else None
        self.rule = RawFileRule(self.raw_dir, self.input_root)

    def signature(self) -> ModelSignature:
        params = {"raw_dir": str(self.raw_dir or ""), "input_root": str(self.input_root or "")}
        return ModelSignature("raw-files", params=params)

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        out: list[Detections | PrelabelError] = []
        for item in batch:
            try:
                path = self.rule.find(Path(item.uri))
                if path is None:
                    name, stem = Path(item.uri).name, Path(item.uri).stem
                    raise PredictionFileError(
                        item.uri, f"no {name}{RAW_SUFFIX}, {stem}_dinox_preannot.json or {stem}.json found"
                    )
                out.append(load_raw_file(path))
            except PredictionFileError as exc:
                out.append(exc)
        return out
