"""Polygons, rotated rectangles, keypoints and choices in Label Studio's result shapes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prelabel.convert.contours import mask_to_polygons
from prelabel.convert.geometry import corners_to_percent, percent_to_corners
from prelabel.convert.masks import mask_to_coco
from prelabel.core.images import ImageInfo
from prelabel.display import display_frame
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.predictions import build_batch, build_prediction
from prelabel.records import Choice, Detections, Keypoint, PredictionRecord

IMAGE = ImageInfo("street.jpg", "ab" * 32, 200, 100, 1, 200, 100, "JPEG", "RGB")
ALL_XML = """<View><Image name="image" value="$image"/>
    <RectangleLabels name="label" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
    <BrushLabels name="mask" toName="image"><Label value="car"/></BrushLabels>
    <PolygonLabels name="polygon" toName="image"><Label value="car"/><Label value="text"/></PolygonLabels>
    <KeyPointLabels name="keypoints" toName="image">
      <Label value="nose"/><Label value="left_eye"/>
    </KeyPointLabels>
    <Choices name="choice" toName="image"><Choice value="day"/><Choice value="night"/></Choices>
    <TextArea name="transcription" toName="image" perRegion="true"/></View>"""
ALL = parse_label_config(ALL_XML)


def _blob_with_hole() -> np.ndarray:
    mask = np.zeros((100, 200), np.uint8)
    mask[10:30, 20:60] = 1
    mask[15:20, 30:40] = 0  # a hole: Label Studio polygons cannot show it
    mask[60, 150] = 1  # a one-pixel part: under 3 points
    return mask


def _of(prediction: dict, kind: str) -> list[dict]:
    return [r for r in prediction["result"] if r["type"] == kind]


def test_polygon_from_a_mask_with_a_hole_and_a_speck() -> None:
    det = Detections(
        xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("car",), masks=(mask_to_coco(_blob_with_hole()),)
    )
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), ALL)
    (polygon,) = _of(prediction, "polygonlabels")
    assert polygon["id"] == "det0-poly0" and polygon["from_name"] == "polygon"
    assert polygon["value"]["polygonlabels"] == ["car"] and polygon["value"]["closed"] is True
    # pixel centres of the block's corner pixels, in percent of 200 x 100
    assert polygon["value"]["points"] == [[10.25, 10.5], [10.25, 29.5], [29.75, 29.5], [29.75, 10.5]]
    assert report.dropped == {"polygon: hole dropped": 1, "polygon: part under 3 points dropped": 1}
    assert len(_of(prediction, "brushlabels")) == 1 and report.regions == 1


def test_two_parts_are_two_regions_largest_first() -> None:
    mask = np.zeros((100, 200), np.uint8)
    mask[0:10, 0:10] = 1
    mask[50:90, 100:180] = 1
    outline = mask_to_polygons(mask, tolerance=1.0)
    assert [ring.min(axis=0).tolist() for ring in outline.polygons] == [[100.5, 50.5], [0.5, 0.5]]
    assert not outline.dropped
    with pytest.raises(ValueError, match="tolerance"):
        mask_to_polygons(mask, tolerance=-1)


def test_each_mask_is_decoded_once_for_brush_and_polygon(monkeypatch: pytest.MonkeyPatch) -> None:
    from prelabel.convert import masks as masks_module

    decodes: list[object] = []
    real_decode = masks_module.coco_mask.decode
    monkeypatch.setattr(masks_module.coco_mask, "decode", lambda rle: decodes.append(rle) or real_decode(rle))
    det = Detections(
        xyxy=[[20, 10, 60, 30]] * 2,
        scores=[0.9] * 2,
        labels=("car",) * 2,
        masks=(mask_to_coco(_blob_with_hole()),) * 2,
    )
    prediction, _ = build_prediction(PredictionRecord(IMAGE, det), ALL)
    assert len(_of(prediction, "brushlabels")) == 2 and len(_of(prediction, "polygonlabels")) == 2
    assert len(decodes) == 2


def test_ocr_quad_becomes_a_rotated_rectangle_with_its_text_and_polygon() -> None:
    value = {"x": 20.0, "y": 10.0, "width": 25.0, "height": 15.0, "rotation": 30.0}
    quad = percent_to_corners(value, 200, 100)
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    det = Detections(
        xyxy=[[min(xs), min(ys), max(xs), max(ys)]],
        scores=[0.7],
        labels=("text",),
        texts=("STOP",),
        polygons=(quad,),
    )
    config = parse_label_config(
        """<View><Image name="image" value="$image"/>
        <RectangleLabels name="label" toName="image"><Label value="text"/></RectangleLabels>
        <PolygonLabels name="polygon" toName="image"><Label value="text"/></PolygonLabels>
        <TextArea name="transcription" toName="image" perRegion="true"/></View>"""
    )
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), config)
    (rect,) = _of(prediction, "rectanglelabels")
    (text,) = _of(prediction, "textarea")
    assert rect["id"] == text["id"] == "det0"
    got = {k: v for k, v in rect["value"].items() if k != "rectanglelabels"}
    assert got == pytest.approx(value, abs=1e-4)
    assert {k: v for k, v in text["value"].items() if k != "text"} == got and text["value"]["text"] == [
        "STOP"
    ]
    (polygon,) = _of(prediction, "polygonlabels")  # the quad itself, as given
    assert np.allclose(polygon["value"]["points"], [[x / 2, y] for x, y in quad])
    assert report.regions == 1 and not report.dropped


@settings(deadline=None, max_examples=200)
@given(
    x=st.floats(-50, 150),
    y=st.floats(-50, 150),
    w=st.floats(0.01, 100),
    h=st.floats(0.01, 100),
    rotation=st.floats(0, 359.99),
    size=st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
)
def test_corners_to_percent_inverts_percent_to_corners(
    x: float, y: float, w: float, h: float, rotation: float, size: tuple[int, int]
) -> None:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation}
    back = corners_to_percent(percent_to_corners(value, *size), *size)
    turn = (back["rotation"] - rotation + 180) % 360 - 180
    assert math.isclose(turn, 0, abs_tol=1e-6)
    assert [back[k] for k in ("x", "y", "width", "height")] == pytest.approx([x, y, w, h], rel=1e-9, abs=1e-9)


def test_keypoints_inside_their_rectangle() -> None:
    points = (Keypoint("nose", 40, 20, 0.9), Keypoint("tail", 41, 21), Keypoint("left_eye", 250, 20, 0.5))
    det = Detections(xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("person",), keypoints=(points,))
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), ALL)
    (point,) = _of(prediction, "keypointlabels")
    assert point == {
        "id": "det0-kp0",
        "type": "keypointlabels",
        "from_name": "keypoints",
        "to_name": "image",
        "original_width": 200,
        "original_height": 100,
        "image_rotation": 0,
        "value": {"x": 20.0, "y": 20.0, "width": 0.5, "keypointlabels": ["nose"]},
        "score": 0.9,
        "parentID": "det0",
    }
    assert _of(prediction, "rectanglelabels")[0]["id"] == "det0"
    assert report.unmatched_labels == {"tail (keypoint)": 1}
    assert report.dropped == {"keypoint: outside image": 1}


@pytest.mark.parametrize(
    ("multiple", "expected"),
    [
        (False, ["night"]),  # single choice: the best score only
        (True, ["day", "night"]),  # multiple: every matched label, in the config's order
    ],
)
def test_choices_single_and_multiple(multiple: bool, expected: list[str]) -> None:
    where = ' choice="multiple"' if multiple else ""
    config = parse_label_config(
        f"""<View><Image name="image" value="$image"/>
        <Choices name="choice" toName="image"{where}>
          <Choice value="day"/><Choice value="night"/>
        </Choices></View>"""
    )
    det = Detections(choices=(Choice("sunny", 0.3), Choice("dusk", 0.95), Choice("night", 0.8)))
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), config, LabelMap({"sunny": "day"}))
    assert prediction["result"] == [
        {
            "id": "choice",
            "type": "choices",
            "from_name": "choice",
            "to_name": "image",
            "value": {"choices": expected},
            "score": 0.8,
        }
    ]
    assert report.unmatched_labels == {"dusk (choice)": 1}
    assert config.controls[0].multiple is multiple


def test_tags_the_model_never_fills_are_named_once_per_batch() -> None:
    boxes_only = Detections(xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("car",))
    records = [PredictionRecord(IMAGE, boxes_only, task_id=n) for n in range(3)]
    batch = build_batch(records, ALL)
    assert not batch.errors and len(batch.predictions) == 3
    assert batch.unfilled == {
        '<BrushLabels name="mask">',
        '<PolygonLabels name="polygon">',
        '<KeyPointLabels name="keypoints">',
        '<Choices name="choice">',
        '<TextArea name="transcription">',
    }
    # told not to post masks (--no-masks): the brush is not "unfilled", it was left out on purpose
    assert '<BrushLabels name="mask">' not in build_batch(records, ALL, masks=False).unfilled
    masked = Detections(xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("car",), masks=(None,))
    no_boxes = build_batch([PredictionRecord(IMAGE, masked, task_id=1)], ALL, boxes=False).unfilled
    assert not {'<RectangleLabels name="label">', '<TextArea name="transcription">'} & no_boxes


def test_points_follow_the_display_frame_rule() -> None:
    turned = ImageInfo("turned.jpg", "cd" * 32, 200, 100, 6, 100, 200, "JPEG", "RGB")  # stored 100x200
    stored_mask = np.zeros((200, 100), np.uint8)
    det = Detections(xyxy=[[10, 20, 30, 60]], scores=[1], labels=("car",), masks=(mask_to_coco(stored_mask),))
    frame = display_frame(det, turned)  # rule 2: the model saw the stored pixels
    assert frame.points([[10, 20], [30, 60]]).tolist() == [[180.0, 10.0], [140.0, 30.0]]
    assert frame.xyxy.tolist() == [[140.0, 10.0, 180.0, 30.0]]
    halved = Detections(
        xyxy=[[10, 20, 30, 40]],
        scores=[1],
        labels=("car",),
        masks=(mask_to_coco(np.zeros((50, 100), np.uint8)),),
    )
    assert display_frame(halved, IMAGE).points([[10, 20]]).tolist() == [[20.0, 40.0]]  # rule 3


@pytest.mark.parametrize(
    ("polygon", "rectangle"),
    [
        # a raw file's polygon off the image (its box on it): clipped onto the corner, no area
        (((300, 300), (400, 300), (400, 400)), {"x": 0.0, "y": 0.0, "width": 5.0, "height": 10.0}),
        # a quadrilateral on one line: no rotated rectangle of width 0, the enclosing box instead
        (((0, 0), (10, 10), (20, 20), (50, 50)), {"x": 0.0, "y": 0.0, "width": 5.0, "height": 10.0}),
    ],
)
def test_a_polygon_without_area_on_the_image_is_dropped(
    polygon: tuple[tuple[float, float], ...], rectangle: dict[str, float]
) -> None:
    det = Detections(xyxy=[[0, 0, 10, 10]], scores=[0.5], labels=("car",), polygons=(polygon,))
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), ALL)
    assert _of(prediction, "polygonlabels") == []
    (rect,) = _of(prediction, "rectanglelabels")
    assert rect["value"] == {**rectangle, "rotation": 0, "rectanglelabels": ["car"]}
    assert report.dropped == {"polygon: no area on the image": 1} and report.regions == 1


def test_a_choice_the_config_lists_twice_is_chosen_once() -> None:
    config = parse_label_config(
        """<View><Image name="image" value="$image"/>
        <Choices name="when" toName="image" choice="multiple">
          <Choice value="day"/><Choice value="day"/><Choice value="night"/></Choices></View>"""
    )
    det = Detections(choices=(Choice("day", 0.9), Choice("night", 0.2), Choice("day", 0.3)))
    prediction, _ = build_prediction(PredictionRecord(IMAGE, det), config)
    assert [r["value"] for r in prediction["result"]] == [{"choices": ["day", "night"]}]


def test_a_nan_score_and_an_empty_mask_are_dropped_and_counted_not_unmatched() -> None:
    """A model's NaN score would fail the whole chunk's POST; an empty mask is no brush."""
    mask = np.zeros((100, 200), np.uint8)
    detections = Detections(
        xyxy=[[10, 10, 50, 50], [60, 10, 90, 50]],
        scores=[float("nan"), 0.8],
        labels=["car", "car"],
        masks=[None, mask_to_coco(mask)],
    )
    brush_only = parse_label_config(
        '<View><Image name="image" value="$image"/>'
        '<BrushLabels name="mask" toName="image"><Label value="car"/></BrushLabels></View>'
    )
    prediction, report = build_prediction(PredictionRecord(IMAGE, detections), brush_only)
    assert prediction["result"] == [] and prediction["score"] is None
    assert report.dropped == {"score not finite": 1, "mask: empty": 1}
    assert not report.unmatched_labels  # car is a label of the project: nothing to map


def test_a_polygon_leaving_the_image_is_cut_along_its_edges() -> None:
    """Clipping each vertex made a far corner's triangle a smaller triangle (half its area on
    the image lost); cut along the bottom edge it keeps the part that is on the image."""
    det = Detections(
        xyxy=[[10, 10, 190, 100]],
        scores=[0.5],
        labels=("car",),
        polygons=(((10, 10), (190, 10), (100, 1e6)),),
    )
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), ALL)
    (polygon,) = _of(prediction, "polygonlabels")
    expected = [[5.0, 10.0], [95.0, 10.0], [94.995, 100.0], [5.005, 100.0]]  # percent of 200 x 100
    assert np.allclose(polygon["value"]["points"], expected, atol=1e-3) and not report.dropped


@pytest.mark.parametrize(
    ("quad", "value"),
    [
        # a quad with coordinates far off the image: the image's part of it, not a rectangle
        # 5e14 % wide (the rotated rectangle was not clipped as its box was)
        (
            ((10, 10), (1e15, 10), (1e15, 1e15), (10, 1e15)),
            {"x": 5.0, "y": 10.0, "width": 95.0, "height": 90.0},
        ),
        # a tilted quad across the top-left corner: still read from its top-left corner
        # (cut to the image, its first point was the cut on the top edge: a quarter turn off)
        (
            ((-2, 0), (50, -3), (52, 20), (0, 23)),
            {"x": -0.661, "y": 0.076, "width": 26.04, "height": 22.96, "rotation": 356.698},
        ),
    ],
)
def test_an_ocr_quad_off_the_image_gives_the_rectangle_of_its_part_on_it(
    quad: tuple[tuple[float, float], ...], value: dict[str, float]
) -> None:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    det = Detections(
        xyxy=[[min(xs), min(ys), max(xs), max(ys)]], scores=[0.5], labels=("car",), polygons=(quad,)
    )
    prediction, _ = build_prediction(PredictionRecord(IMAGE, det), ALL)
    (rect,) = _of(prediction, "rectanglelabels")
    got = rect["value"]
    assert {k: got[k] for k in value} == pytest.approx(value, abs=1e-2)
    if "rotation" not in value:
        assert got["rotation"] % 90 == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize(
    "polygon",
    [
        ((10, 10), (float("nan"), 10), (20, 30), (5, 5)),  # a quad: ValueError out of the batch
        ((10, 10), (float("nan"), 10), (20, 30)),  # a NaN posted: the chunk's POST refused
        ((10, 10), (float("inf"), 10), (20, 30)),  # clipped onto the edge: a made-up triangle
    ],
)
def test_a_polygon_with_a_point_not_finite_is_dropped_and_counted(
    polygon: tuple[tuple[float, float], ...],
) -> None:
    det = Detections(xyxy=[[10, 10, 50, 50]], scores=[0.5], labels=("car",), polygons=(polygon,))
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), ALL)
    assert [r["type"] for r in prediction["result"]] == ["rectanglelabels"]
    assert prediction["result"][0]["value"]["rotation"] == 0  # the box as given
    assert report.dropped == {"polygon: point not finite": 1} and report.regions == 1


def test_keypoints_and_choices_scoring_nan_are_dropped_and_counted() -> None:
    """A model's NaN score was posted as is: JSON Label Studio refuses, for the whole chunk."""
    points = (Keypoint("nose", 40, 20, float("nan")), Keypoint("left_eye", 42, 20, 0.7))
    det = Detections(
        xyxy=[[20, 10, 60, 30]],
        scores=[0.8],
        labels=("person",),
        keypoints=(points,),
        choices=(Choice("day", float("nan")), Choice("night", 0.2)),
    )
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), ALL)
    json.dumps(prediction, allow_nan=False)
    assert [r["value"]["keypointlabels"] for r in _of(prediction, "keypointlabels")] == [["left_eye"]]
    assert [r["value"]["choices"] for r in _of(prediction, "choices")] == [["night"]]
    assert report.dropped == {"keypoint: score not finite": 1, "choice: score not finite": 1}


