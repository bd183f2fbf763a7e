"""People's boxes as visual prompts (exemplars), and the regions a model found beyond them.

A concept model given a few boxes people drew on an image finds more instances like them
on that image; on tasks already annotated, the regions it finds that overlap none of
people's boxes of their label are the instances people may have missed. Boxes travel as
``[model label, x1, y1, x2, y2]`` (pixels on the displayed image) by image URI, the label
being what the model is prompted with for the project label (the label map's model label
for it, else the label itself).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from pycocotools import mask as coco_mask

from prelabel.convert.geometry import xyxy_to_xywh
from prelabel.core.atomic import atomic_write_csv
from prelabel.labelstudio.client import Task
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.regions import regions
from prelabel.records import PredictionRecord

__all__ = ["NEW_OVERLAP", "NewRegions", "exemplar_boxes", "new_regions", "write_new_regions"]

NEW_OVERLAP = 0.5
"""A found region is new when its box IoU with every box people drew of its label is below this
(COCO's usual match threshold)."""

Exemplars = Mapping[str, Sequence[Sequence[Any]]]


def exemplar_boxes(
    tasks: Iterable[Task], config: LabelConfig, task_ids: Mapping[str, int], mapping: LabelMap
) -> dict[str, list[list[Any]]]:
    """``[model label, x1, y1, x2, y2]`` of each rectangle in the latest annotation of each
    image's task (``task_ids``: image URI -> task id); images without one are left out."""
    by_task: defaultdict[int, list[list[Any]]] = defaultdict(list)
    for region in regions(tasks, config):
        if region.kind == "rectanglelabels":
            prompt = (mapping.prompt_classes([region.label]) or [region.label])[0]
            by_task[region.task_id].append([prompt, *region.xyxy])
    return {uri: by_task[task] for uri, task in task_ids.items() if by_task.get(task)}


@dataclass(frozen=True)
class NewRegions:
    """One task's label: the boxes people drew, the regions found, and those overlapping none of them."""

    task: int
    image: str
    label: str
    drawn: int
    found: int
    new: int


def new_regions(
    records: Iterable[PredictionRecord],
    exemplars: Exemplars,
    mapping: LabelMap,
    project_labels: Sequence[str],
) -> list[NewRegions]:
    """Per task with exemplars and label (drawn or found), how many found regions are new.

    Labels are compared as the project names them (both sides through the label map)."""
    rows = []
    for record in records:
        drawn = exemplars.get(record.uri)
        if not drawn or record.task_id is None:
            continue
        people: defaultdict[str, list[list[float]]] = defaultdict(list)
        for label, *xyxy in drawn:
            people[mapping.resolve(str(label), project_labels) or str(label)].append(list(xyxy_to_xywh(xyxy)))
        found: defaultdict[str, list[list[float]]] = defaultdict(list)
        for label, box in zip(record.detections.labels, record.detections.xyxy, strict=True):
            found[mapping.resolve(label, project_labels) or label].append(list(xyxy_to_xywh(box)))
        for label in sorted(set(people) | set(found)):
            boxes, theirs = found[label], people[label]
            new = len(boxes)
            if boxes and theirs:
                ious = coco_mask.iou(boxes, theirs, [0] * len(theirs))
                new = sum(1 for row in ious if max(row) < NEW_OVERLAP)
            rows.append(NewRegions(record.task_id, record.uri, label, len(theirs), len(boxes), new))
    return rows


def write_new_regions(path: Path, rows: Sequence[NewRegions]) -> Path:
    """The rows as CSV (task, image, label, drawn, found, new), written atomically."""
    atomic_write_csv(path, [f.name for f in fields(NewRegions)], (astuple(row) for row in rows))
    return path
