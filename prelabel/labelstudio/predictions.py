"""Build a Label Studio prediction from a record, a label map and a labeling config.

Output: ``{"result": [...], "score": mean detection score, "model_version": ...}``, with a
``rectanglelabels`` result per kept box, a ``brushlabels`` result per kept mask, and a
per-region ``textarea`` result sharing its rectangle's id when the detection has text.
A detection whose label no targeted control has is counted as unmatched, never posted; a
mask whose label only the rectangles have is dropped with a counted reason, and so are
degenerate boxes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prelabel.convert.geometry import clean_boxes, xyxy_to_percent
from prelabel.convert.masks import mask_to_brush
from prelabel.errors import LabelConfigError
from prelabel.failures import ErrorRow, Stage, item_failure
from prelabel.frames import display_frame
from prelabel.labelstudio.config import ControlTag, LabelConfig
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.records import PredictionRecord

__all__ = ["BatchBuild", "BuildReport", "build_batch", "build_prediction"]


@dataclass
class BuildReport:
    """What building one prediction left out, and why."""

    unmatched_labels: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    regions: int = 0


def build_prediction(
    record: PredictionRecord,
    config: LabelConfig,
    label_map: LabelMap | None = None,
    model_version: str = "prelabel",
    *,
    boxes: bool | None = None,
    masks: bool | None = None,
) -> tuple[dict[str, Any], BuildReport]:
    """The Label Studio prediction for ``record`` (task id not included) and its report.

    ``masks=None`` posts masks when the detections have them and the config has
    BrushLabels; ``True`` requires BrushLabels (a clear error naming what to add);
    ``False`` never posts masks. ``boxes`` works the same way with RectangleLabels.
    """
    label_map = label_map or LabelMap()
    image = record.image
    if boxes is None:
        rect = config.find("RectangleLabels")
    else:
        rect = config.require("RectangleLabels", "posting boxes") if boxes else None
    if masks is None:
        brush = config.find("BrushLabels") if record.detections.has_masks else None
    elif masks:
        brush = config.require("BrushLabels", "posting masks")
    else:
        brush = None
    if rect is None and brush is None:
        raise LabelConfigError(
            f"nothing to post for {image.name}: the labeling config needs a <RectangleLabels> "
            "control for boxes (or <BrushLabels> for masks, when the model gives masks)"
        )
    text = config.find("TextArea") if rect is not None else None

    detections = record.detections
    frame = display_frame(detections, image)  # masks are decoded once each, below
    cleanup = clean_boxes(frame.xyxy, image.width, image.height)
    report = BuildReport(dropped=Counter(cleanup.dropped))
    resolved: dict[tuple[str, str], str | None] = {}

    def target(control: ControlTag, label: str) -> str | None:
        key = (control.name, label)
        if key not in resolved:
            resolved[key] = label_map.resolve(label, control.labels)
        return resolved[key]

    common = {
        "to_name": config.image.name,
        "original_width": image.width,
        "original_height": image.height,
        "image_rotation": 0,
    }
    results: list[dict[str, Any]] = []
    kept_scores: list[float] = []
    for i in range(len(detections)):
        if not cleanup.keep[i]:
            continue
        label, score = detections.labels[i], float(detections.scores[i])
        region = f"det{i}"
        posted = False
        if rect is not None:
            rect_label = target(rect, label)
            if rect_label is not None:
                geometry = {
                    **xyxy_to_percent(cleanup.boxes[i], image.width, image.height),
                    "rotation": 0,
                }
                results.append({
                    "id": region, "type": "rectanglelabels", "from_name": rect.name, **common,
                    "value": {**geometry, "rectanglelabels": [rect_label]}, "score": score,
                })  # fmt: skip
                if text is not None and detections.texts[i] is not None:
                    results.append({
                        "id": region, "type": "textarea", "from_name": text.name, **common,
                        "value": {**geometry, "text": [detections.texts[i]]}, "score": score,
                    })  # fmt: skip
                posted = True
        mask = detections.masks[i]
        if brush is not None and mask is not None:
            brush_label = target(brush, label)
            if brush_label is None and posted:
                report.dropped[f"mask: label not in <BrushLabels name={brush.name!r}>"] += 1
            elif brush_label is not None:
                rle = mask_to_brush(frame.mask(mask))
                results.append({
                    "id": f"{region}-mask", "type": "brushlabels", "from_name": brush.name, **common,
                    "value": {"format": "rle", "rle": rle, "brushlabels": [brush_label]},
                    "score": score,
                })  # fmt: skip
                posted = True
        if not posted:
            report.unmatched_labels[label] += 1
        else:
            report.regions += 1
            kept_scores.append(score)
    prediction = {
        "result": results,
        "score": sum(kept_scores) / len(kept_scores) if kept_scores else None,
        "model_version": model_version,
    }
    return prediction, report


@dataclass
class BatchBuild:
    """Predictions by task id for a batch of records, and what was left out."""

    predictions: dict[int, dict[str, Any]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    errors: list[ErrorRow] = field(default_factory=list)
    unmatched_labels: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    regions: int = 0


def build_batch(
    records: Iterable[PredictionRecord],
    config: LabelConfig,
    label_map: LabelMap | None = None,
    model_version: str = "prelabel",
    *,
    boxes: bool | None = None,
    masks: bool | None = None,
) -> BatchBuild:
    """Build the predictions of records matched to tasks (``task_id`` set), image by image.

    A malformed record (a mask of the wrong size, say) becomes an error row and the
    others go on; a config that cannot serve the request stops the batch at once.
    """
    batch = BatchBuild()
    for record in records:
        if record.task_id is None:
            raise ValueError(f"{record.image.name}: record has no task_id; match it to a task first")
        with item_failure(batch.errors, record.uri or record.image.name, Stage.CONVERT) as attempt:
            prediction, report = build_prediction(
                record, config, label_map, model_version, boxes=boxes, masks=masks
            )
        if attempt.failed:
            continue
        batch.predictions[record.task_id] = prediction
        batch.names[record.task_id] = record.uri or record.image.name
        batch.unmatched_labels.update(report.unmatched_labels)
        batch.dropped.update(report.dropped)
        batch.regions += report.regions
    return batch
