"""The quality report on a synthetic project with known edits (tests/support/known_edits.py):
every number known in advance."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prelabel.convert.masks import polygon_to_coco
from prelabel.core.errors import MaskError
from prelabel.labelstudio.client import Task
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.regions import Region
from prelabel.quality import Pairs, QualitySummary, measure_quality, write_quality
from prelabel.quality.matching import Fate, Match, fate, greedy_match, iou_matrix
from prelabel.quality.metrics import label_scores, region_choice_scores, text_score
from prelabel.quality.pairs import TaskPair, pair_tasks
from prelabel.quality.report import LABEL_COLUMNS
from tests.support.known_edits import (
    CONFIG,
)


def _numbers(summary: QualitySummary) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["type"], row["label"]): row for row in summary.label_rows()}


def _region(rid: str, label: str, xyxy: tuple[float, float, float, float], text: str | None = None) -> Region:
    x1, y1, x2, y2 = xyxy
    corners = ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
    return Region(
        task_id=1,
        image="a.jpg",
        annotation_id=1,
        annotator=None,
        kind="rectanglelabels",
        label=label,
        xyxy=xyxy,
        area=(x2 - x1) * (y2 - y1),
        width=100,
        height=100,
        mask=None,
        lead_time=None,
        created_at="",
        updated_at="",
        from_prediction_unchanged=False,
        corners=corners,
        region_id=rid,
        attributes={"transcription": [text]} if text is not None else {},
    )


def _shape(rid: str, kind: str, label: str, points: list[tuple[float, float]], side: int = 100) -> Region:
    """A polygon (its vertices) or a keypoint (one point) on a ``side`` x ``side`` image, pixels."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return Region(
        task_id=1,
        image="a.jpg",
        annotation_id=1,
        annotator=None,
        kind=kind,
        label=label,
        xyxy=(min(xs), min(ys), max(xs), max(ys)),
        area=0.0,
        width=side,
        height=side,
        mask=None,
        lead_time=None,
        created_at="",
        updated_at="",
        from_prediction_unchanged=False,
        region_id=rid,
        points=tuple(points),
    )


def _square(rid: str, x: float, y: float, side: float = 20) -> Region:
    return _shape(rid, "polygonlabels", "car", [(x, y), (x + side, y), (x + side, y + side), (x, y + side)])


def _point(rid: str, x: float, y: float, label: str = "nose", side: int = 100) -> Region:
    return _shape(rid, "keypointlabels", label, [(x, y)], side)


@pytest.mark.parametrize(
    ("ious", "scores", "expected"),
    [
        (np.zeros((0, 2)), [], []),  # no prediction
        (np.zeros((2, 0)), [0.9, 0.8], []),  # nothing annotated
        (np.array([[0.49]]), [0.9], []),  # just below the threshold
        (np.array([[0.5]]), [0.9], [Match(0, 0, 0.5)]),  # at the threshold
        (np.array([[0.6], [0.9]]), [0.9, 0.5], [Match(0, 0, 0.6)]),  # score order wins, not IoU
        (np.array([[0.8, 0.7], [0.9, 0.0]]), [0.9, 0.8], [Match(0, 0, 0.8)]),  # one-to-one: taken is taken
        (np.array([[0.8, 0.7], [0.9, 0.6]]), [0.9, 0.8], [Match(0, 0, 0.8), Match(1, 1, 0.6)]),
    ],
)
def test_greedy_match(ious: np.ndarray[Any, Any], scores: list[float], expected: list[Match]) -> None:
    assert greedy_match(ious, scores, 0.5) == expected


def test_iou_of_nothing_and_of_boxes() -> None:
    box = _region("a", "car", (0, 0, 10, 10))
    assert iou_matrix("rectanglelabels", [], [box]).shape == (0, 1)
    assert iou_matrix("rectanglelabels", [box], []).shape == (1, 0)
    half = _region("b", "car", (5, 0, 15, 10))  # 50 of 150 pixels shared
    assert iou_matrix("rectanglelabels", [box, half], [box]) == pytest.approx(np.array([[1.0], [1 / 3]]))


