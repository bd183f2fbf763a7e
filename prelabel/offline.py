"""Label Studio task files with predictions, made without a server.

Label Studio imports a JSON list of ``{"data": {...}, "predictions": [...]}`` tasks, so
a folder of images with raw prediction files can become a ready-to-import file. Every
image is handled on its own: a failure becomes an error row and the others go on.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prelabel.atomic import atomic_write
from prelabel.errors import SettingsError
from prelabel.failures import ErrorRow, Stage, item_failure
from prelabel.images import DEFAULT_MAX_PIXELS, read_image_info
from prelabel.ingest.sources import iter_image_files, raw_file_for
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.predictions import build_prediction
from prelabel.records import PredictionRecord, load_raw_file

__all__ = ["ConvertResult", "convert_directory", "write_tasks"]

LOCAL_FILES_PREFIX = "/data/local-files/?d="


@dataclass
class ConvertResult:
    """Tasks built, and an account of everything that was not."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    without_predictions: list[str] = field(default_factory=list)
    unmatched_labels: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    images: int = 0
    regions: int = 0


def convert_directory(
    input_dir: Path,
    config: LabelConfig,
    label_map: LabelMap | None = None,
    model_version: str = "prelabel",
    *,
    raw_dir: Path | None = None,
    url_prefix: str = LOCAL_FILES_PREFIX,
    document_root: Path | None = None,
    masks: bool | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ConvertResult:
    """Tasks for every image under ``input_dir`` that has a raw prediction file.

    A task's image URL is ``url_prefix`` + the image path relative to ``document_root``
    (default ``input_dir``), URL-encoded: with Label Studio's local-files serving rooted
    at ``document_root`` the tasks open as they are.
    """
    root = document_root or input_dir
    if not input_dir.resolve().is_relative_to(root.resolve()):
        raise SettingsError(f"{input_dir}: not inside the document root {root}")
    data_key = config.image.data_key
    result = ConvertResult()
    for image_path in iter_image_files(input_dir):
        result.images += 1
        raw_path = raw_file_for(image_path, raw_dir)
        if raw_path is None:
            result.without_predictions.append(str(image_path))
            continue
        with item_failure(result.errors, str(image_path), Stage.READ) as attempt:
            info = read_image_info(image_path, max_pixels=max_pixels)
            attempt.stage = Stage.READ_PREDICTIONS
            detections = load_raw_file(raw_path)
            attempt.stage = Stage.CONVERT
            record = PredictionRecord(image=info, detections=detections, uri=str(image_path))
            prediction, report = build_prediction(record, config, label_map, model_version, masks=masks)
        if attempt.failed:
            continue
        result.unmatched_labels.update(report.unmatched_labels)
        result.dropped.update(report.dropped)
        result.regions += report.regions
        relative = image_path.resolve().relative_to(root.resolve()).as_posix()
        result.tasks.append({"data": {data_key: url_prefix + quote(relative)}, "predictions": [prediction]})
    return result


def write_tasks(path: Path, tasks: list[dict[str, Any]]) -> None:
    """Write tasks as a Label Studio import file, atomically."""
    atomic_write(path, json.dumps(tasks))
