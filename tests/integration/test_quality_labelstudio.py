"""Quality labelstudio: the tests of `test_quality.py` that need real servers."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from prelabel.core.errors import PrelabelError
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.quality import load_pairs, measure_quality
from prelabel.quality.chart import CHART_SIZE
from prelabel.quality.report import REGION_CHOICE_COLUMNS
from tests.support.cli import CliRun
from tests.support.docs_images import docs_image
from tests.support.known_edits import (
    AP50_CAR_POLYGON,
    AP_CAR_BOX,
    AP_CAR_MASK,
    AP_CAR_POLYGON,
    AP_PERSON_BOX,
    REGION_CHOICES_BY_ID,
    REGION_CHOICES_MATCHED,
    known_edits_project,
)
from tests.unit.quality.test_quality import _numbers


@pytest.fixture(scope="module")
def synthetic(label_studio: LocalLabelStudio) -> Iterator[tuple[LabelStudioClient, Project]]:
    with LabelStudioClient(label_studio.url, label_studio.legacy_token, timeout=30) as client:
        yield client, known_edits_project(client)


def test_known_edits_give_known_numbers(synthetic: tuple[LabelStudioClient, Project]) -> None:
    client, project = synthetic
    project_read, pairs = load_pairs(client, project.id, "v1")
    summary = measure_quality(pairs, project_read.config, project.id).summary

    assert (summary.tasks, summary.unannotated, summary.errors) == (4, 2, 0)
    rows = _numbers(summary)
    assert set(rows) == {
        ("rectanglelabels", "car"),
        ("rectanglelabels", "person"),
        ("brushlabels", "car"),
        ("polygonlabels", "car"),
        ("keypointlabels", "nose"),
        ("keypointlabels", "eye"),
    }
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
    matched, by_id = summary.region_choices
    assert (matched.control, matched.pairing, matched.compared, matched.correct) == ("kind", "matched", 5, 2)
    assert (by_id.control, by_id.pairing, by_id.compared, by_id.correct) == ("kind", "same id", 6, 2)
    assert matched.accuracy == 0.4 and by_id.accuracy == pytest.approx(1 / 3)
    assert matched.confusion == REGION_CHOICES_MATCHED and by_id.confusion == REGION_CHOICES_BY_ID
    texts = summary.texts
    assert (texts.compared, texts.corrected, texts.edits, texts.reference_chars) == (2, 1, 1, 13)
    assert texts.cer == pytest.approx(1 / 13)
    assert summary.not_measured == {}

    polygon = rows["polygonlabels", "car"]  # p1, p2 kept, p3 moved (IoU 2/3), p4 deleted, a5 added
    assert (polygon["tp"], polygon["fp"], polygon["fn"]) == (3, 1, 1)
    assert polygon["precision"] == polygon["recall"] == polygon["f1"] == 0.75
    assert polygon["mean_iou"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert (polygon["kept"], polygon["edited"], polygon["deleted"], polygon["added"]) == (2, 1, 1, 1)
    assert polygon["ap50"] == pytest.approx(AP50_CAR_POLYGON) and polygon["ap"] == pytest.approx(
        AP_CAR_POLYGON
    )
    assert polygon["mean_error_px"] is None and mask["mean_error_px"] is None

    nose, eye = rows["keypointlabels", "nose"], rows["keypointlabels", "eye"]
    # k1 kept (0 px), k2 moved 2 px (within 2.83 px), k3 moved 4 px (a miss both ways)
    assert (nose["tp"], nose["fp"], nose["fn"], nose["mean_error_px"]) == (2, 1, 1, 1.0)
    assert nose["precision"] == nose["recall"] == nose["f1"] == pytest.approx(2 / 3)
    assert (nose["kept"], nose["edited"], nose["deleted"], nose["added"]) == (1, 2, 0, 0)
    assert (eye["tp"], eye["fp"], eye["fn"], eye["precision"], eye["recall"], eye["f1"]) == (0, 1, 1, 0, 0, 0)
    assert (eye["kept"], eye["edited"], eye["deleted"], eye["added"]) == (0, 0, 1, 1)
    assert nose["mean_iou"] is nose["ap"] is nose["ap50"] is None  # no area: no IoU, no AP
    assert eye["mean_iou"] is eye["mean_error_px"] is eye["ap"] is None  # nothing matched


def test_cli_writes_csv_json_and_charts(
    synthetic: tuple[LabelStudioClient, Project],
    label_studio: LocalLabelStudio,
    tmp_path: Path,
    cli: CliRun,
) -> None:
    _, project = synthetic
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = cli(
        "quality",
        "--project-id",
        str(project.id),
        "--model-version",
        "v1",
        "--keypoint-tolerance",
        "0.03",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "prelabel-output" / "quality" / f"project-{project.id}" / "v1"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["keypoint_tolerance"] == 0.03 and summary["not_measured"] == {}
    assert summary["fates"] == {"kept": 6, "edited": 5, "deleted": 3, "added": 3}  # by id: any tolerance
    assert summary["texts"]["cer"] == pytest.approx(1 / 13) and summary["choices"][0]["accuracy"] == 0.75
    matched, by_id = summary["region_choices"]  # pairing by match does not depend on the tolerance here
    assert {k: matched[k] for k in ("control", "pairing", "compared", "correct", "accuracy")} == {
        "control": "kind",
        "pairing": "matched",
        "compared": 5,
        "correct": 2,
        "accuracy": 0.4,
    }
    assert (by_id["pairing"], by_id["compared"], by_id["correct"]) == ("same id", 6, 2)
    assert matched["confusion"][0] == {"predicted": ["sedan"], "annotated": ["sedan"], "regions": 2}
    with (out / "region_choices.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == REGION_CHOICE_COLUMNS
        confusion = [
            (r["control"], r["pairing"], r["predicted"], r["annotated"], r["regions"]) for r in reader
        ]
    pairings = (("matched", REGION_CHOICES_MATCHED), ("same id", REGION_CHOICES_BY_ID))
    expected = [
        ("kind", pairing, "; ".join(dt), "; ".join(gt), str(n))
        for pairing, counts in pairings
        for (dt, gt), n in counts.items()
    ]
    assert sorted(confusion) == sorted(expected) and ("kind", "matched", "truck", "", "1") in confusion
    with (out / "labels.csv").open(newline="") as handle:
        labels = {(r["type"], r["label"]): r for r in csv.DictReader(handle)}
    assert float(labels["rectanglelabels", "person"]["ap"]) == pytest.approx(AP_PERSON_BOX)
    nose = labels["keypointlabels", "nose"]  # 4 px is within 0.03 x 141.4 = 4.24 px
    assert (nose["tp"], nose["fp"], nose["fn"], float(nose["mean_error_px"])) == ("3", "0", "0", 2.0)
    assert (labels["polygonlabels", "car"]["mean_error_px"], nose["mean_iou"], nose["ap"]) == ("", "", "")
    with (out / "regions.csv").open(newline="") as handle:
        regions = list(csv.DictReader(handle))
    assert {(r["region_id"], r["outcome"], r["fate"]) for r in regions if r["type"] == "rectanglelabels"} == {
        ("b1", "tp", "kept"),
        ("b2", "fp", "edited"),
        ("b2", "fn", "edited"),
        ("b3", "fp", "deleted"),
        ("b4", "tp", "kept"),
        ("a4", "fn", "added"),
    }
    assert {
        (r["region_id"], r["outcome"], r["iou"][:5], r["fate"])
        for r in regions
        if r["type"] == "polygonlabels"
    } == {
        ("p1", "tp", "1.0", "kept"),
        ("p2", "tp", "1.0", "kept"),
        ("p3", "tp", "0.666", "edited"),
        ("p4", "fp", "", "deleted"),
        ("a5", "fn", "", "added"),
    }
    assert {
        (r["region_id"], r["outcome"], r["error_px"], r["fate"])
        for r in regions
        if r["type"] == "keypointlabels"
    } == {
        ("k1", "tp", "0.0", "kept"),
        ("k2", "tp", "2.0", "edited"),
        ("k3", "tp", "4.0", "edited"),
        ("k4", "fp", "", "deleted"),
        ("a6", "fn", "", "added"),
    }
    charts = sorted((out / "charts").glob("*.png"))
    assert [c.name for c in charts] == [
        "brushlabels-car.png",
        "keypointlabels-eye.png",
        "keypointlabels-nose.png",
        "polygonlabels-car.png",
        "rectanglelabels-car.png",
        "rectanglelabels-person.png",
    ]
    kept = docs_image("quality-chart.png")
    if kept is not None:
        shutil.copyfile(out / "charts" / "rectanglelabels-car.png", kept)
    for chart in charts:
        with Image.open(chart) as image:
            image.verify()
        with Image.open(chart) as image:
            assert image.size == CHART_SIZE and image.format == "PNG"
    assert "character error rate 0.077" in done.stdout
    assert "keypoints within 0.03 of the image diagonal" in done.stdout
    assert (
        "- Per-region choices kind, matched regions: 0.400 accuracy (2 of 5); predicted -> annotated: "
        "sedan -> sedan 2, " in done.stdout
    )
    assert "truck -> (none) 1" in done.stdout and "(none) -> sedan 1" in done.stdout


def test_an_unknown_model_version_names_the_versions_there(
    synthetic: tuple[LabelStudioClient, Project],
    label_studio: LocalLabelStudio,
    tmp_path: Path,
    cli: CliRun,
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
    done = cli("quality", "--project-id", str(project.id), "--model-version", "v9", cwd=tmp_path, env=env)
    assert done.returncode != 0
    assert "model version 'v9'" in done.stderr and "'v1' (6 predictions)" in done.stderr
    assert not (tmp_path / "prelabel-output").exists()
