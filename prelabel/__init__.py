"""prelabel: pre-annotate Label Studio projects with detection and segmentation models.

The domain package, a folder per stage over a small core (the layers are import-linter
contracts in ``pyproject.toml``; each folder imports only from the rows below it)::

    review, quality, serve, export, report   what uses predictions
    predict                                  batches, the overlapped stages, the model adapters
    ingest                                   sources, fetching, manifests, the demo samples
    video                                    tracks, keyframes, MOT
    labelstudio, store                       the Label Studio API and formats; caches and S3
    records, display                         the record; the display-frame rule
    convert                                  boxes, masks, brush RLE
    core                                     images, settings, errors, failures, atomic, retry

It imports nothing from Prefect; ``tasks/`` wraps it and ``flows/`` composes the tasks.
This top level is the public API; module paths below it may change. It is loaded lazily
(PEP 562): importing any part of prelabel (``prelabel.core.errors`` for the command line's
``--help`` and ``version``) loads no model, image or array library until a name needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prelabel.convert.geometry import (
        clean_boxes,
        corners_to_xyxy,
        percent_to_corners,
        percent_to_xyxy,
        xyxy_to_percent,
        xyxy_to_xywh,
    )
    from prelabel.convert.masks import brush_to_mask, coco_to_brush, coco_to_mask, mask_to_brush, mask_to_coco
    from prelabel.core.errors import (
        AmbiguousWriteError,
        AnnotationError,
        DetectionError,
        DinoxAuthError,
        DinoxError,
        ImageError,
        ImageTooLargeError,
        LabelConfigError,
        LabelMapError,
        LabelStudioError,
        LabelStudioStartError,
        LabelStudioUnavailableError,
        MaskError,
        NotLabelStudioError,
        PredictionFileError,
        PrelabelError,
        SettingsError,
        SourceError,
    )
    from prelabel.core.images import ImageInfo, LoadedImage, load_image, read_image_info
    from prelabel.core.settings import Settings, load_settings
    from prelabel.ingest.fetch import Fetcher, FetchOptions
    from prelabel.ingest.manifest import (
        IngestResult,
        ManifestRow,
        SourceSpec,
        ingest_items,
        iter_source,
        read_manifest,
        write_manifest,
    )
    from prelabel.ingest.sampling import stratified_sample
    from prelabel.ingest.sources import SourceItem
    from prelabel.labelstudio.client import LabelStudioClient
    from prelabel.labelstudio.config import ControlTag, LabelConfig, parse_label_config
    from prelabel.labelstudio.labelmap import LabelMap, Normalization, load_label_map
    from prelabel.labelstudio.matching import match_files
    from prelabel.labelstudio.predictions import BuildReport, build_prediction
    from prelabel.predict.models import create_model
    from prelabel.records import (
        Detections,
        ModelSignature,
        PredictionRecord,
        load_raw_file,
        save_raw_file,
    )

__version__ = "0.1.0"

# Where each public name lives; ``__getattr__`` imports a module the first time one of its
# names is asked for.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "prelabel.convert.geometry": (
        "clean_boxes",
        "corners_to_xyxy",
        "percent_to_corners",
        "percent_to_xyxy",
        "xyxy_to_percent",
        "xyxy_to_xywh",
    ),
    "prelabel.convert.masks": (
        "brush_to_mask",
        "coco_to_brush",
        "coco_to_mask",
        "mask_to_brush",
        "mask_to_coco",
    ),
    "prelabel.core.errors": (
        "AmbiguousWriteError",
        "AnnotationError",
        "DetectionError",
        "DinoxAuthError",
        "DinoxError",
        "ImageError",
        "ImageTooLargeError",
        "LabelConfigError",
        "LabelMapError",
        "LabelStudioError",
        "LabelStudioStartError",
        "LabelStudioUnavailableError",
        "MaskError",
        "NotLabelStudioError",
        "PredictionFileError",
        "PrelabelError",
        "SettingsError",
        "SourceError",
    ),
    "prelabel.core.images": ("ImageInfo", "LoadedImage", "load_image", "read_image_info"),
    "prelabel.ingest.fetch": ("Fetcher", "FetchOptions"),
    "prelabel.ingest.manifest": (
        "IngestResult",
        "ManifestRow",
        "SourceSpec",
        "ingest_items",
        "iter_source",
        "read_manifest",
        "write_manifest",
    ),
    "prelabel.ingest.sampling": ("stratified_sample",),
    "prelabel.ingest.sources": ("SourceItem",),
    "prelabel.labelstudio.client": ("LabelStudioClient",),
    "prelabel.labelstudio.config": ("ControlTag", "LabelConfig", "parse_label_config"),
    "prelabel.labelstudio.labelmap": ("LabelMap", "Normalization", "load_label_map"),
    "prelabel.labelstudio.matching": ("match_files",),
    "prelabel.labelstudio.predictions": ("BuildReport", "build_prediction"),
    "prelabel.predict.models": ("create_model",),
    "prelabel.records": (
        "Detections",
        "ModelSignature",
        "PredictionRecord",
        "load_raw_file",
        "save_raw_file",
    ),
    "prelabel.core.settings": ("Settings", "load_settings"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if not TYPE_CHECKING:  # for mypy, the imports above declare every name

    def __getattr__(name: str) -> object:
        module = _MODULE_OF.get(name)
        if module is None:
            raise AttributeError(f"module 'prelabel' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


__all__ = [
    "AmbiguousWriteError",
    "AnnotationError",
    "BuildReport",
    "ControlTag",
    "DetectionError",
    "Detections",
    "DinoxAuthError",
    "DinoxError",
    "FetchOptions",
    "Fetcher",
    "ImageError",
    "ImageInfo",
    "ImageTooLargeError",
    "IngestResult",
    "LabelConfig",
    "LabelConfigError",
    "LabelMap",
    "LabelMapError",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioStartError",
    "LabelStudioUnavailableError",
    "LoadedImage",
    "ManifestRow",
    "MaskError",
    "ModelSignature",
    "Normalization",
    "NotLabelStudioError",
    "PredictionFileError",
    "PredictionRecord",
    "PrelabelError",
    "Settings",
    "SettingsError",
    "SourceError",
    "SourceItem",
    "SourceSpec",
    "__version__",
    "brush_to_mask",
    "build_prediction",
    "clean_boxes",
    "coco_to_brush",
    "coco_to_mask",
    "corners_to_xyxy",
    "create_model",
    "ingest_items",
    "iter_source",
    "load_image",
    "load_label_map",
    "load_raw_file",
    "load_settings",
    "mask_to_brush",
    "mask_to_coco",
    "match_files",
    "parse_label_config",
    "percent_to_corners",
    "percent_to_xyxy",
    "read_image_info",
    "read_manifest",
    "save_raw_file",
    "stratified_sample",
    "write_manifest",
    "xyxy_to_percent",
    "xyxy_to_xywh",
]
