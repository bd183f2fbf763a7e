"""Every image tag comes back exactly: boxes, rotated boxes, polygons, keypoints, choices, texts."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.exports import to_coco
from prelabel.labelstudio.pullback import extract_regions, pull_annotations

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
  <PolygonLabels name="polygon" toName="image"><Label value="car"/><Label value="person"/></PolygonLabels>
  <KeyPointLabels name="keypoints" toName="image"><Label value="nose"/><Label value="tail"/></KeyPointLabels>
  <Choices name="scene" toName="image"><Choice value="street"/><Choice value="indoor"/></Choices>
  <Choices name="state" toName="image" perRegion="true">
    <Choice value="parked"/><Choice value="moving"/>
  </Choices>
  <TextArea name="transcription" toName="image" perRegion="true"/>
</View>"""
W, H = 640, 480  # every sample as displayed (the third is stored 480x640 with EXIF orientation 6)


def _result(rid: str, kind: str, name: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "type": kind,
        "from_name": name,
        "to_name": "image",
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": value,
        **extra,
    }


def _pct(x: float, y: float) -> tuple[float, float]:
    return x / W * 100, y / H * 100


def annotation_for(i: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The results of sample ``i`` and what must come back (pixels)."""
    x1, y1, x2, y2 = 40 + 10 * i, 60 + 5 * i, 300, 400  # a box in pixels
    box = {
        "x": x1 / W * 100,
        "y": y1 / H * 100,
        "width": (x2 - x1) / W * 100,
        "height": (y2 - y1) / H * 100,
        "rotation": 0,
    }
    rotated = {"x": 50.0, "y": 10.0, "width": 10.0, "height": 20.0, "rotation": 90}  # pixels (320,48) 64x96
    triangle = [(400.0 + i, 200.0), (600.0, 210.0), (500.0, 460.0 - i)]
    nose, tail, loose = (100.0 + i, 120.0), (250.0, 380.5), (620.25, 20.75)
    box_id = f"box{i}"
    results = [
        _result(box_id, "rectanglelabels", "label", box | {"rectanglelabels": ["car"]}),
        _result(box_id, "choices", "state", box | {"choices": ["parked"]}),
        _result(box_id, "textarea", "transcription", box | {"text": [f"AB {i}", "second line"]}),
        _result(f"rot{i}", "rectanglelabels", "label", rotated | {"rectanglelabels": ["person"]}),
        _result(
            f"poly{i}",
            "polygonlabels",
            "polygon",
            {"points": [list(_pct(*p)) for p in triangle], "closed": True, "polygonlabels": ["person"]},
        ),
        _result(
            f"kn{i}",
            "keypointlabels",
            "keypoints",
            {"x": _pct(*nose)[0], "y": _pct(*nose)[1], "width": 0.5, "keypointlabels": ["nose"]},
            parentID=box_id,
        ),
        _result(
            f"kt{i}",
            "keypointlabels",
            "keypoints",
            {"x": _pct(*tail)[0], "y": _pct(*tail)[1], "width": 0.5, "keypointlabels": ["tail"]},
            parentID=box_id,
        ),
        _result(
            f"kl{i}",
            "keypointlabels",
            "keypoints",
            {"x": _pct(*loose)[0], "y": _pct(*loose)[1], "width": 0.5, "keypointlabels": ["tail"]},
        ),
        {
            "id": f"sc{i}",
            "type": "choices",
            "from_name": "scene",
            "to_name": "image",
            "value": {"choices": ["street", "indoor"] if i == 2 else ["street"]},
        },
        _result(f"el{i}", "ellipselabels", "other", {"x": 1, "y": 1, "radiusX": 1, "radiusY": 1}),
    ]
    expected = {
        "box": [x1, y1, x2 - x1, y2 - y1],
        "rotated": [320 - 96, 48, 96, 64],
        "triangle": triangle,
        "nose": nose,
        "tail": tail,
        "loose": loose,
    }
    return results, expected


def _coco_eval(gt: dict[str, Any], dt: list[dict[str, Any]], kind: str) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = copy.deepcopy(gt)
        truth.createIndex()
        found = truth.loadRes(copy.deepcopy(dt))
        evaluation = COCOeval(truth, found, kind)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0])


def test_keypoints_group_under_their_parent_and_values_attach() -> None:
    config = parse_label_config(CONFIG)
    results, _ = annotation_for(0)
    task = Task.from_json(
        {"id": 5, "data": {"image": "s3://b/a.jpg"}, "annotations": [{"id": 9, "result": results}]}
    )
    found = extract_regions([task], config)
    assert not found.errors and found.not_exported == {"ellipselabels": 1}
    box = next(r for r in found.regions if r.region_id == "box0")
    assert box.attributes == {
        "scene": ["street"],
        "state": ["parked"],
        "transcription": ["AB 0", "second line"],
    }
    coco = to_coco(found.regions, config, found.task_values)
    with_points = [a for a in coco["annotations"] if "keypoints" in a]
    assert len(with_points) == 2  # the box with its two children; the loose one alone
    names = {c["name"]: c for c in coco["categories"]}
    assert names["keypoints"]["keypoints"] == ["nose", "tail"] and names["car"]["skeleton"] == []
    assert "keypoints" not in names["person"]  # no person region has keypoints
    assert coco["images"][0]["attributes"] == {"scene": ["street"]}


def test_a_second_keypoint_of_one_name_in_a_group_is_an_error_row() -> None:
    results, _ = annotation_for(0)
    results.append(results[5] | {"id": "again"})  # a second nose on box0
    task = Task.from_json(
        {"id": 5, "data": {"image": "a.jpg"}, "annotations": [{"id": 9, "result": results}]}
    )
    found = extract_regions([task], parse_label_config(CONFIG))
    assert len(found.errors) == 1 and "a second 'nose' keypoint in region 'box0'" in found.errors[0].error


def test_every_tag_comes_back_exactly(ls_client: LabelStudioClient, tmp_path: Path) -> None:
    project = ls_client.create_project("every tag back", CONFIG)
    paths = []
    for sample in make_samples():
        paths.append(tmp_path / sample.name)
        paths[-1].write_bytes(sample.data)
    task_ids = ls_client.upload_files(project.id, paths)
    expected = {}
    for i, task_id in enumerate(task_ids):
        results, expected[task_id] = annotation_for(i)
        ls_client.create_annotation(task_id, results)

    out = tmp_path / "pull"
    report = pull_annotations(ls_client, project.id, out, formats=("coco", "csv"))
    assert report.errors == [] and report.not_exported == {"ellipselabels": 4}
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert {(i["width"], i["height"]) for i in coco["images"]} == {(W, H)}  # the EXIF-rotated one too
    assert {i["file_name"] for i in coco["images"]} == {p.name for p in paths}

    category = {c["name"]: c["id"] for c in coco["categories"]}
    gt_boxes, gt_polys, number = [], [], 0
    for task_id, want in expected.items():
        for cat, bbox in (("car", want["box"]), ("person", want["rotated"])):
            number += 1
            gt_boxes.append(
                {
                    "id": number,
                    "image_id": task_id,
                    "category_id": category[cat],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        xs, ys = [p[0] for p in want["triangle"]], [p[1] for p in want["triangle"]]
        number += 1
        gt_polys.append(
            {
                "id": number,
                "image_id": task_id,
                "category_id": category["person"],
                "iscrowd": 0,
                "segmentation": [[v for p in want["triangle"] for v in p]],
                "area": 1.0,
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
            }
        )
    base = {"images": coco["images"], "categories": coco["categories"]}
    rects = [a | {"score": 1.0} for a in coco["annotations"] if "rotation" in a.get("attributes", {})]
    polys = [
        a | {"score": 1.0}
        for a in coco["annotations"]
        if a["segmentation"] and isinstance(a["segmentation"], list)
    ]
    assert len(rects) == 8 and len(polys) == 4
    assert _coco_eval(base | {"annotations": gt_boxes}, rects, "bbox") == 1.0
    assert _coco_eval(base | {"annotations": gt_polys}, polys, "segm") == 1.0
    assert _coco_eval(base | {"annotations": gt_polys}, polys, "bbox") == 1.0

    for task_id, want in expected.items():
        mine = [a for a in coco["annotations"] if a["image_id"] == task_id and "keypoints" in a]
        parented = next(a for a in mine if a["category_id"] == category["car"])
        loose = next(a for a in mine if a["category_id"] == category["keypoints"])
        assert parented["keypoints"][0:2] == pytest.approx(want["nose"], abs=0.5)
        assert parented["keypoints"][3:5] == pytest.approx(want["tail"], abs=0.5)
        assert parented["num_keypoints"] == 2 and loose["num_keypoints"] == 1
        assert loose["keypoints"][2] == 0 and loose["keypoints"][3:5] == pytest.approx(want["loose"], abs=0.5)
        assert parented["attributes"] == {
            "scene": ["street", "indoor"] if task_id == task_ids[2] else ["street"],
            "state": ["parked"],
            "transcription": [f"AB {task_ids.index(task_id)}", "second line"],
            "rotation": 0.0,
        }

    table = pd.read_csv(out / "regions.csv", keep_default_na=False)
    boxes = table[(table["type"] == "rectanglelabels") & (table["label"] == "car")].sort_values("task_id")
    assert list(boxes["state"]) == ["parked"] * 4
    assert list(boxes["transcription"]) == [json.dumps([f"AB {i}", "second line"]) for i in range(4)]
    assert list(boxes["scene"]) == ["street", "street", json.dumps(["street", "indoor"]), "street"]
    kps = table[table["type"] == "keypointlabels"]
    assert len(kps) == 12 and set(kps["parent_id"]) == {"", "box0", "box1", "box2", "box3"}