@pytest.mark.parametrize(
    ("textareas", "filled"),
    [
        # a task-wide notes box first: the text went there, as a region's text
        (
            '<TextArea name="notes" toName="image"/><TextArea name="words" toName="image" perRegion="true"/>',
            "words",
        ),
        ('<TextArea name="notes" toName="image"/>', None),  # only the annotator's notes: no text posted
    ],
)
def test_a_detections_text_goes_only_to_a_per_region_textarea(textareas: str, filled: str | None) -> None:
    config = parse_label_config(
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
        f'<Label value="text"/></RectangleLabels>{textareas}</View>'
    )
    det = Detections(xyxy=[[20, 10, 60, 30]], scores=[0.8], labels=("text",), texts=("STOP",))
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), config)
    assert [r["from_name"] for r in _of(prediction, "textarea")] == ([filled] if filled else [])
    assert len(_of(prediction, "rectanglelabels")) == 1 and report.regions == 1
    # the notes box is never filled, so "the model filled none of it" would be said every run
    assert build_batch([PredictionRecord(IMAGE, det, task_id=1)], config).unfilled == set()


def test_keypoints_and_choices_without_a_control_are_counted_unmatched() -> None:
    """A config without KeyPointLabels, and with its Choices on another object: the model's
    keypoints and choices went nowhere and no count said so."""
    config = parse_label_config(
        '<View><Image name="image" value="$image"/><Text name="caption" value="$caption"/>'
        '<RectangleLabels name="label" toName="image"><Label value="person"/></RectangleLabels>'
        '<Choices name="when" toName="caption"><Choice value="day"/></Choices></View>'
    )
    det = Detections(
        xyxy=[[20, 10, 60, 30]],
        scores=[0.8],
        labels=("person",),
        keypoints=((Keypoint("nose", 40, 20), Keypoint("left_eye", 42, 20)),),
        choices=(Choice("day", 0.9),),
    )
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), config)
    assert [r["type"] for r in prediction["result"]] == ["rectanglelabels"]
    assert report.unmatched_labels == {"nose (keypoint)": 1, "left_eye (keypoint)": 1, "day (choice)": 1}


