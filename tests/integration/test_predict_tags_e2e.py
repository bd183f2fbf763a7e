"""`prelabel run` fills every tag of a `prelabel project create` project, against the real Label Studio."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from prelabel.convert.masks import mask_to_coco
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.regions import extract_regions
from prelabel.labelstudio.server import LocalLabelStudio
from tests.conftest import run_prelabel


def _prelabel(server: LocalLabelStudio, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PRELABEL_LS_URL": server.url, "PRELABEL_LS_API_KEY": server.legacy_token.get_secret_value()}
    done = run_prelabel(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _project(server: LocalLabelStudio, cwd: Path, title: str) -> int:
    args = [
        "project",
        "create",
        "--title",
        title,
        "--labels",
        "car,person,text",
        "--tools",
        "box,mask,polygon",
        "--keypoints",
        "coco-17",
        "--choices",
        "day,night",
        "--text",
    ]
    return int(_prelabel(server, *args, cwd=cwd).stdout.strip().splitlines()[-1])


def _run(
    server: LocalLabelStudio, cwd: Path, project_id: int, model: str
) -> subprocess.CompletedProcess[str]:
    """``prelabel run`` on ``cwd/images``, importing them as tasks; model version ``<model>-v1``."""
    args = [
        "run",
        "--input-dir",
        "images",
        "--project-id",
        str(project_id),
        "--model",
        model,
        "--import-new",
        "--model-version",
        f"{model}-v1",
        "--output-dir",
        "out",
    ]
    return _prelabel(server, *args, cwd=cwd)


def _results(client: LabelStudioClient, project_id: int, version: str) -> list[dict]:
    (task,) = client.iter_tasks(project_id, full=True)
    (prediction,) = [p for p in task.predictions if p["model_version"] == version]
    return list(prediction["result"])


def test_raw_files_fill_every_tag(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    project_id = _project(label_studio, tmp_path, "every tag")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (200, 100), (200, 200, 200)).save(images / "scene.jpg")
    mask = np.zeros((100, 200), np.uint8)
    mask[10:30, 20:60] = 1
    mask[15:20, 30:40] = 0  # a hole
    raw = {
        "objects": [
            {"bbox": [20, 10, 60, 30], "score": 0.9, "category": "car", "mask": mask_to_coco(mask)},
            {
                "bbox": [100, 20, 140, 90],
                "score": 0.8,
                "category": "person",
                "keypoints": [
                    {"label": "nose", "x": 120, "y": 30, "score": 0.7},
                    {"label": "tail", "x": 121, "y": 31, "score": 0.7},
                ],
            },
            {
                "bbox": [150, 50, 190, 70],
                "score": 0.6,
                "category": "text",
                "text": "STOP",
                "polygon": [[150, 50], [190, 50], [190, 70], [150, 70]],
            },
        ],
        "choices": [{"label": "day", "score": 0.2}, {"label": "night", "score": 0.7}],
    }
    (images / "scene.json").write_text(json.dumps(raw))
    done = _run(label_studio, tmp_path, project_id, "raw-files")
    results = _results(ls_client, project_id, "raw-files-v1")
    by_id = {(r["id"], r["type"]): r for r in results}
    assert sorted(by_id) == sorted(
        [
            ("det0", "rectanglelabels"),
            ("det0-mask", "brushlabels"),
            ("det0-poly0", "polygonlabels"),
            ("det1", "rectanglelabels"),
            ("det1-kp0", "keypointlabels"),
            ("det2", "rectanglelabels"),
            ("det2", "textarea"),
            ("det2-poly0", "polygonlabels"),
            ("choice", "choices"),
        ]
    )
    assert by_id[("det0-poly0", "polygonlabels")]["value"] == {
        "points": [[10.25, 10.5], [10.25, 29.5], [29.75, 29.5], [29.75, 10.5]],
        "closed": True,
        "polygonlabels": ["car"],
    }
    point = by_id[("det1-kp0", "keypointlabels")]
    assert point["value"] == {"x": 60.0, "y": 30.0, "width": 0.5, "keypointlabels": ["nose"]}
    assert point["parentID"] == "det1"
    rect = by_id[("det2", "rectanglelabels")]["value"]
    assert rect == {
        "x": 75.0,
        "y": 50.0,
        "width": 20.0,
        "height": 20.0,
        "rotation": 0.0,
        "rectanglelabels": ["text"],
    }
    assert by_id[("det2", "textarea")]["value"]["text"] == ["STOP"]
    assert by_id[("choice", "choices")]["value"] == {"choices": ["night"]}
    assert by_id[("det0", "rectanglelabels")]["value"]["rectanglelabels"] == ["car"]
    assert "Tags the model filled on no image" not in done.stdout  # every tag got something
    assert "tail (keypoint)" in (tmp_path / "unmatched_labels.csv").read_text()
    assert "| regions in the predictions | 3 |" in done.stdout
    assert "Left out of the predictions: polygon: hole dropped (1)" in done.stdout  # the mask's hole


def test_ocr_posts_a_rotated_rectangle_with_its_text(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    project_id = _project(label_studio, tmp_path, "rotated text")
    images = tmp_path / "images"
    images.mkdir()
    canvas = Image.new("RGB", (480, 200), "white")
    ImageDraw.Draw(canvas).text((60, 70), "PRELABEL 42", fill="black", font=ImageFont.load_default(size=48))
    canvas.rotate(20, expand=True, fillcolor="white", resample=Image.Resampling.BICUBIC).save(
        images / "sign.jpg"
    )
    done = _run(label_studio, tmp_path, project_id, "ocr")
    results = _results(ls_client, project_id, "ocr-v1")
    (rect,) = [r for r in results if r["type"] == "rectanglelabels"]
    (text,) = [r for r in results if r["type"] == "textarea"]
    assert rect["id"] == text["id"] and text["value"]["text"][0].replace(" ", "") == "PRELABEL42"
    value = rect["value"]
    assert value["rotation"] == pytest.approx(340, abs=3)  # text turned 20 degrees counter-clockwise
    assert {k: text["value"][k] for k in ("x", "y", "width", "height", "rotation")} == {
        k: value[k] for k in ("x", "y", "width", "height", "rotation")
    }
    assert value["width"] * 520 / 100 == pytest.approx(300, abs=25)  # the text line's length, pixels
    assert [r["type"] for r in results].count("polygonlabels") == 1  # the quad itself, as a polygon
    (said,) = [
        line for line in done.stdout.splitlines() if line.startswith("Tags the model filled on no image")
    ]
    for tag in ('<BrushLabels name="mask">', '<KeyPointLabels name="keypoints">', '<Choices name="choice">'):
        assert tag in said  # said once for the run, never an error


def test_a_model_chain_fills_boxes_keypoints_and_choices(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    tmp_path: Path,
    tiny_detr: Path,
    tiny_vitpose: Path,
    tiny_siglip: Path,
) -> None:
    """detr+vitpose+siglip in one run; the choices come from the project's config, not an option."""
    args = [
        "project",
        "create",
        "--title",
        "people",
        "--labels",
        "person",
        "--tools",
        "box",
        "--keypoints",
        "coco-17",
        "--choices",
        "indoor,outdoor",
    ]
    project_id = int(_prelabel(label_studio, *args, cwd=tmp_path).stdout.strip().splitlines()[-1])
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.random.default_rng(3).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "crowd.png")
    options = {
        "detr.checkpoint": tiny_detr,
        "detr.threshold": 0.0,
        "vitpose.checkpoint": tiny_vitpose,
        "vitpose.threshold": -1e9,
        "siglip.checkpoint": tiny_siglip,
        "siglip.threshold": 0.0,
    }
    run = [
        "run",
        "--input-dir",
        "images",
        "--project-id",
        str(project_id),
        "--model",
        "detr+vitpose+siglip",
        *(f"--model-option={key}={value}" for key, value in options.items()),
        "--import-new",
        "--model-version",
        "chain-v1",
        "--output-dir",
        "out",
    ]
    _prelabel(label_studio, *run, cwd=tmp_path)
    results = _results(ls_client, project_id, "chain-v1")
    people = {r["id"] for r in results if r["type"] == "rectanglelabels"}
    points = [r for r in results if r["type"] == "keypointlabels"]
    assert people and points and {p["parentID"] for p in points} <= people
    assert all(0 <= p["value"][axis] <= 100 for p in points for axis in ("x", "y"))
    (choice,) = [r for r in results if r["type"] == "choices"]
    assert choice["value"]["choices"][0] in ("indoor", "outdoor") and len(choice["value"]["choices"]) == 1

    _prelabel(label_studio, *run, cwd=tmp_path)  # a rerun: the cache answers, nothing posted twice
    assert ls_client.model_versions(project_id) == {"chain-v1": 1}


