"""Label Studio task files with predictions, made without a server.

Label Studio imports a JSON list of ``{"data": {...}, "predictions": [...]}`` tasks, so
a folder of images with raw prediction files can become a ready-to-import file. It runs
the pipeline's own steps (read, the raw-files adapter, the prediction builder), so every
image is handled on its own: a failure becomes an error row and the others go on.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prelabel.core.atomic import atomic_write
from prelabel.core.defaults import DEFAULT_MAX_PIXELS, DEFAULT_TOLERANCE, LOCAL_FILES_PREFIX
from prelabel.core.errors import PredictionFileError, SettingsError
from prelabel.core.failures import ErrorRow
from prelabel.ingest.rawpaths import raw_file_for
from prelabel.ingest.sources import iter_image_files
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.predictions import build_batch
from prelabel.predict.batches import infer_items, read_items
from prelabel.predict.models.rawfiles import RawFiles

__all__ = ["ConvertResult", "convert_directory", "write_tasks"]


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
    unfilled: set[str] = field(default_factory=set)  # the config's controls no image filled


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
    polygon_tolerance: float = DEFAULT_TOLERANCE,
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
    images, wanted = [], []
    for image_path in iter_image_files(input_dir):
        images.append(str(image_path))
        try:
            found = raw_file_for(image_path, raw_dir, input_dir)
        except PredictionFileError:
            found = image_path  # ambiguous: the adapter reports it as the image's error row
        if found is None:
            result.without_predictions.append(str(image_path))
        else:
            wanted.append(str(image_path))
    result.images = len(images)
    # The pipeline's own steps: read, the raw-files "model", the prediction builder.
    items, result.errors = read_items(wanted, max_pixels)
    inferred = infer_items(items, RawFiles(raw_dir, input_root=input_dir), cache=None)
    numbered = [dataclasses.replace(r, task_id=n) for n, r in enumerate(inferred.records)]
    batch = build_batch(
        numbered, config, label_map, model_version, masks=masks, polygon_tolerance=polygon_tolerance
    )
    order = {uri: n for n, uri in enumerate(images)}
    result.errors = sorted([*result.errors, *inferred.errors, *batch.errors], key=lambda e: order[e.file])
    result.unmatched_labels, result.dropped, result.regions, result.unfilled = (
        batch.unmatched_labels,
        batch.dropped,
        batch.regions,
        batch.unfilled,
    )
    for n, prediction in sorted(batch.predictions.items()):
        relative = Path(numbered[n].uri).resolve().relative_to(root.resolve()).as_posix()
        result.tasks.append({"data": {data_key: url_prefix + quote(relative)}, "predictions": [prediction]})
    return result


def write_tasks(path: Path, tasks: list[dict[str, Any]]) -> None:
    """Write tasks as a Label Studio import file, atomically."""
    atomic_write(path, json.dumps(tasks))
