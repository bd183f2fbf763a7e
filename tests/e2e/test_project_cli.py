"""`project create` -> `run --show-predictions --task-data` -> annotate through the API -> `pull`."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from prelabel.core.errors import LabelConfigError
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.projects import build_label_config
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.records import COCO_KEYPOINTS
from tests.conftest import run_prelabel


def _prelabel(server: LocalLabelStudio, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PRELABEL_LS_URL": server.url, "PRELABEL_LS_API_KEY": server.legacy_token.get_secret_value()}
    return run_prelabel(*args, cwd=cwd, env=env)


def test_built_configs_are_what_prelabel_fills() -> None:
    xml = build_label_config(
        ["car", "person"],
        ["box", "mask", "polygon"],
        keypoints=COCO_KEYPOINTS,
        choices=["day", "night"],
        choices_per_region=True,
        text=True,
    )
    config = parse_label_config(xml)
    assert config.require("RectangleLabels", "boxes").name == "label"
    assert config.require("BrushLabels", "masks").labels == ("car", "person")
    assert config.require("KeyPointLabels", "kp").labels == COCO_KEYPOINTS and len(COCO_KEYPOINTS) == 17
    assert config.require("Choices", "c").per_region and config.require("TextArea", "t").per_region
    for bad in ([["car", "car"], ["box"]], [["car"], ["cube"]], [[], ["box"]], [[], []]):
        with pytest.raises(LabelConfigError):
            build_label_config(*bad)


def test_create_run_annotate_pull(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    args = [
        "project",
        "create",
        "--title",
        "cli made",
        "--labels",
        "text,person",
        "--tools",
        "box,polygon",
        "--keypoints",
        "nose,tail",
        "--choices",
        "street,indoor",
        "--text",
    ]
    done = _prelabel(label_studio, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    project_id = int(done.stdout.strip().splitlines()[-1])

    rows = []
    for i, sample in enumerate(make_samples()):
        (tmp_path / sample.name).write_bytes(sample.data)
        rows.append(
            {"uri": str(tmp_path / sample.name), "label": "cat" if i % 2 else "dog", "camera": f"c{i}"}
        )
    with (tmp_path / "photos.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["uri", "label", "camera"])
        writer.writeheader()
        writer.writerows(rows)

    args = [
        "run",
        "--manifest",
        "photos.csv",
        "--project-id",
        str(project_id),
        "--model",
        "ocr",
        "--import-new",
        "--show-predictions",
        "--task-data",
        "label,camera",
        "--model-version",
        "ocr-e2e",
        "--output-dir",
        "out",
    ]
    done = _prelabel(label_studio, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    project = ls_client.request("GET", f"/api/projects/{project_id}/").json()
    assert project["model_version"] == "ocr-e2e" and project["show_collab_predictions"] is True

    tasks = list(ls_client.iter_tasks(project_id, full=True))
    by_name = {t.image_ref("image").rsplit("-", 1)[-1]: t for t in tasks}
    assert {n: (t.data["label"], t.data["camera"]) for n, t in by_name.items()} == {
        f"scene_{i + 1}.jpg": (r["label"], r["camera"]) for i, r in enumerate(rows)
    }
    assert all(t.data["image"].startswith(f"/data/upload/{project_id}/") for t in tasks)
    assert all("ocr-e2e" in t.model_versions for t in tasks)
    cats = {
        "filters": {
            "conjunction": "and",
            "items": [
                {"filter": "filter:tasks:data.label", "operator": "equal", "type": "String", "value": "cat"}
            ],
        }
    }
    listing = ls_client.request(
        "GET", "/api/tasks", params={"project": project_id, "query": json.dumps(cats)}
    )
    assert {t["data"]["camera"] for t in listing.json()["tasks"]} == {"c1", "c3"}  # the data manager filters

    sideways = by_name["scene_3.jpg"]  # stored 480x640 with EXIF orientation 6: displayed 640x480
    common = {"to_name": "image", "original_width": 640, "original_height": 480, "image_rotation": 0}
    box = {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0}
    ls_client.create_annotation(
        sideways.id,
        [
            {
                "id": "b",
                "type": "rectanglelabels",
                "from_name": "label",
                **common,
                "value": box | {"rectanglelabels": ["person"]},
            },
            {
                "id": "b",
                "type": "textarea",
                "from_name": "transcription",
                **common,
                "value": box | {"text": ["hello"]},
            },
            {
                "id": "p",
                "type": "polygonlabels",
                "from_name": "polygon",
                **common,
                "value": {"points": [[50, 50], [75, 50], [60, 90]], "polygonlabels": ["text"]},
            },
            {
                "id": "k",
                "type": "keypointlabels",
                "from_name": "keypoints",
                "parentID": "b",
                **common,
                "value": {"x": 25, "y": 25, "width": 1, "keypointlabels": ["nose"]},
            },
            {
                "id": "c",
                "type": "choices",
                "from_name": "choice",
                "to_name": "image",
                "value": {"choices": ["indoor"]},
            },
        ],
    )
    done = _prelabel(
        label_studio,
        "pull",
        "--project-id",
        str(project_id),
        "--output-dir",
        "export",
        "--format",
        "coco",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    coco = json.loads((tmp_path / "export" / "annotations.coco.json").read_text())
    person = next(a for a in coco["annotations"] if "keypoints" in a)
    assert person["bbox"] == pytest.approx([64, 96, 192, 192])
    assert person["keypoints"] == pytest.approx([160, 120, 2, 0, 0, 0])
    assert person["attributes"] == {"transcription": ["hello"], "choice": ["indoor"], "rotation": 0.0}
    polygon = next(a for a in coco["annotations"] if a["segmentation"])
    assert polygon["segmentation"] == [pytest.approx([320, 240, 480, 240, 384, 432])]
    assert coco["images"][0]["attributes"] == {"choice": ["indoor"]}

    done = _prelabel(label_studio, "project", "show", str(project_id), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tasks: 4   annotations: 1" in done.stdout and "ocr-e2e: 4" in done.stdout
    assert "<KeyPointLabels name='keypoints'>: nose, tail" in done.stdout