def test_raw_files_fill_per_region_choices_that_read_back_as_region_attributes(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    args = [
        "project",
        "create",
        "--title",
        "parking",
        "--labels",
        "car,person",
        "--tools",
        "box,mask",
        "--choices",
        "parked,moving",
        "--choices-per-region",
    ]
    project_id = int(_prelabel(label_studio, *args, cwd=tmp_path).stdout.strip().splitlines()[-1])
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (200, 100), (200, 200, 200)).save(images / "lot.jpg")
    mask = np.zeros((100, 200), np.uint8)
    mask[20:90, 100:140] = 1
    raw = {
        "objects": [
            {
                "bbox": [20, 10, 60, 30],
                "score": 0.9,
                "category": "car",
                "choices": [
                    {"label": "moving", "score": 0.3},
                    {"label": "parked", "score": 0.8},
                    {"label": "flying", "score": 0.95},
                ],
            },
            {
                "bbox": [100, 20, 140, 90],
                "score": 0.8,
                "category": "person",
                "mask": mask_to_coco(mask),
                "choices": [{"label": "moving", "score": 0.6}],
            },
            {"bbox": [150, 50, 190, 70], "score": 0.7, "category": "car"},
        ],
    }
    (images / "lot.json").write_text(json.dumps(raw))
    done = _run(label_studio, tmp_path, project_id, "raw-files")
    assert "Tags the model filled on no image" not in done.stdout  # boxes, masks and region choices
    assert "flying (region choice)" in (tmp_path / "unmatched_labels.csv").read_text()
    (task,) = ls_client.iter_tasks(project_id, full=True)
    (prediction,) = task.predictions
    by_key = {(r["id"], r["type"]): r for r in prediction["result"]}
    assert [key for key in by_key if key[1] == "choices"] == [("det0", "choices"), ("det1", "choices")]
    rect = by_key[("det0", "rectanglelabels")]["value"]
    assert by_key[("det0", "choices")]["value"] == {
        **{k: v for k, v in rect.items() if k != "rectanglelabels"},
        "choices": ["parked"],
    }
    # the pull side reads a prediction as it reads an annotation (as quality reports do)
    config = ls_client.get_project(project_id).config
    as_annotated = dataclasses.replace(task, annotations=[prediction], predictions=())
    extraction = extract_regions([as_annotated], config)
    assert not extraction.errors and not extraction.task_values
    attributes = {(r.region_id, r.kind): dict(r.attributes) for r in extraction.regions}
    assert attributes == {
        ("det0", "rectanglelabels"): {"choice": ["parked"]},
        ("det1", "rectanglelabels"): {"choice": ["moving"]},
        ("det1-mask", "brushlabels"): {},
        ("det2", "rectanglelabels"): {},
    }


