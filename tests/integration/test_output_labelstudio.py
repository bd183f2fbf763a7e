"""Sane model output in a real Label Studio: the tests of `test_output.py` that need real servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prelabel.records import Detections
from tests.unit.predict.test_output import _item


def test_a_contact_sheet_that_cannot_be_drawn_is_a_row_and_the_summary_is_written(
    prefect_server: None, tmp_path: Path
) -> None:
    """A record that never went through the pipeline (an inverted box, which Pillow refuses to
    draw): the contact sheet is a row in errors.csv; every other file and the summary are written."""
    from collections import Counter

    from prefect import flow

    from prelabel.labelstudio.matching import MatchResult
    from prelabel.records import PredictionRecord
    from prelabel.report.summary import RunSummary
    from tasks.reporting import write_report

    item = _item(tmp_path)
    odd = PredictionRecord(
        item.info, Detections(xyxy=[[60, 50, 10, 10]], scores=[0.9], labels=("a",)), uri=item.uri
    )
    out = tmp_path / "out"

    @flow
    def report() -> RunSummary:
        return write_report(
            RunSummary(project_id=1, model_version="v1"),
            out,
            out / "unmatched_labels.csv",
            Counter(),
            MatchResult(),
            [],
            [odd],
        )

    summary = report()
    rows = (out / "errors.csv").read_text().splitlines()
    assert rows[0] == "file,stage,error" and len(rows) == 2
    assert rows[1].startswith(f"{out / 'contact_sheet.png'},report,could not be drawn (ValueError: ")
    assert summary.failed == 0 and "contact sheet" not in (summary.files or {})
    assert {"errors", "unmatched files and tasks"} <= set(summary.files or {})


def test_odd_geometry_from_raw_files_is_posted_sane_in_a_dry_run(
    prefect_server: None,
    label_studio: Any,
    ls_client: Any,
    project: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's run: one raw file's box [60, 50, 10, 10] made the contact sheet raise and the
    flow fail (no summary), dry run or not; another's score 7 was posted as it was."""
    import json

    from flows.params import PostParams
    from flows.post_predictions import post_predictions
    from prelabel.ingest.samples import make_samples

    monkeypatch.setenv("PRELABEL_LS_URL", label_studio.url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", label_studio.legacy_token.get_secret_value())
    images = tmp_path / "images"
    images.mkdir()
    raw = {
        "inverted": '{"objects": [{"bbox": [60, 50, 10, 10], "category": "person", "score": 0.8}]}',
        "logit": '{"objects": [{"bbox": [1, 2, 30, 40], "category": "person", "score": 7}]}',
    }
    for sample, (stem, body) in zip(make_samples(), raw.items(), strict=False):
        (images / f"{stem}.jpg").write_bytes(sample.data)
        (images / f"{stem}.json").write_text(body)
    ls_client.upload_files(project.id, sorted(images.glob("*.jpg")))
    out = tmp_path / "out"
    params = PostParams(
        project_id=project.id,
        input_dir=str(images),
        dry_run=True,
        model_version="raw-v1",
        output_dir=str(out),
        unmatched_csv=str(out / "unmatched_labels.csv"),
    )
    summary = post_predictions(params)
    assert (summary.matched, summary.failed, summary.regions) == (2, 1, 1)
    assert (out / "contact_sheet.png").is_file() and "contact sheet" in (summary.files or {})
    errors = (out / "errors.csv").read_text()
    assert "logit.jpg: detections refused: #0 'person': score 7 is outside [0, 1]" in errors
    (payload,) = [json.loads(p.read_text()) for p in (out / "payloads").glob("inverted*.json")]
    box = payload["result"][0]["value"]
    width, height = payload["result"][0]["original_width"], payload["result"][0]["original_height"]
    assert (box["x"], box["y"]) == pytest.approx((10 / width * 100, 10 / height * 100))
    assert (box["width"], box["height"]) == pytest.approx((50 / width * 100, 40 / height * 100))
    assert all(not t.model_versions for t in ls_client.iter_tasks(project.id))  # a dry run posts nothing
