"""The quality report on a synthetic project with known edits: every number known in advance.

Images are 100x100 pixels, so Label Studio's percentages are pixels. The model version
``v1`` predicted four tasks; people then (through the API, as the labeling UI would save them,
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

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prelabel.convert.masks import mask_to_brush
from prelabel.errors import PrelabelError
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.quality import QualitySummary, load_pairs, measure_quality
from prelabel.quality.chart import CHART_SIZE
from tests.conftest import run_prelabel

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


@pytest.fixture(scope="module")
def synthetic(label_studio: LocalLabelStudio) -> Iterator[tuple[LabelStudioClient, Project]]:
    with LabelStudioClient(label_studio.url, label_studio.legacy_token, timeout=30) as client:
        project = client.create_project("quality known edits", CONFIG)
        ids = client.import_tasks(
            project.id, [{"data": {"image": f"s3://bucket/img{i}.jpg"}} for i in range(6)]
        )
        predictions = [
            {"task": t, "result": r, "score": 0.5, "model_version": "v1"}
            for t, r in zip(ids, PREDICTED, strict=True)
        ]
        predictions.append({"task": ids[0], "result": _box("x", "person", (0, 0, 99, 99), 0.99),
                            "model_version": "old"})  # fmt: skip
        assert client.import_predictions(project.id, predictions) == 7
        for task_id, result in zip(ids, ANNOTATED, strict=False):
            client.create_annotation(task_id, result)
        client.create_annotation(ids[4], _box("z", "person", (0, 0, 5, 5)), was_cancelled=True)
        yield client, project


def _numbers(summary: QualitySummary) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["type"], row["label"]): row for row in summary.label_rows()}


def test_known_edits_give_known_numbers(synthetic: tuple[LabelStudioClient, Project]) -> None:
    client, project = synthetic
    project_read, pairs = load_pairs(client, project.id, "v1")
    summary = measure_quality(pairs, project_read.config, project.id, "v1").summary

    assert (summary.tasks, summary.unannotated, summary.errors) == (4, 2, 0)
    rows = _numbers(summary)
    assert set(rows) == {("rectanglelabels", "car"), ("rectanglelabels", "person"), ("brushlabels", "car")}
    car, person, mask = (
        rows["rectanglelabels", "car"],
        rows["rectanglelabels", "person"],
        rows["brushlabels", "car"],
    )
    for row in (car, person):  # one kept, one missed each way
        assert (row["tp"], row["fp"], row["fn"]) == (1, 1, 1)
        assert row["precision"] == row["recall"] == row["f1"] == 0.5
        assert row["mean_iou"] == 1.0
    assert (car["kept"], car["edited"], car["deleted"], car["added"]) == (1, 1, 0, 0)
    assert (person["kept"], person["edited"], person["deleted"], person["added"]) == (1, 0, 1, 1)
    assert car["ap"] == pytest.approx(AP_CAR_BOX) and car["ap50"] == pytest.approx(AP_CAR_BOX)
    assert person["ap"] == pytest.approx(AP_PERSON_BOX) and person["ap50"] == pytest.approx(AP_PERSON_BOX)

    assert (mask["tp"], mask["fp"], mask["fn"], mask["precision"], mask["recall"]) == (2, 0, 0, 1.0, 1.0)
    assert mask["mean_iou"] == pytest.approx((1.0 + 0.81) / 2)
    assert (mask["kept"], mask["edited"], mask["deleted"], mask["added"]) == (1, 1, 0, 0)
    assert mask["ap50"] == pytest.approx(1.0) and mask["ap"] == pytest.approx(AP_CAR_MASK)

    assert [(c.control, c.tasks, c.correct, c.accuracy) for c in summary.choices] == [("scene", 4, 3, 0.75)]
    texts = summary.texts
    assert (texts.compared, texts.corrected, texts.edits, texts.reference_chars) == (2, 1, 1, 13)
    assert texts.cer == pytest.approx(1 / 13)
    assert summary.not_measured == {"polygonlabels": 2}


def test_cli_writes_csv_json_and_charts(
    synthetic: tuple[LabelStudioClient, Project], label_studio: LocalLabelStudio, tmp_path: Path
) -> None:
    _, project = synthetic
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = run_prelabel(
        "quality", "--project-id", str(project.id), "--model-version", "v1", cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "prelabel-output" / "quality" / f"project-{project.id}" / "v1"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fates"] == {"kept": 3, "edited": 2, "deleted": 1, "added": 1}
    assert summary["texts"]["cer"] == pytest.approx(1 / 13) and summary["choices"][0]["accuracy"] == 0.75
    with (out / "labels.csv").open(newline="") as handle:
        labels = {(r["type"], r["label"]): r for r in csv.DictReader(handle)}
    assert float(labels["rectanglelabels", "person"]["ap"]) == pytest.approx(AP_PERSON_BOX)
    with (out / "regions.csv").open(newline="") as handle:
        fates = {(r["task"], r["region_id"], r["outcome"]): r["fate"] for r in csv.DictReader(handle)}
    assert {(k[1], k[2], v) for k, v in fates.items() if k[1].startswith(("b", "a"))} == {
        ("b1", "tp", "kept"), ("b2", "fp", "edited"), ("b2", "fn", "edited"), ("b3", "fp", "deleted"),
        ("b4", "tp", "kept"), ("a4", "fn", "added"),
    }  # fmt: skip
    charts = sorted((out / "charts").glob("*.png"))
    assert [c.name for c in charts] == [
        "brushlabels-car.png",
        "rectanglelabels-car.png",
        "rectanglelabels-person.png",
    ]
    for chart in charts:
        with Image.open(chart) as image:
            image.verify()
        with Image.open(chart) as image:
            assert image.size == CHART_SIZE and image.format == "PNG"
    assert "character error rate 0.077" in done.stdout


def test_an_unknown_model_version_names_the_versions_there(
    synthetic: tuple[LabelStudioClient, Project], label_studio: LocalLabelStudio, tmp_path: Path
) -> None:
    client, project = synthetic
    with pytest.raises(
        PrelabelError, match=r"no predictions of model version 'v9'.*'old' \(1 predictions\), 'v1' \(6"
    ):
        load_pairs(client, project.id, "v9")
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = run_prelabel(
        "quality", "--project-id", str(project.id), "--model-version", "v9", cwd=tmp_path, env=env
    )
    assert done.returncode != 0
    assert "model version 'v9'" in done.stderr and "'v1' (6 predictions)" in done.stderr
    assert not (tmp_path / "prelabel-output").exists()
