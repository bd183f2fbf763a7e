"""A pull survives every annotation: each result on its own, rotated boxes exact, the rest counted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from prelabel.convert.masks import mask_to_brush
from prelabel.core.failures import Stage
from prelabel.labelstudio.client import Task
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.pullback import extract_regions, to_coco

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="car"/><Label value="person"/>
  </RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="car"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="person"/></KeyPointLabels>
</View>"""

W, H = 200, 100
_COMMON = {"to_name": "image", "original_width": W, "original_height": H, "image_rotation": 0}


def _box(
    rid: str, x: float, y: float, w: float, h: float, rotation: float, label: str = "car"
) -> dict[str, Any]:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", **_COMMON, "value": value}


PLAIN = _box("plain", 10, 10, 20, 10, 0)  # pixels: x 20..60, y 10..20
ROTATED = _box("rotated", 10, 10, 20, 10, 90, "person")  # a quarter turn about (20, 10)
_TRIANGLE = {"points": [[10, 10], [50, 10], [30, 60]], "closed": True, "polygonlabels": ["car"]}
POLYGON = {"id": "poly", "type": "polygonlabels", "from_name": "poly", **_COMMON, "value": _TRIANGLE}
KEYPOINT = {
    "id": "kp",
    "type": "keypointlabels",
    "from_name": "kp",
    **_COMMON,
    "value": {"x": 50, "y": 50, "width": 1, "keypointlabels": ["person"]},
}


def _task(results: list[dict[str, Any]], task_id: int = 7) -> Task:
    annotation = {"id": 70, "result": results, "completed_by": 1, "updated_at": "2024-01-01T00:00:00Z"}
    return Task.from_json(
        {"id": task_id, "data": {"image": "s3://b/street.jpg"}, "annotations": [annotation]}
    )


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        (
            _box("nowidth", 10, 10, 20, 10, 0) | {"value": {"x": 1, "y": 1, "height": 2}},
            "KeyError",
        ),  # no width
        (
            _box("text", 10, 10, 20, 10, 0) | {"value": {"x": "left", "y": 1, "width": 1, "height": 1}},
            "ValueError",
        ),
        (_box("nosize", 10, 10, 20, 10, 0) | {"original_width": 0}, "positive"),  # zero-size image
        (_box("nodims", 10, 10, 20, 10, 0) | {"original_height": None}, "TypeError"),  # no image size
        (_box("novalue", 10, 10, 20, 10, 0) | {"value": None}, "no value"),
        (
            {"id": "b", "type": "brushlabels", **_COMMON, "value": {"format": "png"}},
            "not 'rle'",
        ),  # other format
        ({"id": "b", "type": "brushlabels", **_COMMON, "value": {"format": "rle", "rle": [1, 2]}}, "Error"),
    ],
)
def test_a_malformed_result_is_one_error_row_and_the_rest_is_exported(
    result: dict[str, Any], problem: str
) -> None:
    found = extract_regions([_task([PLAIN, result, ROTATED])], parse_label_config(CONFIG))
    assert [r.annotation_id for r in found.regions] == [70, 70]  # both boxes
    assert len(found.errors) == 1
    row = found.errors[0]
    assert (row.file, row.stage) == ("street.jpg", Stage.PULL)
    assert f"task 7, annotation 70, result {result['id']!r}" in row.error and problem in row.error


def test_unexported_types_are_counted_by_type() -> None:
    empty = mask_to_brush(np.zeros((H, W), np.uint8))
    empty_brush = {
        "id": "e",
        "type": "brushlabels",
        **_COMMON,
        "value": {"format": "rle", "rle": empty, "brushlabels": ["car"]},
    }
    rating = {"id": "r", "type": "rating", "from_name": "x", "to_name": "image", "value": {"rating": 3}}
    ellipse = {"id": "e", "type": "ellipselabels", **_COMMON, "value": {"x": 1, "y": 1, "radiusX": 1}}
    found = extract_regions(
        [_task([POLYGON, KEYPOINT, ellipse, ellipse | {"id": "e2"}, rating, PLAIN])],
        parse_label_config(CONFIG),
    )
    assert len(found.regions) == 3 and not found.errors  # box, polygon, keypoint
    assert found.not_exported == {"ellipselabels": 2, "rating": 1}
    assert extract_regions([_task([empty_brush])], parse_label_config(CONFIG)).not_exported == {
        "brushlabels (empty)": 1
    }


def test_rotated_box_keeps_corners_angle_and_enclosing_box() -> None:
    config = parse_label_config(CONFIG)
    found = extract_regions([_task([PLAIN, ROTATED])], config)
    plain, rotated = found.regions
    assert plain.xyxy == pytest.approx((20, 10, 60, 20)) and plain.rotation == 0
    assert rotated.rotation == 90
    assert [pytest.approx(c) for c in ((20, 10), (20, 50), (10, 50), (10, 10))] == list(rotated.corners or ())
    assert rotated.xyxy == pytest.approx((10, 10, 20, 50))
    assert rotated.area == pytest.approx(400)  # the box's own area, not its enclosing box's
    coco = to_coco(found.regions, config)
    boxes = {a["attributes"]["rotation"]: a["bbox"] for a in coco["annotations"]}
    assert boxes == {0: pytest.approx([20, 10, 40, 10]), 90: pytest.approx([10, 10, 10, 40])}