@pytest.mark.parametrize(
    ("annotated", "expected"),
    [
        (None, Fate.DELETED),
        (_region("a", "car", (10, 10, 30, 30)), Fate.KEPT),
        (_region("a", "car", (10.4, 10, 30.4, 30)), Fate.KEPT),  # the UI's rounding, not an edit
        (_region("a", "car", (11, 10, 31, 30)), Fate.EDITED),  # moved a pixel
        (_region("a", "car", (10, 10, 30, 31)), Fate.EDITED),  # one side moved
        (_region("a", "person", (10, 10, 30, 30)), Fate.EDITED),  # relabelled
    ],
)
def test_fate(annotated: Region | None, expected: Fate) -> None:
    assert fate(_region("a", "car", (10, 10, 30, 30)), annotated) == expected


@pytest.mark.parametrize(
    ("predicted", "annotated", "expected"),
    [
        (_square("a", 10, 10), _square("a", 10, 10), Fate.KEPT),
        (_square("a", 10, 10), _square("a", 10.4, 9.6), Fate.KEPT),  # the UI's rounding
        (_square("a", 10, 10), _square("a", 10, 10, side=21), Fate.EDITED),  # two vertices moved 1 px
        (
            _square("a", 10, 10),
            _shape(
                "a",
                "polygonlabels",
                "car",  # a vertex added on an edge
                [(10, 10), (20, 10), (30, 10), (30, 30), (10, 30)],
            ),
            Fate.EDITED,
        ),
        (_point("k", 20, 20), _point("k", 20.3, 19.8), Fate.KEPT),
        (_point("k", 20, 20), _point("k", 21, 20), Fate.EDITED),
        (_point("k", 20, 20), _point("k", 20, 20, "eye"), Fate.EDITED),  # relabelled
        (_point("k", 20, 20), None, Fate.DELETED),
    ],
)
def test_fate_of_polygons_and_keypoints(predicted: Region, annotated: Region | None, expected: Fate) -> None:
    assert fate(predicted, annotated) == expected


