"""``preannotate`` by task ids (what ``prelabel serve`` hands over), run for real: each task with its
own image, no matching by name; ids the project lacks and a second task of the same image are
error rows; a rerun posts nothing twice."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from flows.params import PreannotateParams
from flows.preannotate import preannotate
from prelabel.ingest.samples import LABEL_CONFIG, make_samples
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import LocalLabelStudio

pytestmark = pytest.mark.slow


def test_the_tasks_named_are_predicted_once_each(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    prefect_server: str,
    tiny_detr: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRELABEL_LS_URL", label_studio.url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", label_studio.legacy_token.get_secret_value())
    project = ls_client.create_project("by task ids", LABEL_CONFIG)
    samples = make_samples()[:2]
    for sample in samples:
        (tmp_path / sample.name).write_bytes(sample.data)
    first, second = ls_client.upload_files(project.id, [tmp_path / s.name for s in samples])
    uploaded = {t.id: t.image_ref("image") for t in ls_client.iter_tasks(project.id)}
    # a third task of the first image (a re-import), and one the named ids leave out
    (again,) = ls_client.import_tasks(project.id, [{"data": {"image": uploaded[first]}}])
    params = PreannotateParams(
        project_id=project.id,
        task_ids=[second, first, again, 999_999],
        model="detr",
        model_options={"checkpoint": str(tiny_detr), "threshold": 0.0, "device": "cpu"},
        label_map={"car": "civilian vehicle"},
        model_version="by-id",
        cache_dir=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "out"),
        unmatched_csv=str(tmp_path / "out" / "unmatched_labels.csv"),
    )
    summary = preannotate(params)
    assert (summary.images, summary.posted, summary.failed) == (2, 2, 2)
    with (tmp_path / "out" / "errors.csv").open() as rows:
        errors = {row["file"]: row["error"] for row in csv.DictReader(rows)}
    assert errors == {
        f"task {again}": f"the same image as task {first}, which gets the prediction",
        "task 999999": f"project {project.id} has no task 999999",
    }
    versions = {
        t.id: [p["model_version"] for p in t.predictions] for t in ls_client.iter_tasks(project.id, full=True)
    }
    assert versions == {first: ["by-id"], second: ["by-id"], again: []}
    rerun = preannotate(params)
    assert (rerun.posted, rerun.skipped) == (0, 2)