coordinate = st.floats(-1.0, 2.0)  # fractions of the image side: on it, and off it either way


@st.composite
def _records(draw: st.DrawFn) -> PredictionRecord:
    width, height = draw(st.integers(1, 400)), draw(st.integers(1, 400))

    def point() -> tuple[float, float]:
        return draw(coordinate) * width, draw(coordinate) * height

    n = draw(st.integers(0, 4))
    boxes = [[*point(), *point()] for _ in range(n)]
    polygons = [
        draw(st.none() | st.integers(3, 6).map(lambda k: tuple(point() for _ in range(k)))) for _ in range(n)
    ]
    keypoints = [
        tuple(Keypoint(draw(st.sampled_from(["nose", "left_eye"])), *point()) for _ in range(2))
        for _ in range(n)
    ]
    labels = [draw(st.sampled_from(["car", "person"])) for _ in range(n)]
    masks = []
    for _ in range(n):  # none, or a block of pixels (empty when its corners cross)
        mask = np.zeros((height, width), np.uint8)
        x1, x2, y1, y2 = (draw(st.integers(0, side)) for side in (width, width, height, height))
        mask[y1:y2, x1:x2] = 1
        masks.append(draw(st.sampled_from([None, mask_to_coco(mask)])))
    det = Detections(
        xyxy=boxes,
        scores=[0.5] * n,
        labels=labels,
        masks=masks,
        texts=["text"] * n,
        polygons=polygons,
        keypoints=keypoints,
        choices=(Choice("day", 0.7),),
    )
    return PredictionRecord(
        ImageInfo("x.jpg", "ab" * 32, width, height, 1, width, height, "JPEG", "RGB"), det
    )


