"""Build a Label Studio prediction from a record, a label map and a labeling config.

Output: ``{"result": [...], "score": mean detection score, "model_version": ...}`` with,
per kept detection and as the config has the control (shapes in ``results``):

- ``rectanglelabels``: the box; a rotated rectangle when the detection has a 4-point
  polygon (an OCR quadrilateral: the minimum-area rectangle of its part on the image, as
  boxes are clipped; one on a line keeps ``xyxy``), ``xyxy`` staying the enclosing box;
  plus a ``textarea`` sharing its id when the detection has text and the config a
  per-region ``<TextArea>`` (a task-wide one is the annotator's, never filled);
- ``brushlabels``: the mask;
- ``polygonlabels``: the detection's polygon as given, else its mask's outer rings
  (``prelabel.convert.contours``: one region per part, holes dropped and counted,
  simplified to ``polygon_tolerance`` pixels), cut to the image along its edges; a ring
  without area on the image dropped, and a given one with a point not finite;
- ``keypointlabels``: each keypoint whose name the control has, ``parentID`` its
  detection's rectangle;

and per image one ``choices`` result for the first task-level Choices control that is
always shown: the best choice, or every matched one in config order when the control says
``choice="multiple"``; a detection's region choices the same way, as ``perRegion`` Choices
results on its first region (its rectangle, else its brush, else its first polygon: same
id, same geometry), each choice in the first per-region control that has it among those
Label Studio shows for that region (``visibleWhen="region-selected"`` with ``whenTagName``
and ``whenLabelValue``, on the control or a View around it).
Labels resolve through the label map to a control's labels or aliases; results carry what
Label Studio stores (``ControlTag.result_label``: the alias when the label has one).
A label no targeted control has is counted as unmatched (keypoint and choice labels
with their kind, also when the config has no such control; choices go through the label map
like labels, as the classifier's prompts from the project did), never posted; a mask or
polygon whose label only another control has is dropped with a counted reason, and so
are degenerate boxes and keypoints or choices whose score is not finite (a NaN would fail
the whole chunk's POST). A control the model never fills is not an error:
``BatchBuild.unfilled`` names it, for the run to say once.
Every mask is decoded once, for its brush and its outline alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.convert.contours import DEFAULT_TOLERANCE, Points, mask_to_polygons, ring_to_rectangle
from prelabel.convert.geometry import clean_boxes, clip_polygon, polygon_area
from prelabel.core.failures import ErrorRow, Stage, item_failure
from prelabel.display import DisplayFrame, display_frame
from prelabel.labelstudio.config import ControlTag, LabelConfig
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.results import ImageFields, Result, box_geometry, region_choices
from prelabel.labelstudio.targets import Controls, fillable_controls, prediction_controls
from prelabel.records import Choice, PredictionRecord

__all__ = ["BatchBuild", "BuildReport", "build_batch", "build_prediction"]

_REGION_KINDS = ("RectangleLabels", "BrushLabels", "PolygonLabels", "KeyPointLabels")


@dataclass
class BuildReport:
    """What building one prediction left out, and why; ``filled``: the controls it used."""

    unmatched_labels: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    regions: int = 0
    region_choices: int = 0  # per-region Choices results posted
    filled: set[str] = field(default_factory=set)


def build_prediction(
    record: PredictionRecord,
    config: LabelConfig,
    label_map: LabelMap | None = None,
    model_version: str = "prelabel",
    *,
    boxes: bool | None = None,
    masks: bool | None = None,
    polygon_tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[dict[str, Any], BuildReport]:
    """The Label Studio prediction for ``record`` (task id not included) and its report.

    ``masks=None`` posts masks when the detections have them and the config has
    BrushLabels; ``True`` requires BrushLabels (a clear error naming what to add);
    ``False`` never posts brushes. ``boxes`` works the same way with RectangleLabels.
    ``polygon_tolerance``: pixels a mask's simplified outline may stray from its trace.
    """
    controls = prediction_controls(config, boxes, masks)
    builder = _Builder(record, controls, label_map or LabelMap(), config.image.name, polygon_tolerance)
    results, scores = builder.build()
    prediction = {
        "result": results,
        "score": sum(scores) / len(scores) if scores else None,
        "model_version": model_version,
    }
    return prediction, builder.report


class _Builder:
    """One record's results, control by control; counts go to ``report``."""

    def __init__(
        self,
        record: PredictionRecord,
        controls: Controls,
        label_map: LabelMap,
        to_name: str,
        tolerance: float,
    ) -> None:
        self.record, self.controls, self.label_map, self.tolerance = record, controls, label_map, tolerance
        image = record.image
        self.fields = ImageFields(to_name, image.width, image.height)
        self.frame: DisplayFrame = display_frame(record.detections, image)
        self.cleanup = clean_boxes(self.frame.xyxy, image.width, image.height)
        self.report = BuildReport(dropped=Counter(self.cleanup.dropped))
        self.results: list[Result] = []
        self._resolved: dict[tuple[str, str], str | None] = {}

    def target(self, control: ControlTag, label: str) -> str | None:
        key = (control.name, label)
        if key not in self._resolved:
            found = self.label_map.resolve(label, control.names)
            self._resolved[key] = None if found is None else control.label_of(found)
        return self._resolved[key]

    def add(self, control: ControlTag, result: Result) -> None:
        self.results.append(result)
        self.report.filled.add(control.tag)

    def build(self) -> tuple[list[Result], list[float]]:
        detections = self.record.detections
        scores: list[float] = []
        for i in range(len(detections)):
            if not self.cleanup.keep[i]:
                continue
            if not math.isfinite(detections.scores[i]):  # a model's NaN would fail the whole chunk's POST
                self.report.dropped["score not finite"] += 1
                continue
            dropped_before, first = self.report.dropped.total(), len(self.results)
            given = self.given_polygon(i)
            rect = self.rectangle(i, given)
            mask = detections.masks[i]
            decoded = None if mask is None else self.frame.mask(mask)  # once, for brush and outline
            brushed = self.brush(i, decoded, rect is not None)
            outlined = self.polygons(i, given, decoded, rect is not None or brushed)
            if self.keypoints(i, rect) or rect is not None or brushed or outlined:
                self.region_choices(i, self.results[first:])
                self.report.regions += 1
                scores.append(float(detections.scores[i]))
            else:
                if self.report.dropped.total() == dropped_before:  # dropped shapes are counted already
                    self.report.unmatched_labels[detections.labels[i]] += 1
                if detections.region_choices[i]:
                    self.report.dropped["region choices: their detection posted no region"] += 1
        self.choices()
        return self.results, scores

    def given_polygon(self, i: int) -> Points | None:
        """Detection ``i``'s own polygon on the displayed grid; one with a point not finite
        (a model's NaN) is dropped and counted (clipping cannot place it)."""
        polygon = self.record.detections.polygons[i]
        if polygon is None:
            return None
        points = self.frame.points(polygon)
        if not np.isfinite(points).all():
            self.report.dropped["polygon: point not finite"] += 1
            return None
        return points

    def rectangle(self, i: int, given: Points | None) -> str | None:
        """The rectangle (and its text) of detection ``i``; its region id, or None."""
        control, detections = self.controls.rect, self.record.detections
        label = None if control is None else self.target(control, detections.labels[i])
        if control is None or label is None:
            return None
        region, score = f"det{i}", float(detections.scores[i])
        rotated = None
        if given is not None and len(given) == 4:  # an OCR quad: the rectangle of its part on the image
            visible = self.clip(given)
            if polygon_area(visible) > 0:  # else off the image or on one line: the enclosing box
                corner = np.clip(given[0], 0.0, (self.fields.width, self.fields.height))  # its reading start
                rotated = ring_to_rectangle(visible, first=corner)
        geometry = box_geometry(self.fields, self.cleanup.boxes[i], rotated)
        if rotated is not None and max(geometry[k] for k in ("x", "y", "width", "height")) > 100:
            # Label Studio measures a rotated side in percent of the unrotated image side and
            # refuses one past 100 (a line of text across the diagonal): the enclosing box
            self.report.dropped["rectangle: rotated one past Label Studio's 100 %, its box posted"] += 1
            geometry = box_geometry(self.fields, self.cleanup.boxes[i], None)
        self.add(control, self.fields.rectangle(region, control, label, geometry, score))
        text = detections.texts[i]
        if self.controls.text is not None and text is not None:
            self.add(
                self.controls.text, self.fields.textarea(region, self.controls.text, text, geometry, score)
            )
        return region

    def _label(self, control: ControlTag | None, i: int, elsewhere: bool) -> str | None:
        """Detection ``i``'s label in ``control``; a miss is a counted drop when another
        control took the detection (``elsewhere``), else left to the unmatched count."""
        if control is None:
            return None
        label = self.target(control, self.record.detections.labels[i])
        if label is None and elsewhere:
            kind = control.kind.removesuffix("Labels").lower()
            self.report.dropped[f"{kind}: label not in <{control.kind} name={control.name!r}>"] += 1
        return label

    def brush(self, i: int, mask: npt.NDArray[np.uint8] | None, elsewhere: bool) -> bool:
        control = self.controls.brush
        label = None if mask is None else self._label(control, i, elsewhere)
        if control is None or mask is None or label is None:
            return False
        if not mask.any():
            self.report.dropped["mask: empty"] += 1
            return False
        self.add(
            control,
            self.fields.brush(f"det{i}-mask", control, label, mask, float(self.record.detections.scores[i])),
        )
        return True

    def clip(self, ring: Points) -> Points:
        return clip_polygon(ring, self.fields.width, self.fields.height)

    def polygons(
        self, i: int, given: Points | None, mask: npt.NDArray[np.uint8] | None, elsewhere: bool
    ) -> bool:
        control, detections = self.controls.polygon, self.record.detections
        if control is None or (given is None and mask is None):
            return False
        label = self._label(control, i, elsewhere)
        if label is None:
            return False
        if given is not None:
            rings = [given]
        else:
            outline = mask_to_polygons(mask, self.tolerance)  # type: ignore[arg-type]  # mask is set here
            self.report.dropped.update(outline.dropped)
            rings = outline.polygons
        posted = False
        for k, ring in enumerate(rings):
            points = self.clip(ring)
            if polygon_area(points) == 0:  # off the image, or a line
                self.report.dropped["polygon: no area on the image"] += 1
                continue
            self.add(
                control,
                self.fields.polygon(f"det{i}-poly{k}", control, label, points, float(detections.scores[i])),
            )
            posted = True
        return posted

    def keypoints(self, i: int, parent: str | None) -> bool:
        control, points = self.controls.keypoints, self.record.detections.keypoints[i]
        if not points:
            return False
        if control is None:  # no <KeyPointLabels> on the image: every name unmatched, not lost unsaid
            self.report.unmatched_labels.update(f"{point.label} (keypoint)" for point in points)
            return False
        moved = self.frame.points([(p.x, p.y) for p in points])
        posted = False
        for j, (point, (x, y)) in enumerate(zip(points, moved, strict=True)):
            label = self.target(control, point.label)
            if label is None:
                self.report.unmatched_labels[f"{point.label} (keypoint)"] += 1
            elif not math.isfinite(point.score):
                self.report.dropped["keypoint: score not finite"] += 1
            elif not (0 <= x <= self.fields.width and 0 <= y <= self.fields.height):
                self.report.dropped["keypoint: outside image"] += 1
            else:
                self.add(
                    control,
                    self.fields.keypoint(f"det{i}-kp{j}", control, label, (x, y), point.score, parent),
                )
                posted = True
        return posted

    def choices(self) -> None:
        """The image's choices the control has: the best one, or all in config order."""
        control, choices = self.controls.choices, self.record.detections.choices
        if control is None:  # no task-level <Choices> on the image (one on another object, say)
            self.report.unmatched_labels.update(f"{choice.label} (choice)" for choice in choices)
            return
        picked = self.pick(control, choices, "choice")
        if picked is not None:
            self.add(control, self.fields.choices(control, *picked))

    def region_choices(self, i: int, posted: list[Result]) -> None:
        """Detection ``i``'s choices on its first region among ``posted`` (its results), each in
        the first per-region control shown for that region that has it."""
        controls, choices = self.controls.region_choices, self.record.detections.region_choices[i]
        if not controls:  # no perRegion <Choices> on the image
            self.report.unmatched_labels.update(f"{choice.label} (region choice)" for choice in choices)
            return
        if not choices:
            return
        shapes = {c.name for c in (self.controls.rect, self.controls.brush, self.controls.polygon) if c}
        region = next((r for r in posted if r["from_name"] in shapes), None)
        if region is None:  # keypoints alone: no region a per-region Choices can attach to
            self.report.dropped["region choices: no box, mask or polygon to attach to"] += 1
            return
        stored = region["value"][region["type"]][0]
        shown = [c for c in controls if c.shows_region(region["from_name"], stored)]
        if not shown:
            self.report.dropped["region choices: no per-region Choices shown for its region"] += 1
            return
        left = list(choices)
        for control in shown:
            mine = [choice for choice in left if self.target(control, choice.label) is not None]
            left = [choice for choice in left if self.target(control, choice.label) is None]
            picked = self.pick(control, mine, "region choice")
            if picked is not None:
                self.add(control, region_choices(region, control, *picked))
                self.report.region_choices += 1
        self.report.unmatched_labels.update(f"{choice.label} (region choice)" for choice in left)

    def pick(
        self, control: ControlTag, choices: Iterable[Choice], kind: str
    ) -> tuple[list[str], float] | None:
        """The choices ``control`` has, the best one or all in config order, and their best
        score; the others are counted as unmatched ``<label> (<kind>)``."""
        best: dict[str, float] = {}
        for choice in choices:
            label = self.target(control, choice.label)
            if label is None:
                self.report.unmatched_labels[f"{choice.label} ({kind})"] += 1
            elif not math.isfinite(choice.score):
                self.report.dropped[f"{kind}: score not finite"] += 1
            else:
                best[label] = max(best.get(label, choice.score), choice.score)
        if not best:
            return None
        if control.multiple:
            # a choice the config lists twice is chosen once
            labels = [label for label in dict.fromkeys(control.labels) if label in best]
        else:
            labels = [max(best, key=lambda label: best[label])]
        return labels, max(best[label] for label in labels)


