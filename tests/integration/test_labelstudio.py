"""Against the real Label Studio: credentials, import, matching, posting, reports, pull-back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prelabel.convert.masks import brush_to_mask, coco_to_mask, mask_to_brush
from prelabel.core.errors import LabelStudioError, LabelStudioStartError
from prelabel.core.images import read_image_info
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.importing import import_images
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.matching import match_files
from prelabel.labelstudio.posting import post_predictions
from prelabel.labelstudio.predictions import build_batch
from prelabel.labelstudio.pullback import pull_annotations
from prelabel.labelstudio.server import (
    DATABASE_FILE,
    EMPTY_DATABASE,
    PERSONAL_TOKEN_FILE,
    LocalLabelStudio,
    ensure_installed,
    personal_token,
    seed_database,
)
from prelabel.records import Detections, PredictionRecord
from prelabel.report.summary import append_unmatched_labels, write_payloads, write_unmatched
from tests.conftest import write_image


def _versions(client: LabelStudioClient, project: Project) -> dict[int, frozenset[str]]:
    return {t.id: t.model_versions for t in client.iter_tasks(project.id)}


@pytest.mark.parametrize("kind", ["legacy", "personal"])
def test_both_kinds_of_credentials(label_studio: LocalLabelStudio, project: Project, kind: str) -> None:
    token = label_studio.legacy_token if kind == "legacy" else label_studio.personal_token
    with LabelStudioClient(label_studio.url, token) as client:
        assert client.get_project(project.id).config.image.data_key == "image"


def test_a_restart_uses_the_personal_token_it_kept(label_studio: LocalLabelStudio, tmp_path: Path) -> None:
    """Label Studio refuses a second personal token (409) and never shows the first again: a
    later start of the same data directory (the demo, run twice) uses the one kept there."""
    kept = label_studio.data_dir / PERSONAL_TOKEN_FILE
    assert kept.stat().st_mode & 0o777 == 0o600
    legacy = label_studio.legacy_token.get_secret_value()
    again = personal_token(label_studio.url, legacy, kept)
    assert again.get_secret_value() == label_studio.personal_token.get_secret_value()
    with pytest.raises(
        LabelStudioStartError, match="already has a personal access token that prelabel did not keep"
    ):
        personal_token(label_studio.url, legacy, tmp_path / PERSONAL_TOKEN_FILE)


def test_a_new_data_directory_starts_from_the_migrated_empty_database(
    label_studio: LocalLabelStudio, tmp_path: Path
) -> None:
    """The session's server started from a copy: Label Studio found nothing to migrate. A directory
    with a database of its own, or a server on another database, is left as it is."""
    assert "Initializing database" not in label_studio.log_file.read_text()
    executable = ensure_installed()
    empty = (executable.parent.parent / EMPTY_DATABASE / DATABASE_FILE).read_bytes()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert seed_database(executable, fresh, {}) is True
    assert (fresh / DATABASE_FILE).read_bytes() == empty
    (fresh / DATABASE_FILE).write_bytes(b"kept")
    assert seed_database(executable, fresh, {}) is False
    assert (fresh / DATABASE_FILE).read_bytes() == b"kept"
    other = tmp_path / "other"
    other.mkdir()
    assert seed_database(executable, other, {"DJANGO_DB": "default"}) is False
    assert seed_database(executable, other, {"DATABASE_NAME": str(tmp_path / "elsewhere.db")}) is False
    assert not (other / DATABASE_FILE).exists()


def test_bad_token_is_a_clear_error(label_studio: LocalLabelStudio, project: Project) -> None:
    with (
        LabelStudioClient(label_studio.url, "not-a-real-token", retries=0) as client,
        pytest.raises(LabelStudioError, match=r"GET .*/api/projects/\d+/ -> 401"),
    ):
        client.get_project(project.id)


def test_missing_project_is_a_clear_error(ls_client: LabelStudioClient) -> None:
    with pytest.raises(LabelStudioError, match="404"):
        ls_client.get_project(999_999)


def _sample_folder(folder: Path) -> list[Path]:
    return [write_image(folder, s.name, s.data) for s in make_samples()]


def test_import_only_new_images_and_every_url_form_matches(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    paths = _sample_folder(tmp_path)
    odd = write_image(tmp_path, "My Photo (1).jpg", make_samples()[0].data)  # renamed by the upload
    refs = [
        "s3://bucket/deep/path/s3_image.jpg",
        "gs://bucket/gs_image.png",
        "azure-blob://container/dir/azure_image.jpeg",
        "/data/local-files/?d=photos%2Fsub%2Flocal%20image.jpg",
        "https://bucket.s3.amazonaws.com/k/presigned.jpg?X-Amz-Signature=abc&X-Amz-Expires=60",
        "https://example.com/images/Encoded%20Name.JPG",
    ]
    images = [str(p) for p in [*paths, odd]] + refs
    first = import_images(ls_client, project.id, "image", images, list(ls_client.iter_tasks(project.id)))
    assert set(first.created) == set(images)
    tasks = list(ls_client.iter_tasks(project.id))
    assert len(tasks) == len(images)
    uploaded = next(t for t in tasks if t.id == first.created[str(odd)])
    assert uploaded.image_ref("image").endswith("-My_Photo_1.jpg")  # Label Studio's real renaming

    # A rerun imports nothing: every image is found in the project.
    second = import_images(ls_client, project.id, "image", images, tasks)
    assert second.created == {}
    assert second.present == first.created

    # The names users have locally match every URL form.
    local_names = [p.name for p in paths] + [
        "My Photo (1).jpg",
        "s3_image.jpg",
        "gs_image.png",
        "AZURE_IMAGE.jpeg",
        "local image.jpg",
        "presigned.jpg",
        "Encoded Name.JPG",
    ]
    result = match_files(local_names, [(t.id, t.image_ref("image")) for t in tasks])
    assert len(result.matches) == len(images)
    assert all(m.how == "exact" for m in result.matches)
    assert not result.unmatched_files and not result.unmatched_tasks


def test_iter_tasks_pages_past_the_end(ls_client: LabelStudioClient, project: Project) -> None:
    ls_client.import_tasks(project.id, [{"data": {"image": f"s3://b/{i}.jpg"}} for i in range(7)])
    for page_size in (1, 2, 3, 7, 100):
        assert len(list(ls_client.iter_tasks(project.id, page_size=page_size))) == 7


def _records(ls_client: LabelStudioClient, project: Project, folder: Path) -> list[PredictionRecord]:
    paths = _sample_folder(folder)
    report = import_images(ls_client, project.id, "image", [str(p) for p in paths], [])
    return [
        PredictionRecord(
            image=read_image_info(p), detections=s.detections, uri=str(p), task_id=report.created[str(p)]
        )
        for p, s in zip(paths, make_samples(), strict=True)
    ]


def test_post_is_idempotent_and_overwrite_replaces(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    records = _records(ls_client, project, tmp_path)
    batch = build_batch(records, project.config, LabelMap({"car": "civilian vehicle"}), "v1")
    assert batch.unmatched_labels == {"dog": 1} and not batch.errors

    first = post_predictions(ls_client, project.id, batch.predictions, "v1", _versions(ls_client, project))
    assert first.created == 4 and first.requests == 1
    again = post_predictions(ls_client, project.id, batch.predictions, "v1", _versions(ls_client, project))
    assert again.created == 0 and sorted(again.skipped) == sorted(batch.predictions)
    assert ls_client.model_versions(project.id) == {"v1": 4}

    # Overwrite every task: one bulk delete, then the same number back.
    replaced = post_predictions(
        ls_client, project.id, batch.predictions, "v1", _versions(ls_client, project), overwrite=True
    )
    assert (replaced.replaced, replaced.created) == (4, 4)
    assert ls_client.model_versions(project.id) == {"v1": 4}

    # Overwrite some tasks only: the others keep their predictions.
    some = dict(list(batch.predictions.items())[:2])
    partial = post_predictions(
        ls_client, project.id, some, "v1", _versions(ls_client, project), overwrite=True
    )
    assert (partial.replaced, partial.created) == (2, 2)
    assert ls_client.model_versions(project.id) == {"v1": 4}

    # Another model version lives beside it; a dry run posts nothing.
    dry = post_predictions(
        ls_client, project.id, batch.predictions, "v2", _versions(ls_client, project), dry_run=True
    )
    assert dry.created == 4 and dry.requests == 0
    assert ls_client.model_versions(project.id) == {"v1": 4}

    # What Label Studio stored is what was sent, masks included.
    task = next(t for t in ls_client.iter_tasks(project.id, full=True) if t.id == records[0].task_id)
    stored = task.predictions[0]["result"]
    sent = batch.predictions[records[0].task_id]["result"]
    assert [r["id"] for r in stored] == [r["id"] for r in sent]
    brush = next(r for r in stored if r["type"] == "brushlabels")
    mask = brush_to_mask(brush["value"]["rle"], 480, 640)
    assert np.array_equal(mask, coco_to_mask(make_samples()[0].detections.masks[0]))  # type: ignore[arg-type]


def test_malformed_predictions_are_reported_per_image(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    records = _records(ls_client, project, tmp_path)
    wrong_mask = records[1].detections.replace(
        masks=({"size": [10, 10], "counts": [100]},) * len(records[1].detections)
    )
    outside = Detections(
        xyxy=[[5000, 5000, 6000, 6000], [10, 10, 50, 50]], scores=[0.9, 0.8], labels=("person", "unicorn")
    )
    broken = [
        records[0],
        PredictionRecord(records[1].image, wrong_mask, uri=records[1].uri, task_id=records[1].task_id),
        PredictionRecord(records[2].image, outside, uri=records[2].uri, task_id=records[2].task_id),
        records[3],
    ]
    batch = build_batch(broken, project.config, LabelMap({"car": "civilian vehicle"}), "v1")
    assert [(Path(e.file).name, e.stage) for e in batch.errors] == [("scene_2.jpg", "convert")]
    assert batch.unmatched_labels == {"unicorn": 1, "dog": 1}
    assert batch.dropped["outside image"] == 1
    posted = post_predictions(ls_client, project.id, batch.predictions, "v1", _versions(ls_client, project))
    assert posted.created == 3


def test_reports(tmp_path: Path) -> None:
    path = tmp_path / "unmatched_labels.csv"
    append_unmatched_labels(path, 7, "v1", {"dog": 2, "unicorn": 1})
    append_unmatched_labels(path, 7, "v2", {"dog": 1})
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["timestamp", "project", "model_version", "label", "count"]
    assert [r[1:] for r in rows[1:]] == [
        ["7", "v1", "dog", "2"],
        ["7", "v1", "unicorn", "1"],
        ["7", "v2", "dog", "1"],
    ]

    result = match_files(
        ["a.jpg", "b.jpg", "b.JPG", "zzz.png"],
        [(1, "s3://x/a.jpg"), (2, "s3://x/b.jpg"), (3, "s3://x/q.jpg")],
    )
    assert write_unmatched(tmp_path / "unmatched.csv", result) == 5
    reasons = {
        (r["kind"], r["name"]): r["reason"] for r in csv.DictReader((tmp_path / "unmatched.csv").open())
    }
    assert reasons[("file", "b.JPG")].startswith("ambiguous: 2 files")
    assert reasons[("task", "s3://x/q.jpg")] == "no file with this name"

    out = tmp_path / "payloads"
    written = write_payloads(
        out, [("../../etc/passwd", 1, {"a": 1}), ("/abs/.hidden.jpg", 2, {}), ("", 3, {})]
    )
    assert [p.name for p in written] == ["passwd.task1.json", "hidden.jpg.task2.json", "unnamed.task3.json"]
    assert all(p.parent == out.resolve() for p in written)
    assert json.loads(written[0].read_text()) == {"a": 1}


def _annotate(client: LabelStudioClient, task_id: int, mask: np.ndarray, box: tuple[float, ...]) -> None:
    height, width = mask.shape
    common = {"to_name": "image", "original_width": width, "original_height": height, "image_rotation": 0}
    x, y, w, h = box
    client.create_annotation(
        task_id,
        [
            {
                "id": "r1",
                "type": "rectanglelabels",
                "from_name": "label",
                **common,
                "value": {
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                    "rotation": 0,
                    "rectanglelabels": ["person"],
                },
            },
            {
                "id": "m1",
                "type": "brushlabels",
                "from_name": "mask",
                **common,
                "value": {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": ["civilian vehicle"]},
            },
        ],
        lead_time=4.5,
    )


def test_pull_back_to_coco_and_table_incrementally(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    ids = ls_client.import_tasks(project.id, [{"data": {"image": f"s3://b/img{i}.jpg"}} for i in range(3)])
    rng = np.random.default_rng(3)
    mask = (rng.random((48, 64)) > 0.7).astype(np.uint8)
    box = (12.345678, 20.5, 33.3333333, 41.0)
    _annotate(ls_client, ids[0], mask, box)
    cancelled = ls_client.create_annotation(ids[1], [], was_cancelled=True)
    assert cancelled["was_cancelled"]

    out = tmp_path / "pull"
    report = pull_annotations(ls_client, project.id, out, formats=("coco", "parquet", "csv"))
    assert report.fetched == 3 and report.stored == 2
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert [c["name"] for c in coco["categories"]][:3] == ["civilian vehicle", "person", "traffic light"]
    assert [i["file_name"] for i in coco["images"]] == ["img0.jpg"]
    rect, brush = coco["annotations"]
    expected = [box[0] * 64 / 100, box[1] * 48 / 100, box[2] * 64 / 100, box[3] * 48 / 100]
    assert rect["bbox"] == pytest.approx(expected, rel=1e-6)
    assert np.array_equal(coco_to_mask(brush["segmentation"]), mask)
    assert brush["area"] == mask.sum()
    table = pd.read_parquet(out / "regions.parquet")
    assert list(table["type"]) == ["rectanglelabels", "brushlabels"]
    assert table["lead_time"].tolist() == [4.5, 4.5]
    assert len(pd.read_csv(out / "regions.csv")) == 2

    # Nothing changed: the next pull fetches nothing. One new annotation: only that task.
    assert pull_annotations(ls_client, project.id, out).fetched == 0
    _annotate(ls_client, ids[2], mask, box)
    again = pull_annotations(ls_client, project.id, out)
    assert again.fetched == 1 and again.regions == 4


def test_latest_annotation_or_all_annotators(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    (task_id,) = ls_client.import_tasks(project.id, [{"data": {"image": "s3://b/two.jpg"}}])
    mask = np.zeros((10, 10), np.uint8)
    _annotate(ls_client, task_id, mask | 1, (1, 1, 5, 5))
    _annotate(ls_client, task_id, mask | 1, (2, 2, 5, 5))
    latest = pull_annotations(ls_client, project.id, tmp_path / "a", formats=("csv",))
    every = pull_annotations(ls_client, project.id, tmp_path / "b", formats=("csv",), all_annotators=True)
    assert (latest.regions, every.regions) == (2, 4)
    table = pd.read_csv(tmp_path / "a" / "regions.csv")
    assert table.loc[table["type"] == "rectanglelabels", "x"].tolist() == pytest.approx([0.2])