def test_unreadable_shapes_are_error_rows_and_unread_types_are_counted(tmp_path: Path) -> None:
    """A predicted polygon of two points, a keypoint without coordinates and an ellipse: two
    error rows naming the task, annotation (here the prediction) and result, one type counted
    as not measured; the rest of the task is measured."""
    config = parse_label_config(CONFIG)

    def result(rid: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
        control = "polygon" if kind == "polygonlabels" else "keypoints"
        return {
            "id": rid,
            "type": kind,
            "from_name": control,
            "to_name": "image",
            "original_width": 100,
            "original_height": 100,
            "value": value,
        }

    square = [[10, 10], [30, 10], [30, 30], [10, 30]]
    predicted = [
        result("p1", "polygonlabels", {"points": [[10, 10], [30, 30]], "polygonlabels": ["car"]}),
        result("k1", "keypointlabels", {"width": 0.5, "keypointlabels": ["nose"]}),
        result("k2", "keypointlabels", {"x": 50, "y": 50, "keypointlabels": ["nose"]}),
        result("e1", "ellipselabels", {"x": 5, "y": 5, "radiusX": 2, "radiusY": 2, "ellipselabels": ["car"]}),
        result("p2", "polygonlabels", {"points": [[1, 1], [3, 1], ["NaN", 3]], "polygonlabels": ["car"]}),
    ]
    annotated = [
        result("p1", "polygonlabels", {"points": square, "polygonlabels": ["car"]}),
        result("k2", "keypointlabels", {"x": 50, "y": 50, "keypointlabels": ["nose"]}),
    ]
    task = Task(
        7,
        {"image": "s3://bucket/a.jpg"},
        frozenset({"v1"}),
        annotations=[{"id": 3, "result": annotated}],
        predictions=[{"id": 9, "model_version": "v1", "result": predicted}],
    )
    pairs = pair_tasks([task], config, "v1")
    assert [(e.file, e.error) for e in pairs.errors] == [
        (
            "a.jpg",
            "prediction of model version 'v1': a.jpg: task 7, annotation 9, result 'p1' "
            "(polygonlabels): a polygon needs 3 points, got 2",
        ),
        (
            "a.jpg",
            "prediction of model version 'v1': a.jpg: task 7, annotation 9, result 'k1' "
            "(keypointlabels): KeyError: 'x'",
        ),
        (
            "a.jpg",
            "prediction of model version 'v1': a.jpg: task 7, annotation 9, result 'p2' "
            "(polygonlabels): a coordinate is not a finite number",
        ),
    ]
    summary = write_quality(tmp_path, measure_quality(pairs, config, 1), pairs)
    rows = _numbers(summary)
    assert (rows["polygonlabels", "car"]["fn"], rows["polygonlabels", "car"]["added"]) == (1, 1)
    assert (rows["keypointlabels", "nose"]["tp"], rows["keypointlabels", "nose"]["kept"]) == (1, 1)
    assert (summary.errors, summary.not_measured) == (3, {"ellipselabels": 1})
    assert "- Not measured, counted: ellipselabels (1)" in summary.markdown()
    assert "- 3 results could not be read (errors.csv)" in summary.markdown()
    with (tmp_path / "errors.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 3


def test_iou_of_polygons_is_the_iou_of_their_areas() -> None:
    """pycocotools rasterises an integer square of side 20 to exactly 400 pixels, so IoUs of
    squares are their areas': shifted 4 px (16x20 shared), 10 px both ways (10x10), disjoint;
    a triangle inside the square covers its pixels."""
    square = _square("a", 10, 10)
    shifted, diagonal, apart = _square("b", 14, 10), _square("c", 20, 20), _square("d", 60, 60)
    expected = [[1.0], [320 / 480], [100 / 700], [0.0]]
    assert iou_matrix("polygonlabels", [square, shifted, diagonal, apart], [square]) == pytest.approx(
        np.array(expected)
    )
    triangle = _shape("e", "polygonlabels", "car", [(10, 10), (30, 10), (10, 30)])
    (inside,) = iou_matrix("polygonlabels", [triangle], [square])[0]
    assert 0.45 < inside < 0.55  # half the square, up to the rasteriser's edge pixels
    with pytest.raises(MaskError, match=r"a polygon needs \(n >= 3, 2\) points, got shape \(2, 2\)"):
        polygon_to_coco([(0, 0), (5, 5)], 10, 10)
    with pytest.raises(MaskError, match="a polygon's points must be finite numbers"):
        polygon_to_coco([(0, 0), (5, 0), (5, float("nan"))], 10, 10)  # pycocotools: memory without end


def test_keypoints_match_within_the_tolerance_of_the_image_diagonal() -> None:
    """Diagonal of a 100x100 image: 141.4 px; tolerance 0.02 -> 2.83 px. The nearest unmatched
    annotated point of the same label within it, predictions by score; rows carry the distance."""
    annotated = [_point("a", 20, 20), _point("b", 50, 50), _point("c", 80, 80), _point("d", 10, 90, "eye")]
    predicted = [
        _point("a", 20, 22),  # 2 px: a hit
        _point("b", 53, 50),  # 3 px: beyond 2.83, a miss both ways
        _point("x", 80, 81),  # 1 px from c; c's id was not predicted, so c was added, x deleted
        _point("d", 10, 90, "nose"),  # relabelled eye by people (edited): a miss both ways
    ]
    pair = TaskPair(1, "a.jpg", predicted, annotated, {}, {}, {})
    scores, rows, _ = label_scores([pair], 0.5, 0.02)
    nose, eye = scores["keypointlabels", "nose"], scores["keypointlabels", "eye"]
    assert (nose.tp, nose.fp, nose.fn, nose.mean_error_px, nose.mean_iou) == (2, 2, 1, 1.5, None)
    assert (eye.tp, eye.fp, eye.fn, eye.mean_error_px) == (0, 0, 1, None)
    assert {(r.region_id, r.label, r.outcome, r.error_px, r.fate) for r in rows} == {
        ("a", "nose", "tp", 2.0, Fate.EDITED),
        ("b", "nose", "fp", None, Fate.EDITED),
        ("b", "nose", "fn", None, Fate.EDITED),
        ("x", "nose", "tp", 1.0, Fate.DELETED),
        ("d", "nose", "fp", None, Fate.EDITED),
        ("d", "eye", "fn", None, Fate.EDITED),
    }
    assert nose.fates == {Fate.EDITED: 3, Fate.DELETED: 1, Fate.ADDED: 1}
    wider, _, _ = label_scores([pair], 0.5, 0.025)  # 3.54 px: b now hits
    assert (wider["keypointlabels", "nose"].tp, wider["keypointlabels", "nose"].mean_error_px) == (3, 2.0)
    larger = TaskPair(
        1, "a.jpg", [_point("a", 200, 203, side=200)], [_point("a", 200, 200, side=200)], {}, {}, {}
    )
    on_larger, _, _ = label_scores([larger], 0.5, 0.02)  # 3 px: within 5.66 px on a 200 px image
    assert (on_larger["keypointlabels", "nose"].tp, on_larger["keypointlabels", "nose"].mean_error_px) == (
        1,
        3.0,
    )


def test_text_error_rate_needs_reference_characters() -> None:
    config = parse_label_config(CONFIG)

    def pair(predicted: str, annotated: str) -> TaskPair:
        return TaskPair(
            1,
            "a.jpg",
            [_region("a", "car", (0, 0, 9, 9), predicted)],
            [_region("a", "car", (0, 0, 9, 9), annotated)],
            {},
            {},
            {},
        )

    emptied = text_score([pair("AB", "")], config)  # people cleared the text: all edits, no reference
    assert (emptied.compared, emptied.corrected, emptied.edits, emptied.cer) == (1, 1, 2, None)
    both = text_score([pair("AB", ""), pair("kitten", "sitting")], config)
    assert both.cer == pytest.approx((2 + 3) / 7)
    assert text_score([], config).cer is None


def test_names_from_the_project_stay_text_in_the_markdown() -> None:
    """A label with a pipe, a line break and HTML, a model version with backticks: the table keeps
    one row per label and its columns, and no tag or code span reaches the renderer."""
    config = parse_label_config(CONFIG)
    hostile = "a|b\nc <img src=x onerror=alert(1)>"
    region = _region("a", hostile, (0, 0, 9, 9))
    pairs = Pairs("v`1`\n# x", tasks=[TaskPair(1, "a.jpg", [region], [region], {}, {}, {})])
    markdown = measure_quality(pairs, config, 1).summary.markdown()
    lines = markdown.splitlines()
    assert lines[0] == r"# Quality of model version v\`1\` \# x, project 1"
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 3  # header, rule, the one label
    assert {len(re.findall(r"(?<!\\)\|", line)) for line in table} == {len(LABEL_COLUMNS) + 1}
    assert r"a\|b c \<img src=x onerror=alert(1)\>" in table[2]
    assert re.search(r"(?<!\\)[<`]", markdown) is None


def test_regions_without_ids_are_matched_but_have_no_fate(tmp_path: Path) -> None:
    """Results posted or imported without ids: the labeling UI gives them new ones, so a kept box
    would read as deleted and added again. They count for P/R/AP, not for fates."""
    config = parse_label_config(CONFIG)
    kept, other = _region("", "car", (0, 0, 9, 9)), _region("", "car", (50, 50, 60, 60))
    pairs = Pairs("v1", tasks=[TaskPair(1, "a.jpg", [kept], [kept, other], {}, {}, {})])
    report = measure_quality(pairs, config, 1)
    (car,) = report.summary.labels
    assert (car.tp, car.fp, car.fn) == (1, 0, 1)
    assert sum(car.fates.values()) == 0
    assert [(r.outcome, r.fate) for r in report.regions] == [("tp", None), ("fn", None)]
    write_quality(tmp_path, report, pairs)
    with (tmp_path / "regions.csv").open() as handle:
        assert [row["fate"] for row in csv.DictReader(handle)] == ["", ""]


def test_region_choices_compare_sets_and_count_a_missing_choice_as_a_miss() -> None:
    """Options in another order are the same choice; the model's choice removed or a choice
    added by people is a miss; neither choosing is not compared. The pairings differ where a
    region moved off its match (e: same id, no match)."""
    config = parse_label_config(CONFIG)

    def box(rid: str, x: float, *options: str) -> Region:
        region = _region(rid, "car", (x, 0, x + 9, 9))
        return dataclasses.replace(region, attributes={"kind": list(options)} if options else {})

    predicted = [
        box("a", 0, "sedan", "truck"),
        box("b", 20, "sedan"),
        box("c", 40),
        box("d", 60),
        box("e", 80, "truck"),
    ]
    annotated = [
        box("a", 0, "truck", "sedan"),
        box("b", 20),
        box("c", 40, "truck"),
        box("d", 60),
        dataclasses.replace(box("e", 0, "sedan"), xyxy=(0, 80, 9, 89)),
    ]
    pair = TaskPair(1, "a.jpg", predicted, annotated, {}, {}, {})
    _, _, matched = label_scores([pair], 0.5, 0.02)
    assert [(dt.region_id, gt.region_id) for dt, gt in matched] == [
        ("a", "a"),
        ("b", "b"),
        ("c", "c"),
        ("d", "d"),
    ]
    by_match, by_id = region_choice_scores([pair], matched, config)
    assert (by_match.pairing, by_match.compared, by_match.correct) == ("matched", 3, 1)
    assert by_match.confusion == {
        (("sedan", "truck"), ("sedan", "truck")): 1,
        (("sedan",), ()): 1,
        ((), ("truck",)): 1,
    }
    assert (by_id.pairing, by_id.compared, by_id.correct, by_id.accuracy) == ("same id", 4, 1, 0.25)
    assert by_id.confusion == by_match.confusion | {(("truck",), ("sedan",)): 1}
    markdown = measure_quality(Pairs("v1", tasks=[pair]), config, 1).summary.markdown()
    assert "- Per-region choices kind, same id regions: 0.250 accuracy (1 of 4); " in markdown
    assert (
        "sedan; truck -> sedan; truck 1, sedan -> (none) 1, (none) -> truck 1, truck -> sedan 1" in markdown
    )
    # a perRegion result whose id names no region is read as the task's, on either side: every
    # region of that side carries it, so that task's regions are not compared
    task_wide = {"kind": ["sedan"]}
    for stray in (
        dataclasses.replace(pair, predicted_values=task_wide),
        dataclasses.replace(pair, annotated_values=task_wide),
    ):
        assert region_choice_scores([stray], matched, config) == []
    assert region_choice_scores([pair], [], config) == [by_id]  # nothing matched: by id only


def test_a_label_is_text_in_its_chart_and_a_chart_that_fails_is_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A label like "$x^$" made matplotlib parse a formula and raise, and the quality report with
    it; now it is drawn as text, and a chart that still cannot be drawn is a row in errors.csv."""
    from prelabel.quality import chart

    config = parse_label_config(CONFIG)
    formula, car = _region("a", "$x^$", (0, 0, 9, 9)), _region("b", "car", (20, 20, 40, 40))
    pairs = Pairs("v1", tasks=[TaskPair(1, "a.jpg", [formula, car], [formula, car], {}, {}, {})])
    report = measure_quality(pairs, config, 1)
    drawn = write_quality(tmp_path / "drawn", report, pairs)
    assert drawn.charts_failed == 0 and len(list((tmp_path / "drawn" / "charts").glob("*.png"))) == 2

    def fails_for_cars(path: Path, score: Any) -> Path:
        if score.label == "car":
            raise ValueError("no canvas")
        return chart.write_label_chart(path, score)

    monkeypatch.setattr("prelabel.quality.report.write_label_chart", fails_for_cars)
    summary = write_quality(tmp_path / "broken", report, pairs)
    with (tmp_path / "broken" / "errors.csv").open() as handle:
        rows = [(Path(r["file"]).name, r["stage"], r["error"]) for r in csv.DictReader(handle)]
    assert rows == [("rectanglelabels-car.png", "report", "could not be drawn (ValueError: no canvas)")]
    assert summary.charts_failed == 1 and "- 1 charts could not be drawn (errors.csv)" in summary.markdown()
    assert json.loads((tmp_path / "broken" / "summary.json").read_text())["charts_failed"] == 1