@dataclass
class BatchBuild:
    """Predictions by task id for a batch of records, and what was left out."""

    predictions: dict[int, dict[str, Any]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    errors: list[ErrorRow] = field(default_factory=list)
    unmatched_labels: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    regions: int = 0
    region_choices: int = 0
    unfilled: set[str] = field(default_factory=set)  # the config's controls no record filled


def build_batch(
    records: Iterable[PredictionRecord],
    config: LabelConfig,
    label_map: LabelMap | None = None,
    model_version: str = "prelabel",
    *,
    boxes: bool | None = None,
    masks: bool | None = None,
    polygon_tolerance: float = DEFAULT_TOLERANCE,
) -> BatchBuild:
    """Build the predictions of records matched to tasks (``task_id`` set), image by image.

    A malformed record (a mask of the wrong size, say) becomes an error row and the
    others go on; a config that cannot serve the request stops the batch at once.
    """
    batch = BatchBuild()
    filled: set[str] = set()
    for record in records:
        if record.task_id is None:
            raise ValueError(f"{record.image.name}: record has no task_id; match it to a task first")
        with item_failure(batch.errors, record.uri or record.image.name, Stage.CONVERT) as attempt:
            prediction, report = build_prediction(
                record,
                config,
                label_map,
                model_version,
                boxes=boxes,
                masks=masks,
                polygon_tolerance=polygon_tolerance,
            )
        if attempt.failed:
            continue
        batch.predictions[record.task_id] = prediction
        batch.names[record.task_id] = record.uri or record.image.name
        batch.unmatched_labels.update(report.unmatched_labels)
        batch.dropped.update(report.dropped)
        batch.regions += report.regions
        batch.region_choices += report.region_choices
        filled |= report.filled
    batch.unfilled = fillable_controls(config, boxes, masks) - filled
    return batch
