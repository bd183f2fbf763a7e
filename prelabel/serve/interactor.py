"""Answers to interactive requests: a click or a box -> that object's brush; find-all -> every one.

The image is read as ``/predict`` reads it (the same trusted references), its segmenter features
come from the ``FeatureCache`` (computed once per image), and the answer is built by ``run``'s
prediction builder on the project's non-smart controls (``prompt_config``), with fresh region
ids. Find-all is SAM 3's exemplar prompt when ``sam3`` is served (``ExemplarFinder``), else the
served model's detections of the label (``DetectionFinder``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prelabel.convert.masks import CocoRle, coco_to_mask
from prelabel.core.errors import PrelabelError, RefusedRequestError
from prelabel.labelstudio.client import Project
from prelabel.labelstudio.predictions import build_prediction
from prelabel.predict.models.base import ImageItem
from prelabel.predict.models.prompted import Prompt, PromptSegmenter, Segment
from prelabel.records import Detections, PredictionRecord
from prelabel.serve.findall import DetectionFinder, ExemplarFinder
from prelabel.serve.interactive import (
    FeatureCache,
    InstanceFinder,
    fresh_ids,
    prompt_config,
    read_context,
    smart_controls,
)
from prelabel.serve.predictor import Predictor, ServedModel
from prelabel.serve.protocol import TaskIn

__all__ = ["Interactor"]

log = logging.getLogger("prelabel.serve")


class Interactor:
    """Answers ``/predict`` requests that carry a ``context`` (see the module docstring)."""

    def __init__(
        self,
        predictor: Predictor,
        segmenter: PromptSegmenter | None,
        find_all_control: str,
        feature_cache: int,
        finder: InstanceFinder | None = None,
    ) -> None:
        self.predictor, self.segmenter, self.finder = predictor, segmenter, finder
        self.find_all_control = find_all_control
        self.features = FeatureCache(feature_cache)
        self._exemplar_finders: dict[str, ExemplarFinder] = {}

    def answer(self, project: Project, task: TaskIn, context: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The prediction for one task and its prompt (``result`` empty when no pixel was found)."""
        items, unread = self.predictor.read([self.predictor.image_uri(project, task)])
        if unread:
            raise RefusedRequestError(422, f"task {task.id}: {next(iter(unread.values()))}")
        item = next(iter(items.values()))
        interaction = read_context(context, item.info.width, item.info.height, self.find_all_control)
        drawn = interaction.prompt.box if interaction.find_all else None  # find-all: the drawn box
        if self.segmenter is None and not (drawn is not None and self._finds_by_exemplar()):
            raise RefusedRequestError(
                400,
                "this backend has no segmenter for clicks and boxes: start it with --segmenter "
                "CHECKPOINT (a SAM 2 checkpoint), or use a model that has one (grounded-sam2)",
            )
        served = self.predictor.models.for_config(project.config)
        started = time.monotonic()
        if drawn is not None:
            found = self._finder(served).find(item, drawn, interaction.label)
            boxes: bool | None = None
        else:
            segment = self.segment(item, interaction.prompt)
            found = _one_object(segment, interaction.label)
            boxes = False
        config = prompt_config(project.config, smart_controls(project.label_config_xml))
        record = PredictionRecord(item.info, found, served.adapter.signature(), uri=item.uri, task_id=task.id)
        prediction, report = build_prediction(
            record, config, self.predictor.models.label_map, served.version, boxes=boxes, masks=True
        )
        if len(found) and not prediction["result"] and report.unmatched_labels:
            raise RefusedRequestError(
                422,
                f"label {interaction.label!r} is in none of the project's (non-smart) mask and box "
                "controls: give them the same labels as the smart tools",
            )
        log.info(
            "task %d: %s -> %d regions in %.0f ms",
            task.id,
            "find all" if interaction.find_all else "one object",
            report.regions,
            (time.monotonic() - started) * 1000,
        )
        prediction["result"] = fresh_ids(prediction["result"])
        return prediction

    def _finds_by_exemplar(self) -> bool:
        """Whether find-all prompts SAM 3 with the drawn box (no segmenter needed for it)."""
        given = self.finder
        return isinstance(given, ExemplarFinder) or (given is None and self.predictor.models.name == "sam3")

    def _finder(self, served: ServedModel) -> InstanceFinder:
        """The finder for the served model: given, SAM 3's exemplars (``sam3`` served: the served
        adapter itself, under the model lock), else the served detector's detections."""
        if self.finder is not None:
            return self.finder
        if self.predictor.models.name == "sam3":
            if served.version not in self._exemplar_finders:
                finder = ExemplarFinder(served.adapter, self.predictor.model_lock)
                self._exemplar_finders[served.version] = finder
            return self._exemplar_finders[served.version]
        return DetectionFinder(
            lambda image: self.predictor.detections(served, image),
            self.segment,
            self.predictor.models.label_map,
        )

    def segment(self, item: ImageItem, prompt: Prompt) -> Segment:
        """The segmenter's mask for ``prompt`` on ``item``'s image, its features computed once."""
        segmenter = self.segmenter
        if segmenter is None:  # answer() said so first
            raise PrelabelError("no segmenter")
        with self.predictor.model_lock:
            features, kept = self.features.get(item.info.sha256, lambda: segmenter.embed(item.load()))
            item.unload()
            segment = segmenter.segment(features, prompt)
        log.debug("segment on %s (features %s)", item.info.sha256[:12], "kept" if kept else "computed")
        return segment


def _one_object(segment: Segment, label: str) -> Detections:
    """The segmented object as one detection (its mask's box), or none when no pixel was found."""
    if segment.mask is None:
        return Detections()
    return Detections(
        xyxy=_mask_box(segment.mask)[None],
        scores=np.array([segment.score]),
        labels=(label,),
        masks=(segment.mask,),
    )


def _mask_box(mask: CocoRle) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The xyxy pixel box around a (non-empty) mask's pixels."""
    rows, columns = np.nonzero(coco_to_mask(mask))
    return np.array([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1], dtype=np.float64)
