"""The flows end to end: a real Prefect test server and the real Label Studio."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.infer import infer
from flows.params import InferParams, PostParams, PreannotateParams
from flows.post_predictions import post_predictions
from flows.preannotate import preannotate
from prelabel.core.errors import AllImagesFailedError
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.records import save_raw_file
from tests.conftest import write_image

pytestmark = pytest.mark.usefixtures("prefect_server", "label_studio_env")


def _images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sample in make_samples():
        write_image(folder, sample.name, sample.data)
    return folder


def _params(project: Project, tmp_path: Path, **extra: object) -> PreannotateParams:
    values: dict[str, object] = {
        "project_id": project.id,
        "input_dir": str(tmp_path / "images"),
        "model": "ocr",
        "import_new": True,
        "model_version": "ocr-v1",
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
        "unmatched_csv": str(tmp_path / "out" / "unmatched_labels.csv"),
        "batch_size": 2,
    }
    values.update(extra)
    return PreannotateParams.model_validate(values)


def _predictions(client: LabelStudioClient, project: Project, version: str) -> dict[int, int]:
    """Predictions of ``version`` per task."""
    counts: dict[int, int] = {}
    for task in client.iter_tasks(project.id, full=True):
        counts[task.id] = sum(p.get("model_version") == version for p in task.predictions)
    return counts


def test_one_step_then_rerun_then_cache(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    _images(tmp_path / "images")
    first = preannotate(_params(project, tmp_path))
    assert (first.images, first.imported, first.inferred, first.posted, first.failed) == (4, 4, 4, 4, 0)
    assert _predictions(ls_client, project, "ocr-v1") == dict.fromkeys(
        _predictions(ls_client, project, "ocr-v1"), 1
    )
    task = next(iter(ls_client.iter_tasks(project.id, full=True)))
    types = sorted(r["type"] for r in task.predictions[0]["result"])
    assert types == ["rectanglelabels", "textarea"]
    assert Path(first.files["contact sheet"]).exists()  # type: ignore[index]
    assert len(list((tmp_path / "out" / "payloads").glob("*.json"))) == 4

    # A full rerun of the finished project calls no model and posts nothing.
    again = preannotate(_params(project, tmp_path))
    assert (again.skipped, again.inferred, again.cached, again.posted, again.imported) == (4, 0, 0, 0, 0)

    # Predictions gone but cached: posted again from the cache, no model call.
    ls_client.delete_model_version(project.id, "ocr-v1")
    cached = preannotate(_params(project, tmp_path))
    assert (cached.cached, cached.inferred, cached.posted) == (4, 0, 4)
    assert set(_predictions(ls_client, project, "ocr-v1").values()) == {1}


def test_corrupt_image_is_an_error_row_and_the_rest_is_posted(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    folder = _images(tmp_path / "images")
    (folder / "scene_9.jpg").write_bytes(make_samples()[0].data[:300])  # truncated JPEG
    summary = preannotate(_params(project, tmp_path))
    assert (summary.posted, summary.failed) == (4, 1)
    errors = (tmp_path / "out" / "errors.csv").read_text()
    assert "scene_9.jpg" in errors


def test_every_image_failing_fails_the_flow(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(AllImagesFailedError, match="every one of the 1 images failed"):
        preannotate(_params(project, tmp_path))
    assert list(ls_client.iter_tasks(project.id)) == []  # refused before the upload: never a task
    assert 'bad.jpg,import,"bad.jpg: not an image' in (tmp_path / "out" / "errors.csv").read_text().replace(
        str(folder) + "/", ""
    )


def test_killed_midway_then_rerun_has_no_duplicate_and_no_gap(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _images(tmp_path / "images")
    import tasks.labelstudio as ls_tasks

    real = ls_tasks.post_predictions
    calls = {"n": 0}

    def dies_on_second_batch(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("worker killed")  # not an Exception: nothing catches it
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ls_tasks, "post_predictions", dies_on_second_batch)
    with pytest.raises(BaseException, match="worker killed"):
        preannotate(_params(project, tmp_path, batch_size=2))
    monkeypatch.setattr(ls_tasks, "post_predictions", real)
    assert sum(_predictions(ls_client, project, "ocr-v1").values()) == 2

    summary = preannotate(_params(project, tmp_path, batch_size=2))
    assert (summary.skipped, summary.posted) == (2, 2)
    assert set(_predictions(ls_client, project, "ocr-v1").values()) == {1}


def test_two_step_infer_then_post(ls_client: LabelStudioClient, project: Project, tmp_path: Path) -> None:
    images = _images(tmp_path / "images")
    raw = tmp_path / "raw"
    counts = infer(
        InferParams(input_dir=str(images), out=str(raw), model="ocr", cache_dir=str(tmp_path / "c"))
    )
    assert counts.written == 4
    assert sorted(p.name for p in raw.glob("*.prelabel.json"))[0] == "scene_1.jpg.prelabel.json"

    # Step 2 also takes files made by the DINO-X scripts: replace one with boxes + masks.
    (raw / "scene_2.jpg.prelabel.json").unlink()
    save_raw_file(raw / "scene_2_dinox_preannot.json", make_samples()[1].detections)
    params = PostParams.model_validate(
        {
            "project_id": project.id,
            "input_dir": str(images),
            "raw_dir": str(raw),
            "import_new": True,
            "label_map": {"car": "civilian vehicle"},
            "model_version": "dinox-v1",
            "output_dir": str(tmp_path / "out"),
            "unmatched_csv": str(tmp_path / "out" / "unmatched_labels.csv"),
        }
    )
    summary = post_predictions(params)
    assert (summary.posted, summary.failed) == (4, 0)
    assert summary.unmatched_labels == 0  # car -> civilian vehicle; traffic light is a box label
    scene_2 = next(
        t for t in ls_client.iter_tasks(project.id, full=True) if t.image_ref("image").endswith("scene_2.jpg")
    )
    result = scene_2.predictions[0]["result"]
    assert sorted(r["type"] for r in result) == ["brushlabels", "rectanglelabels", "rectanglelabels"]
    rerun = post_predictions(params)
    assert (rerun.posted, rerun.skipped) == (0, 4)
    shutil.rmtree(raw)


def test_one_step_with_dinox(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.dinox_server import TOKEN, dinox_server

    _images(tmp_path / "images")
    with dinox_server() as (url, state):
        state.every = 5  # a fifth of the requests fail transiently on the way
        monkeypatch.setenv("PRELABEL_DINOX_TOKEN", TOKEN)
        monkeypatch.setenv("PRELABEL_DINOX_BASE_URL", url)
        options = {"poll_interval": 0.01, "backoff": 0.01, "rate": 1000.0}
        summary = preannotate(
            _params(
                project,
                tmp_path,
                model="dinox",
                model_options=options,
                model_version="dinox-v1",
                label_map={"car": "civilian vehicle"},
            )
        )
    assert (summary.inferred, summary.posted, summary.failed) == (4, 4, 0)
    task = next(iter(ls_client.iter_tasks(project.id, full=True)))
    assert sorted(r["type"] for r in task.predictions[0]["result"]) == ["brushlabels", "rectanglelabels"]
    assert {r["value"].get("rectanglelabels", ["-"])[0] for r in task.predictions[0]["result"]} >= {
        "civilian vehicle"
    }


def test_one_step_with_detr(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path, detr_says_car: Path, detr_says_dog: Path
) -> None:
    _images(tmp_path / "images")
    unmatched = tmp_path / "out" / "unmatched_labels.csv"
    for checkpoint, version in ((detr_says_car, "detr-car"), (detr_says_dog, "detr-dog")):
        options = {"checkpoint": str(checkpoint), "threshold": 0.5, "device": "cpu"}
        summary = preannotate(
            _params(
                project,
                tmp_path,
                model="detr",
                model_options=options,
                model_version=version,
                label_map={"car": "civilian vehicle"},
            )
        )
        assert (summary.inferred, summary.posted, summary.failed) == (4, 4, 0)
        if version == "detr-car":  # "car" is renamed by the label map: 12 boxes on each task
            assert summary.unmatched_labels == 0 and not unmatched.exists()
        else:  # "dog" is no label of the project: counted and listed, never posted
            assert summary.unmatched_labels == 48
    labels: dict[str, list[str]] = {}
    for task in ls_client.iter_tasks(project.id, full=True):
        for prediction in task.predictions:
            found = labels.setdefault(prediction["model_version"], [])
            found += [r["value"]["rectanglelabels"][0] for r in prediction["result"]]
    assert labels["detr-car"] == ["civilian vehicle"] * 48
    assert labels["detr-dog"] == []  # posted, with no regions
    rows = [line.split(",")[1:] for line in unmatched.read_text().splitlines()[1:]]
    assert rows == [[str(project.id), "detr-dog", "dog", "48"]]


def test_one_step_with_grounded_sam2_prompted_by_the_project(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path, tiny_gsam2: dict[str, str]
) -> None:
    _images(tmp_path / "images")
    options = {
        **tiny_gsam2,
        "box_threshold": 0.0,
        "text_threshold": 0.0,
        "mask_score_threshold": 0.0,
        "device": "cpu",
    }
    summary = preannotate(
        _params(
            project,
            tmp_path,
            model="grounded-sam2",
            model_options=options,
            model_version="gsam2-tiny",
            label_map={"car": "civilian vehicle"},
        )
    )
    assert (summary.inferred, summary.posted, summary.failed, summary.unmatched_labels) == (4, 4, 0, 0)
    tasks = list(ls_client.iter_tasks(project.id, full=True))
    results = [r for t in tasks for p in t.predictions for r in p["result"]]
    boxes = {r["value"]["rectanglelabels"][0] for r in results if r["type"] == "rectanglelabels"}
    brushes = {r["value"]["brushlabels"][0] for r in results if r["type"] == "brushlabels"}
    # the prompt was the project's labels with "car" for "civilian vehicle": every label posts
    assert boxes <= {"civilian vehicle", "person", "traffic light", "text"} and boxes
    assert brushes and brushes <= {"civilian vehicle", "person"}
    counted = set(summary.model_counts or {})
    assert counted <= {"masks below the mask score", "empty masks"}


def test_neighbours_tasks_get_nothing_even_with_fuzzy(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    # Frames 100-103 on disk; the project holds the tasks of frames 101-104 (URLs): only the
    # names that are the same may pair, fuzzy or not, and the pairs made are in matches.csv.
    folder = tmp_path / "images"
    folder.mkdir()
    samples = make_samples()
    for n in range(100, 104):
        write_image(folder, f"frame_{n:06d}.jpg", samples[n % 4].data)
    ls_client.import_tasks(
        project.id, [{"data": {"image": f"http://cam/frame_{n:06d}.jpg"}} for n in range(101, 105)]
    )
    summary = preannotate(_params(project, tmp_path, import_new=False, fuzzy=True, model_version="frames"))
    assert (summary.matched, summary.unmatched_files, summary.unmatched_tasks) == (3, 1, 1)
    posted = {
        t.image_ref("image").rsplit("/", 1)[-1]: t.model_versions for t in ls_client.iter_tasks(project.id)
    }
    assert posted["frame_000104.jpg"] == frozenset()  # the neighbour of frame 103 got nothing
    assert all(posted[f"frame_{n:06d}.jpg"] == {"frames"} for n in range(101, 104))
    assert (tmp_path / "out" / "matches.csv").read_text().splitlines() == [
        "file,task_id,task_image,how,score"
    ]
