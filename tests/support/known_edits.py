"""A synthetic project with known edits, for the quality report's tests (tests/integration/).

Images are 100x100 pixels, so Label Studio's percentages are pixels. The model version
``v1`` predicted six tasks; people then (through the API, as the labeling UI would save them,
region ids copied from the prediction):

- task 1: car box b1 kept (text "HELO WORLD" corrected to "HELLO WORLD": 1 edit), car box b2
  moved away (IoU 0), person box b3 deleted, person box b4 kept (text "AB" kept), person box a4
  added, car polygon p1 (a triangle, scored by the prediction's 0.5) kept; choice kept;
- task 2: car mask m1 kept, car mask m2 eroded by one pixel all round (IoU 18²/20² = 0.81);
  nose keypoint k3 moved 4 px (beyond the default tolerance, 0.02 x 141.4 = 2.83 px); choice kept;
- task 3: choice changed street -> indoor; nose keypoint k2 moved 2 px (within it); eye
  keypoint a6 added;
- task 4: choice kept; car polygons (squares 20 px wide): p2 kept, p3 moved 4 px right (IoU
  16x20 / (2x400 - 320) = 2/3), p4 deleted, a5 added; nose keypoint k1 kept, eye keypoint k4
  deleted;
- task 5: only a cancelled annotation (wildly different); task 6: not annotated;
- version ``old`` predicted task 1 too (must not count).

Per-region choices (control ``kind``, perRegion): b1 sedan kept, b2 truck -> sedan (b2 moved,
so not matched: compared by id only), b3 truck (deleted with its box), m1 sedan -> truck, m2
truck removed, p2 sedan kept, p3 none -> sedan added, a5 truck (an added region). Matched: 5
compared, 2 right; by id: 6 compared, 2 right (``REGION_CHOICES_*``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prelabel.convert.masks import mask_to_brush
from prelabel.labelstudio.client import LabelStudioClient, Project

__all__ = [
    "AP50_CAR_POLYGON",
    "AP_CAR_BOX",
    "AP_CAR_MASK",
    "AP_CAR_POLYGON",
    "AP_PERSON_BOX",
    "REGION_CHOICES_BY_ID",
    "REGION_CHOICES_MATCHED",
    "known_edits_project",
]

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
  <BrushLabels name="mask" toName="image"><Label value="car"/></BrushLabels>
  <PolygonLabels name="polygon" toName="image"><Label value="car"/></PolygonLabels>
  <KeyPointLabels name="keypoints" toName="image"><Label value="nose"/><Label value="eye"/></KeyPointLabels>
  <Choices name="scene" toName="image"><Choice value="street"/><Choice value="indoor"/></Choices>
  <Choices name="kind" toName="image" perRegion="true">
    <Choice value="sedan"/><Choice value="truck"/>
  </Choices>
  <TextArea name="transcription" toName="image" perRegion="true"/>
</View>"""
SIDE = 100
AP_CAR_BOX = 51 / 101  # TP (0.9) then FP (0.8) of 2: precision 1 up to recall 0.5, then nothing
AP_PERSON_BOX = 0.5 * 51 / 101  # FP (0.7) then TP (0.6) of 2: precision 0.5 up to recall 0.5
AP_CAR_MASK = (7 * 1.0 + 3 * 51 / 101) / 10  # IoU 0.81 matches at thresholds .50-.80, not .85-.95
# Polygons of 4 annotated, by score: p2 TP (0.9), p3 (0.8) TP at IoU .50-.65 and FP above, p4 FP
# (0.7), p1 TP (0.5). Matched: precision 1 up to recall 0.5, 0.75 up to 0.75; else precision 1 up
# to recall 0.25, 0.5 up to 0.5 (COCO's 101 recall points, interpolated precision).
AP50_CAR_POLYGON = (51 + 25 * 0.75) / 101
AP_CAR_POLYGON = (4 * AP50_CAR_POLYGON + 6 * (26 + 25 * 0.5) / 101) / 10
REGION_CHOICES_MATCHED = {
    (("sedan",), ("sedan",)): 2,
    (("sedan",), ("truck",)): 1,
    (("truck",), ()): 1,
    ((), ("sedan",)): 1,
}
"""(predicted, annotated) choices of ``kind`` over matched regions: b1, p2; m1; m2; p3."""
REGION_CHOICES_BY_ID = REGION_CHOICES_MATCHED | {(("truck",), ("sedan",)): 1}
"""The same over regions of the same id: b2 too."""


def _result(
    rid: str, kind: str, name: str, value: dict[str, Any], score: float | None = None
) -> dict[str, Any]:
    result = {
        "id": rid,
        "type": kind,
        "from_name": name,
        "to_name": "image",
        "original_width": SIDE,
        "original_height": SIDE,
        "image_rotation": 0,
        "value": value,
    }
    return result | ({"score": score} if score is not None else {})


def _box(
    rid: str,
    label: str,
    xyxy: tuple[int, int, int, int],
    score: float | None = None,
    text: str | None = None,
    choice: str | None = None,
) -> list[dict[str, Any]]:
    x1, y1, x2, y2 = xyxy
    geometry = {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "rotation": 0}
    out = [_result(rid, "rectanglelabels", "label", geometry | {"rectanglelabels": [label]}, score)]
    if text is not None:
        out.append(_result(rid, "textarea", "transcription", geometry | {"text": [text]}, score))
    return _chosen(out, choice)


