"""A chain of models from the command line: ``infer`` with detr+vitpose+siglip writes boxes,
keypoints, image choices and per-box choices in its raw files, and they read back."""

from __future__ import annotations

import json
from pathlib import Path

from prelabel.records import load_raw_file
from tests.conftest import random_image_item, run_prelabel, write_image
from tests.unit.predict.models.test_chains import chain_options


def test_infer_writes_keypoints_choices_and_region_choices(
    tiny_detr: Path, tiny_vitpose: Path, tiny_siglip: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        write_image(images, f"{i}.png", random_image_item(i, (64, 64)).data)
    options = [
        f"--model-option={key}={json.dumps(value) if not isinstance(value, str) else value}"
        for key, value in chain_options(tiny_detr, tiny_vitpose, tiny_siglip).items()
    ]
    options.append("--model-option=siglip.region_choices=car,dog")
    done = run_prelabel(
        "infer",
        "--input-dir",
        "images",
        "--model",
        "detr+vitpose+siglip",
        *options,
        "--output-dir",
        "raw",
        "--cache-dir",
        "cache",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted((tmp_path / "raw").glob("**/*.prelabel.json"))
    assert len(files) == 2
    for file in files:
        raw = json.loads(file.read_text())
        assert raw["choices"] and raw["choices"][0]["label"] in ("indoor", "outdoor")
        people = [obj for obj in raw["objects"] if obj["category"] == "person"]
        assert people and all(len(obj["keypoints"]) > 0 for obj in people)
        assert all("keypoints" not in obj for obj in raw["objects"] if obj["category"] != "person")
        classes = [obj["choices"] for obj in raw["objects"] if "choices" in obj]  # each box's own
        assert classes and all(len(c) == 1 and c[0]["label"] in ("car", "dog") for c in classes)
        back = load_raw_file(file)
        assert back.choices and sum(map(bool, back.region_choices)) == len(classes)  # and they read back
