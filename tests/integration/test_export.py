"""Pseudo-label export: COCO JSON per batch, PNG masks, images; resumable; S3 (moto) and folders."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prelabel.convert.masks import coco_to_mask
from prelabel.core.settings import load_settings
from prelabel.ingest.samples import make_samples
from prelabel.records import save_raw_file
from prelabel.store.s3 import s3_client
from tests.conftest import run_prelabel, write_samples


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "PRELABEL_S3_ENDPOINT_URL": s3_endpoint,
        "PRELABEL_S3_REGION": "us-east-1",
        "PRELABEL_S3_ACCESS_KEY_ID": "k",
        "PRELABEL_S3_SECRET_ACCESS_KEY": "s",
    }
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _export(
    tmp_path: Path, target: str, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    args = [
        "export",
        "--input-dir",
        str(tmp_path / "images"),
        "--model",
        "raw-files",
        "--to",
        target,
        "--batch-size",
        "3",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output-dir",
        str(tmp_path / "out"),
        *extra,
    ]
    return run_prelabel(*args, env=env)


def test_export_to_s3_then_resume(tmp_path: Path, s3_env: dict[str, str]) -> None:
    images = tmp_path / "images"
    images.mkdir()
    samples = write_samples(images)
    (tmp_path / "map.json").write_text('{"car": "civilian vehicle"}')
    client = s3_client(load_settings())
    # its own bucket: other tests of the session write theirs to the same S3 server
    client.create_bucket(Bucket="resume")

    first = _export(
        tmp_path, "s3://resume/run1", s3_env, "--with-images", "--label-map", str(tmp_path / "map.json")
    )
    assert first.returncode == 0, first.stderr[-2000:]
    objects = {o["Key"]: o for o in client.list_objects_v2(Bucket="resume")["Contents"]}
    masks = sum(m is not None for s in samples for m in s.detections.masks)
    assert sum(k.startswith("run1/masks/") for k in objects) == masks > 0
    assert sum(k.startswith("run1/images/") for k in objects) == 4
    coco_keys = sorted(k for k in objects if k.startswith("run1/coco/"))
    assert coco_keys == ["run1/coco/batch_00001.json", "run1/coco/batch_00002.json"]
    batches = [json.loads(client.get_object(Bucket="resume", Key=k)["Body"].read()) for k in coco_keys]
    assert batches[0]["categories"] == batches[1]["categories"][: len(batches[0]["categories"])]
    names = {c["name"] for c in batches[1]["categories"]}
    assert "civilian vehicle" in names and "car" not in names
    ids = [a["id"] for b in batches for a in b["annotations"]]
    assert len(set(ids)) == len(ids) == sum(len(s.detections) for s in samples)
    assert all(a["id"] // 10_000 == a["image_id"] for b in batches for a in b["annotations"])
    assert [i["id"] for b in batches for i in b["images"]] == [1, 2, 3, 4]
    with_mask = next(a for b in batches for a in b["annotations"] if a.get("mask_file"))
    png = client.get_object(Bucket="resume", Key=f"run1/{with_mask['mask_file']}")["Body"].read()
    decoded = np.asarray(Image.open(io.BytesIO(png))) > 0
    assert np.array_equal(decoded, coco_to_mask(with_mask["segmentation"]) > 0)
    image_entry = batches[0]["images"][0]
    stored = client.get_object(Bucket="resume", Key=f"run1/{image_entry['file_name']}")["Body"].read()
    source = (images / Path(image_entry["source"]).name).read_bytes()
    # orientation 1: copied as it is; the sideways sample is written as displayed
    assert (stored == source) == (image_entry["source_orientation"] == 1)
    assert image_entry["image"] == ("copied" if image_entry["source_orientation"] == 1 else "oriented")
    assert "written" in first.stdout

    again = _export(
        tmp_path, "s3://resume/run1", s3_env, "--with-images", "--label-map", str(tmp_path / "map.json")
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 written" in again.stdout and " written," not in again.stdout.replace("0 written,", "")
    keys = (tmp_path / "out" / "export_keys.csv").read_text().splitlines()
    assert sorted(keys[1:]) == sorted(
        k.removeprefix("run1/") for k in objects if not k.startswith("run1/index/")
    )


def test_export_to_a_folder_rewrites_only_what_changed(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    sample = make_samples()[0]
    (images / sample.name).write_bytes(sample.data)
    raw = images / f"{Path(sample.name).stem}_dinox_preannot.json"
    save_raw_file(raw, sample.detections)
    target = tmp_path / "pseudo"
    assert _export(tmp_path, str(target), {}).returncode == 0
    coco = target / "coco" / "batch_00001.json"
    before = coco.read_text()
    save_raw_file(raw, sample.detections[:1])
    done = _export(tmp_path, str(target), {}, "--refresh")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "coco: 1 written" in done.stdout and coco.read_text() != before
    assert len(json.loads(coco.read_text())["annotations"]) == 1
