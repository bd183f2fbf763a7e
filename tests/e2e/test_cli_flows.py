"""The ``prelabel`` commands that run flows, as a user runs them (subprocesses)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from prelabel.convert.masks import mask_to_brush
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.predict.models import create_model
from tests.conftest import run_prelabel


def _prelabel(
    server: LocalLabelStudio, *args: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **(extra_env or {}),
        "PRELABEL_LS_URL": server.url,
        "PRELABEL_LS_API_KEY": server.personal_token.get_secret_value(),  # the PAT path, end to end
    }
    return run_prelabel(*args, cwd=cwd, env=env)


def test_infer_post_run_pull(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for sample in make_samples():
        (images / sample.name).write_bytes(sample.data)

    done = _prelabel(
        label_studio, "infer", "--input-dir", "images", "--model", "ocr", "--output-dir", "raw", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "raw").glob("**/*.prelabel.json"))) == 4

    args = [
        "post",
        "--input-dir",
        "images",
        "--raw-dir",
        "raw",
        "--project-id",
        str(project.id),
        "--model-version",
        "ocr-raw",
        "--import-new",
        "--output-dir",
        "out",
    ]
    done = _prelabel(label_studio, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| predictions posted | 4 |" in done.stdout

    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    args = [
        "run",
        "--input-dir",
        "images",
        "--project-id",
        str(project.id),
        "--model",
        "ocr",
        "--model-option",
        "min_score=0.3",
        "--import-new",
        "--output-dir",
        "out",
    ]
    done = _prelabel(label_studio, *args, cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]  # one image failed: exit 1, the rest posted
    assert "| predictions posted | 4 |" in done.stdout
    assert "broken.jpg" in (tmp_path / "out" / "errors.csv").read_text()
    # no --model-version: the model's name and the first 8 hex digits of its signature's key
    default = f"ocr-{create_model('ocr', min_score=0.3).signature().key[:8]}"
    assert f"model version `{default}`" in done.stdout
    assert ls_client.model_versions(project.id) == {"ocr-raw": 4, default: 4}

    task = next(iter(ls_client.iter_tasks(project.id)))
    mask = np.ones((48, 64), np.uint8)
    common = {"to_name": "image", "original_width": 64, "original_height": 48, "image_rotation": 0}
    ls_client.create_annotation(
        task.id,
        [
            {
                "id": "m",
                "type": "brushlabels",
                "from_name": "mask",
                **common,
                "value": {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": ["person"]},
            }
        ],
    )
    done = _prelabel(
        label_studio,
        "pull",
        "--project-id",
        str(project.id),
        "--output-dir",
        "export",
        "--format",
        "coco",
        "--format",
        "csv",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "export" / "annotations.coco.json").exists()
    assert (tmp_path / "export" / "regions.csv").read_text().count("brushlabels") == 1

    bad = _prelabel(
        label_studio,
        "pull",
        "--project-id",
        str(project.id),
        "--output-dir",
        "x",
        "--format",
        "xml",
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "use coco, parquet, csv or mot" in bad.stderr


def test_models_and_help(label_studio: LocalLabelStudio, tmp_path: Path) -> None:
    done = _prelabel(label_studio, "models", cwd=tmp_path)
    assert "ocr: ocr" in done.stdout and "raw-files:" in done.stdout
    for command in ("run", "post", "infer", "pull", "demo", "convert", "ingest", "export"):
        shown = _prelabel(label_studio, command, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and "Example" in shown.stdout, command


def test_run_with_dinox(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    from tests.support.dinox_server import TOKEN, dinox_server

    images = tmp_path / "images"
    images.mkdir()
    for sample in make_samples():
        (images / sample.name).write_bytes(sample.data)
    (tmp_path / "map.json").write_text('{"car": "civilian vehicle"}')
    with dinox_server() as (url, _):
        args = [
            "run",
            "--input-dir",
            "images",
            "--project-id",
            str(project.id),
            "--model",
            "dinox",
            "--model-option",
            "poll_interval=0.01",
            "--model-option",
            "classes=car.person",
            "--label-map",
            "map.json",
            "--import-new",
            "--model-version",
            "dinox-cli",
        ]
        env = {"PRELABEL_DINOX_TOKEN": TOKEN, "PRELABEL_DINOX_BASE_URL": url}
        done = _prelabel(label_studio, *args, cwd=tmp_path, extra_env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ls_client.model_versions(project.id) == {"dinox-cli": 4}
    assert TOKEN not in done.stdout + done.stderr


def test_run_with_local_models(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    project: Project,
    tmp_path: Path,
    tiny_detr: Path,
    tiny_gsam2: dict[str, str],
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for sample in make_samples():
        (images / sample.name).write_bytes(sample.data)
    runs = {
        "detr": [f"checkpoint={tiny_detr}", "threshold=0.0"],
        "grounded-sam2": [
            *(f"{k}={v}" for k, v in tiny_gsam2.items()),
            "box_threshold=0.0",
            "text_threshold=0.0",
            "mask_score_threshold=0.0",
            "classes=car,person",
        ],
    }
    for model, options in runs.items():
        args = [
            "run",
            "--input-dir",
            "images",
            "--project-id",
            str(project.id),
            "--model",
            model,
            "--import-new",
            "--model-version",
            f"{model}-cli",
            *(f"--model-option={o}" for o in options),
        ]
        done = _prelabel(label_studio, *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    assert ls_client.model_versions(project.id) == {"detr-cli": 4, "grounded-sam2-cli": 4}


def test_images_come_from_exactly_one_place(label_studio: LocalLabelStudio, tmp_path: Path) -> None:
    for extra in ([], ["--input-dir", "a", "--manifest", "m.csv"]):
        done = _prelabel(label_studio, "run", "--project-id", "1", "--model", "ocr", *extra, cwd=tmp_path)
        assert done.returncode == 2 and "exactly one of --input-dir and --manifest" in done.stderr
