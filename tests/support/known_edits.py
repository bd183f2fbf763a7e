"""A synthetic project with known edits, for the quality report's tests (see tests/test_quality.py).

Images are 100x100 pixels, so Label Studio's percentages are pixels. The model version
``v1`` predicted six tasks; people then (through the API, as the labeling UI would save them,
region ids copied from the prediction):

- task 1: car box b1 kept (text "HELO WORLD" corrected to "HELLO WORLD": 1 edit), car box b2
  moved away (IoU 0), person box b3 deleted, person box b4 kept (text "AB" kept), person box a4
  added, a polygon kept (not measured); choice kept;
- task 2: car mask m1 kept, car mask m2 eroded by one pixel all round (IoU 18²/20² = 0.81);
  choice kept;
- task 3: choice changed street -> indoor; task 4: choice kept;
- task 5: only a cancelled annotation (wildly different); task 6: not annotated;
- version ``old`` predicted task 1 too (must not count).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prelabel.convert.masks import mask_to_brush
from prelabel.labelstudio.client import LabelStudioClient, Project

__all__ = ["AP_CAR_BOX", "AP_CAR_MASK", "AP_PERSON_BOX", "known_edits_project"]

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
  <BrushLabels name="mask" toName="image"><Label value="car"/></BrushLabels>
  <PolygonLabels name="polygon" toName="image"><Label value="car"/></PolygonLabels>
  <Choices name="scene" toName="image"><Choice value="street"/><Choice value="indoor"/></Choices>
  <TextArea name="transcription" toName="image" perRegion="true"/>
</View>"""
SIDE = 100
AP_CAR_BOX = 51 / 101  # TP (0.9) then FP (0.8) of 2: precision 1 up to recall 0.5, then nothing
AP_PERSON_BOX = 0.5 * 51 / 101  # FP (0.7) then TP (0.6) of 2: precision 0.5 up to recall 0.5
AP_CAR_MASK = (7 * 1.0 + 3 * 51 / 101) / 10  # IoU 0.81 matches at thresholds .50-.80, not .85-.95


def _result(
    rid: str, kind: str, name: str, value: dict[str, Any], score: float | None = None
) -> dict[str, Any]:
    result = {"id": rid, "type": kind, "from_name": name, "to_name": "image", "original_width": SIDE,
              "original_height": SIDE, "image_rotation": 0, "value": value}  # fmt: skip
    return result | ({"score": score} if score is not None else {})


def _box(rid: str, label: str, xyxy: tuple[int, int, int, int], score: float | None = None,
         text: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    x1, y1, x2, y2 = xyxy
    geometry = {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "rotation": 0}
    out = [_result(rid, "rectanglelabels", "label", geometry | {"rectanglelabels": [label]}, score)]
    if text is not None:
        out.append(_result(rid, "textarea", "transcription", geometry | {"text": [text]}, score))
    return out


def _mask(rid: str, rows: slice, score: float | None = None) -> dict[str, Any]:
    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[rows, rows] = 1
    value = {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": ["car"]}
    return _result(rid, "brushlabels", "mask", value, score)


def _choice(choice: str) -> dict[str, Any]:
    return {"id": "scene", "type": "choices", "from_name": "scene", "to_name": "image",
            "value": {"choices": [choice]}}  # fmt: skip


POLYGON = _result(
    "p1", "polygonlabels", "polygon", {"points": [[1, 1], [9, 1], [5, 9]], "polygonlabels": ["car"]}
)
PREDICTED = [
    [*_box("b1", "car", (10, 10, 30, 30), 0.9, "HELO WORLD"), *_box("b2", "car", (50, 10, 70, 30), 0.8),
     *_box("b3", "person", (10, 50, 30, 70), 0.7), *_box("b4", "person", (70, 70, 90, 90), 0.6, "AB"),
     POLYGON, _choice("street")],
    [_mask("m1", slice(10, 30), 0.9), _mask("m2", slice(50, 70), 0.8), _choice("street")],
    [_choice("street")],
    [_choice("street")],
    [*_box("c1", "car", (10, 10, 30, 30), 0.9), _choice("street")],
    [*_box("d1", "car", (10, 10, 30, 30), 0.9), _choice("street")],
]  # fmt: skip
ANNOTATED = [
    [*_box("b1", "car", (10, 10, 30, 30), text="HELLO WORLD"), *_box("b2", "car", (60, 40, 80, 60)),
     *_box("b4", "person", (70, 70, 90, 90), text="AB"), *_box("a4", "person", (50, 50, 70, 90)),
     POLYGON, _choice("street")],
    [_mask("m1", slice(10, 30)), _mask("m2", slice(51, 69)), _choice("street")],
    [_choice("indoor")],
    [_choice("street")],
]  # fmt: skip


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