@settings(deadline=None, max_examples=150)
@given(record=_records())
def test_label_studios_own_validator_accepts_every_prediction(record: PredictionRecord) -> None:
    """What a server with prediction validation on (``fflag_feat_utc_210_prediction_validation``)
    checks: the SDK's ``LabelInterface.validate_prediction``. It refused a point on the right
    edge (100.00000000000001 %) and a rotated rectangle longer than the image side, and with
    either the whole chunk's POST."""
    from label_studio_sdk.label_interface import LabelInterface

    prediction, _ = build_prediction(record, ALL)
    json.dumps(prediction, allow_nan=False)
    assert LabelInterface(ALL_XML).validate_prediction(prediction, return_errors=True) == []


def test_a_rotated_rectangle_longer_than_the_image_side_posts_its_box() -> None:
    """A text line along the diagonal: its rotated width is 107 % of the image width, which
    Label Studio's validator refuses (for the whole chunk)."""
    quad = ((0, 0), (200, 90), (195, 100), (-5, 10))
    det = Detections(xyxy=[[0, 0, 200, 100]], scores=[0.5], labels=("car",), polygons=(quad,))
    prediction, report = build_prediction(PredictionRecord(IMAGE, det), ALL)
    (rect,) = _of(prediction, "rectanglelabels")
    assert rect["value"] == {
        "x": 0.0,
        "y": 0.0,
        "width": 100.0,
        "height": 100.0,
        "rotation": 0,
        "rectanglelabels": ["car"],
    }
    assert report.dropped == {"rectangle: rotated one past Label Studio's 100 %, its box posted": 1}
