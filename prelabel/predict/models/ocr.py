"""OCR with RapidOCR (PP-OCRv4 ONNX models shipped inside the rapidocr-onnxruntime wheel).

Each text line becomes a box labelled ``label`` (default ``text``) with its transcription
and its quadrilateral (``Detections.polygons``, pixels): the prediction builder posts a
rotated RectangleLabels region (the quad's minimum-area rectangle) plus a per-region
TextArea, and the quad itself where the config has PolygonLabels; ``xyxy`` is the quad's
enclosing box.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from prelabel.core.errors import ImageError, PrelabelError, SettingsError
from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.predict.models.registry import register
from prelabel.records import Detections, ModelSignature

__all__ = ["RapidOcr"]


@register("ocr")
class RapidOcr(ModelAdapter):
    """Text lines: quadrilaterals (kept) and their enclosing pixel boxes, with text and score."""

    task_types = ("ocr",)

    def __init__(self, label: str = "text", min_score: float = 0.5) -> None:
        self.label, self.min_score = label, min_score
        self._engine: Any = None

    def signature(self) -> ModelSignature:
        try:
            revision = version("rapidocr-onnxruntime")
        except PackageNotFoundError:
            revision = "missing"
        return ModelSignature(
            "rapidocr-onnxruntime",
            revision,
            {"label": self.label, "min_score": self.min_score, "quads": True},
        )

    def _load(self) -> Any:
        if self._engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise SettingsError(
                    "the ocr model needs rapidocr-onnxruntime: pip install 'prelabel[ocr]'"
                ) from exc
            self._engine = RapidOCR()
        return self._engine

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        engine = self._load()
        out: list[Detections | PrelabelError] = []
        for item in batch:
            try:
                pixels = item.load().to_array()
            except ImageError as exc:
                out.append(exc)
                continue
            found, _ = engine(pixels)
            boxes, scores, texts, quads = [], [], [], []
            for quad, text, score in found or []:
                if float(score) < self.min_score:
                    continue
                points = np.asarray(quad, dtype=np.float64)
                boxes.append([*points.min(axis=0), *points.max(axis=0)])
                scores.append(float(score))
                texts.append(str(text))
                quads.append(tuple((float(x), float(y)) for x, y in points))
            out.append(
                Detections(
                    xyxy=np.asarray(boxes, np.float64).reshape(-1, 4),
                    scores=np.asarray(scores, np.float64),
                    labels=(self.label,) * len(boxes),
                    texts=tuple(texts),
                    polygons=tuple(quads),
                )
            )
        return out