def test_a_chained_siglip_fills_the_projects_per_region_choices(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    tmp_path: Path,
    tiny_detr: Path,
    tiny_siglip: Path,
) -> None:
    """detr+siglip: the options come from the project's perRegion Choices, one result per box."""
    args = [
        "project",
        "create",
        "--title",
        "rooms",
        "--labels",
        "person",
        "--tools",
        "box",
        "--choices",
        "indoor,outdoor",
        "--choices-per-region",
    ]
    project_id = int(_prelabel(label_studio, *args, cwd=tmp_path).stdout.strip().splitlines()[-1])
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.random.default_rng(4).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "room.png")
    options = {
        "detr.checkpoint": tiny_detr,
        "detr.threshold": 0.0,
        "siglip.checkpoint": tiny_siglip,
        "siglip.threshold": 0.0,
    }
    run = [
        "run",
        "--input-dir",
        "images",
        "--project-id",
        str(project_id),
        "--model",
        "detr+siglip",
        *(f"--model-option={key}={value}" for key, value in options.items()),
        "--import-new",
        "--model-version",
        "rooms-v1",
        "--output-dir",
        "out",
    ]
    done = _prelabel(label_studio, *run, cwd=tmp_path)
    assert '<Choices name="choice">' not in done.stdout  # not among the tags filled on no image
    results = _results(ls_client, project_id, "rooms-v1")
    boxes = {r["id"]: r for r in results if r["type"] == "rectanglelabels"}
    choices = {r["id"]: r for r in results if r["type"] == "choices"}
    assert boxes and set(choices) == set(boxes)  # every box classified, on its own id
    for region, result in choices.items():
        assert result["from_name"] == "choice" and len(result["value"]["choices"]) == 1
        assert result["value"]["choices"][0] in ("indoor", "outdoor")
        geometry = {k: v for k, v in boxes[region]["value"].items() if k != "rectanglelabels"}
        assert {k: v for k, v in result["value"].items() if k != "choices"} == geometry
