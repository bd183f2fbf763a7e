"""Pullback labelstudio: the tests of `test_pullback.py` that need real servers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.pullback import ERRORS_FILE, pull_annotations
from tests.unit.labelstudio.test_pullback import CONFIG, KEYPOINT, PLAIN, POLYGON, ROTATED, _box


def test_pull_completes_with_plain_rotated_polygon_and_keypoint(
    ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    project = ls_client.create_project("pull survives", CONFIG)
    task_ids = ls_client.import_tasks(
        project.id, [{"data": {"image": f"s3://b/street_{i}.jpg"}} for i in range(2)]
    )
    ls_client.create_annotation(task_ids[0], [PLAIN, ROTATED, POLYGON, KEYPOINT])
    ls_client.create_annotation(task_ids[1], [_box("second", 50, 50, 10, 10, 30)])

    out = tmp_path / "pull"
    ticks: list[int] = []
    report = pull_annotations(ls_client, project.id, out, formats=("coco", "csv"), progress=ticks.append)

    assert (report.fetched, report.stored, report.regions) == (2, 2, 5)
    assert ticks == [1, 1]  # the command line's bar moves once per task read
    assert report.not_exported == {}
    assert report.errors == [] and report.errors_file == out / ERRORS_FILE
    with (out / ERRORS_FILE).open(newline="") as handle:
        assert list(csv.reader(handle)) == [["file", "stage", "error"]]

    table = pd.read_csv(out / "regions.csv")
    table = table[table["type"] == "rectanglelabels"]
    rows = {row["image"] + "/" + str(row["rotation"]): row for _, row in table.iterrows()}
    plain, rotated = rows["street_0.jpg/0.0"], rows["street_0.jpg/90.0"]
    assert (plain["x"], plain["y"], plain["width"], plain["height"]) == pytest.approx((20, 10, 40, 10))
    assert (rotated["x"], rotated["y"], rotated["width"], rotated["height"]) == pytest.approx(
        (10, 10, 10, 40)
    )
    assert json.loads(rotated["corners"]) == [
        pytest.approx(c) for c in ([20, 10], [20, 50], [10, 50], [10, 10])
    ]
    assert json.loads(plain["corners"]) == [
        pytest.approx(c) for c in ([20, 10], [60, 10], [60, 20], [20, 20])
    ]

    coco = json.loads((out / "annotations.coco.json").read_text())
    by_angle = {a["attributes"]["rotation"]: a for a in coco["annotations"] if "attributes" in a}
    assert sorted(by_angle) == [0, 30, 90]
    assert by_angle[90]["bbox"] == pytest.approx([10, 10, 10, 40])
    assert by_angle[90]["area"] == pytest.approx(400)
