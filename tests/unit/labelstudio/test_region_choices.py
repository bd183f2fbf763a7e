"""Per-region Choices: a detection's classes as a ``choices`` result on its own region."""

from __future__ import annotations

import numpy as np
import pytest

from prelabel.convert.masks import mask_to_coco
from prelabel.core.images import ImageInfo
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.predictions import build_batch, build_prediction
from prelabel.records import (
    Choice,
    Detections,
    Keypoint,
    PredictionRecord,
    detections_from_raw,
    detections_to_raw,
)

IMAGE = ImageInfo("street.jpg", "ab" * 32, 200, 100, 1, 200, 100, "JPEG", "RGB")


def _config(tools: str, choice: str = "") -> str:
    return f"""<View><Image name="image" value="$image"/>{tools}
    <Choices name="state" toName="image" perRegion="true" showInline="true"{choice}>
      <Choice value="parked"/><Choice value="moving"/><Choice value="parked"/>
    </Choices>
    <Choices name="scene" toName="image"><Choice value="day"/></Choices></View>"""


RECT = '<RectangleLabels name="label" toName="image"><Label value="car"/></RectangleLabels>'
BRUSH = '<BrushLabels name="mask" toName="image"><Label value="car"/></BrushLabels>'
POLY = '<PolygonLabels name="polygon" toName="image"><Label value="car"/></PolygonLabels>'
POINTS = '<KeyPointLabels name="kp" toName="image"><Label value="nose"/></KeyPointLabels>'
STATES = (Choice("stopped", 0.7), Choice("moving", 0.6), Choice("flying", 0.9))


def _mask() -> dict:
    mask = np.zeros((100, 200), np.uint8)
    mask[10:30, 20:60] = 1
    return mask_to_coco(mask)


@pytest.mark.parametrize(
    ("tools", "region_id", "region_type"),
    [
        (RECT + BRUSH + POLY, "det0", "rectanglelabels"),  # the rectangle first
        (BRUSH + POLY, "det0-mask", "brushlabels"),  # no boxes: the brush
        (POLY, "det0-poly0", "polygonlabels"),  # polygons only: the first ring
    ],
)
def test_choices_share_the_regions_id_and_geometry(tools: str, region_id: str, region_type: str) -> None:
    config = parse_label_config(_config(tools))
    det = Detections(
        xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("car",), masks=(_mask(),), region_choices=(STATES,)
    )
    prediction, report = build_prediction(
        PredictionRecord(IMAGE, det), config, LabelMap({"stopped": "parked"})
    )
    by_key = {(r["id"], r["type"]): r for r in prediction["result"]}
    region, choice = by_key[(region_id, region_type)], by_key[(region_id, "choices")]
    assert [r["type"] for r in prediction["result"]].count("choices") == 1  # one region, one result
    assert choice["from_name"] == "state" and choice["to_name"] == "image"
    geometry = {k: v for k, v in region["value"].items() if k != region_type}
    assert choice["value"] == {**geometry, "choices": ["parked"]}  # single: the best the control has
    assert choice["score"] == 0.7
    assert {k: choice[k] for k in ("original_width", "original_height", "image_rotation")} == {
        k: region[k] for k in ("original_width", "original_height", "image_rotation")
    }
    assert report.unmatched_labels == {"flying (region choice)": 1}  # not in the control: counted
    assert report.region_choices == 1 and '<Choices name="state">' in report.filled


def test_multiple_choices_are_all_in_config_order_once() -> None:
    config = parse_label_config(_config(RECT, ' choice="multiple"'))
    det = Detections(
        xyxy=[[20, 10, 60, 30], [100, 10, 150, 90]],
        scores=[0.8, 0.6],
        labels=("car", "car"),
        region_choices=(STATES, ()),
    )
    prediction, report = build_prediction(
        PredictionRecord(IMAGE, det), config, LabelMap({"stopped": "parked"})
    )
    (choice,) = [r for r in prediction["result"] if r["type"] == "choices"]  # the second car has none
    assert choice["id"] == "det0" and choice["value"]["choices"] == ["parked", "moving"]
    assert choice["score"] == 0.7 and report.region_choices == 1


def test_no_region_no_control_or_nothing_matched_posts_nothing() -> None:
    points = Detections(
        xyxy=[[20, 10, 60, 30]],
        scores=[0.8],
        labels=("person",),
        keypoints=((Keypoint("nose", 30, 20),),),
        region_choices=(STATES,),
    )
    prediction, report = build_prediction(
        PredictionRecord(IMAGE, points), parse_label_config(_config(POINTS))
    )
    assert [r["type"] for r in prediction["result"]] == ["keypointlabels"]  # keypoints alone: nowhere to go
    assert report.dropped == {"region choices: no box, mask or polygon to attach to": 1}
    unknown = Detections(
        xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("car",), region_choices=((Choice("flying", 0.9),),)
    )
    prediction, report = build_prediction(PredictionRecord(IMAGE, unknown), parse_label_config(_config(RECT)))
    assert [r["type"] for r in prediction["result"]] == ["rectanglelabels"]
    assert report.unmatched_labels == {"flying (region choice)": 1} and report.region_choices == 0
    no_control = parse_label_config(f'<View><Image name="image" value="$image"/>{RECT}</View>')
    prediction, report = build_prediction(PredictionRecord(IMAGE, det_with(STATES)), no_control)
    assert [r["type"] for r in prediction["result"]] == ["rectanglelabels"]
    assert report.unmatched_labels == {f"{c.label} (region choice)": 1 for c in STATES}
    lost = Detections(xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("truck",), region_choices=(STATES,))
    prediction, report = build_prediction(PredictionRecord(IMAGE, lost), parse_label_config(_config(RECT)))
    assert prediction["result"] == [] and report.unmatched_labels == {"truck": 1}
    assert report.dropped == {"region choices: their detection posted no region": 1}  # said, not lost


def det_with(choices: tuple[Choice, ...]) -> Detections:
    return Detections(xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("car",), region_choices=(choices,))


def test_a_filled_region_choices_control_is_not_reported_unfilled() -> None:
    config = parse_label_config(_config(RECT))
    records = [
        PredictionRecord(IMAGE, det_with(STATES), task_id=1),
        PredictionRecord(IMAGE, det_with(()), task_id=2),
    ]
    batch = build_batch(records, config, LabelMap({"stopped": "parked"}))
    assert batch.unfilled == {'<Choices name="scene">'} and batch.region_choices == 1
    assert build_batch(records[1:], config).unfilled == {'<Choices name="scene">', '<Choices name="state">'}


def test_region_choices_travel_with_their_detections() -> None:
    det = Detections(
        xyxy=[[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]],
        scores=[0.9, 0.2, 0.5],
        labels=("a", "b", "c"),
        region_choices=(STATES, (), (Choice("x"),)),
    )
    kept = det.with_min_score(0.4)
    assert kept.region_choices == (STATES, (Choice("x", 1.0),))
    assert det[[2, 0]].region_choices == ((Choice("x"),), STATES)
    raw = detections_to_raw(det)
    assert "choices" not in raw["objects"][1] and raw["objects"][2]["choices"] == [
        {"label": "x", "score": 1.0}
    ]
    assert detections_from_raw(raw).region_choices == det.region_choices
    assert Detections(xyxy=[[0, 0, 1, 1]], scores=[1], labels=("a",)).region_choices == ((),)
    with pytest.raises(ValueError, match="region_choices must have 1 entries"):
        Detections(xyxy=[[0, 0, 1, 1]], scores=[1], labels=("a",), region_choices=((), ()))