def _chosen(results: list[dict[str, Any]], choice: str | None) -> list[dict[str, Any]]:
    """The region's results (its own first), and its per-region ``kind`` choice as the labeling
    UI saves one: the region's id and geometry, the choice."""
    if choice is None:
        return results
    region = results[0]
    value = {k: v for k, v in region["value"].items() if k != region["type"]} | {"choices": [choice]}
    chosen = {k: v for k, v in region.items() if k != "score"} | {"type": "choices", "from_name": "kind"}
    return [*results, chosen | {"value": value}]


def _mask(rid: str, rows: slice, score: float | None = None) -> dict[str, Any]:
    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[rows, rows] = 1
    value = {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": ["car"]}
    return _result(rid, "brushlabels", "mask", value, score)


def _choice(choice: str) -> dict[str, Any]:
    return {
        "id": "scene",
        "type": "choices",
        "from_name": "scene",
        "to_name": "image",
        "value": {"choices": [choice]},
    }


def _polygon(rid: str, points: list[list[int]], score: float | None = None) -> dict[str, Any]:
    return _result(rid, "polygonlabels", "polygon", {"points": points, "polygonlabels": ["car"]}, score)


def _square(rid: str, x: int, y: int, score: float | None = None) -> dict[str, Any]:
    return _polygon(rid, [[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20]], score)


def _keypoint(rid: str, label: str, x: int, y: int, score: float | None = None) -> dict[str, Any]:
    value = {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]}
    return _result(rid, "keypointlabels", "keypoints", value, score)


POLYGON = _polygon("p1", [[1, 1], [9, 1], [5, 9]])
PREDICTED = [
    [
        *_box("b1", "car", (10, 10, 30, 30), 0.9, "HELO WORLD", "sedan"),
        *_box("b2", "car", (50, 10, 70, 30), 0.8, choice="truck"),
        *_box("b3", "person", (10, 50, 30, 70), 0.7, choice="truck"),
        *_box("b4", "person", (70, 70, 90, 90), 0.6, "AB"),
        POLYGON,
        _choice("street"),
    ],
    [
        *_chosen([_mask("m1", slice(10, 30), 0.9)], "sedan"),
        *_chosen([_mask("m2", slice(50, 70), 0.8)], "truck"),
        _keypoint("k3", "nose", 80, 20, 0.7),
        _choice("street"),
    ],
    [_keypoint("k2", "nose", 50, 50, 0.8), _choice("street")],
    [
        *_chosen([_square("p2", 10, 10, 0.9)], "sedan"),
        _square("p3", 50, 10, 0.8),
        _square("p4", 10, 50, 0.7),
        _keypoint("k1", "nose", 20, 20, 0.9),
        _keypoint("k4", "eye", 30, 80, 0.6),
        _choice("street"),
    ],
    [*_box("c1", "car", (10, 10, 30, 30), 0.9), _choice("street")],
    [*_box("d1", "car", (10, 10, 30, 30), 0.9), _choice("street")],
]
ANNOTATED = [
    [
        *_box("b1", "car", (10, 10, 30, 30), text="HELLO WORLD", choice="sedan"),
        *_box("b2", "car", (60, 40, 80, 60), choice="sedan"),
        *_box("b4", "person", (70, 70, 90, 90), text="AB"),
        *_box("a4", "person", (50, 50, 70, 90)),
        POLYGON,
        _choice("street"),
    ],
    [
        *_chosen([_mask("m1", slice(10, 30))], "truck"),
        _mask("m2", slice(51, 69)),
        _keypoint("k3", "nose", 80, 24),
        _choice("street"),
    ],
    [_keypoint("k2", "nose", 52, 50), _keypoint("a6", "eye", 60, 80), _choice("indoor")],
    [
        *_chosen([_square("p2", 10, 10)], "sedan"),
        *_chosen([_square("p3", 54, 10)], "sedan"),
        *_chosen([_square("a5", 60, 60)], "truck"),
        _keypoint("k1", "nose", 20, 20),
        _choice("street"),
    ],
]


def known_edits_project(client: LabelStudioClient) -> Project:
    """The project above, made through the client: tasks, predictions of two versions, annotations."""
    project = client.create_project("quality known edits", CONFIG)
    ids = client.import_tasks(project.id, [{"data": {"image": f"s3://bucket/img{i}.jpg"}} for i in range(6)])
    predictions = [
        {"task": t, "result": r, "score": 0.5, "model_version": "v1"}
        for t, r in zip(ids, PREDICTED, strict=True)
    ]
    predictions.append(
        {"task": ids[0], "result": _box("x", "person", (0, 0, 99, 99), 0.99), "model_version": "old"}
    )
    if client.import_predictions(project.id, predictions) != 7:
        raise RuntimeError("Label Studio did not store the 7 predictions")
    for task_id, result in zip(ids, ANNOTATED, strict=False):
        client.create_annotation(task_id, result)
    client.create_annotation(ids[4], _box("z", "person", (0, 0, 5, 5)), was_cancelled=True)
    return project
