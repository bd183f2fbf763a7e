"""Grounding DINO -> SAM 2 from tiny random-weight checkpoints loaded through from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prelabel.convert.masks import coco_size, coco_to_brush
from prelabel.errors import SettingsError
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.models import ImageItem, create_model
from prelabel.models.grounded_sam2 import build_prompt
from prelabel.pipeline import project_prompt
from prelabel.records import Detections
from prelabel.samples import LABEL_CONFIG
from tests.conftest import random_image_item

CLASSES = ["car", "person", "stop sign"]
# Random weights score everything high: thresholds at 0 keep boxes and masks to compare.
OPEN = {"box_threshold": 0.0, "text_threshold": 0.0, "mask_score_threshold": 0.0, "device": "cpu"}


def test_prompt_spans_cover_each_class() -> None:
    prompt, spans = build_prompt(["Car", "stop  sign", "traffic.light"])
    assert prompt == "car . stop sign . traffic light ."
    assert [prompt[a:b] for a, b in spans] == ["car", "stop sign", "traffic light"]
    with pytest.raises(SettingsError, match="no words"):
        build_prompt(["car", " . "])


def test_batched_equals_one_at_a_time(tiny_gsam2: dict[str, str]) -> None:
    items = [random_image_item(i, (80, 60) if i % 2 else (64, 64)) for i in range(5)]
    model = create_model("grounded-sam2", classes=CLASSES, batch_size=4, box_chunk=7, **tiny_gsam2, **OPEN)
    together = model.predict(items)
    alone = [model.predict([item])[0] for item in items]
    masks = 0
    for a, b, item in zip(together, alone, items, strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections)
        assert len(a) == 20  # every query kept at threshold 0; more boxes than one decoder chunk
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        assert a.labels == b.labels and set(a.labels) <= set(CLASSES)
        assert a.masks == b.masks
        width, height = item.info.width, item.info.height
        assert (
            (a.xyxy >= 0).all() and (a.xyxy[:, [0, 2]] <= width).all() and (a.xyxy[:, [1, 3]] <= height).all()
        )
        assert list(a.scores) == sorted(a.scores, reverse=True)
        for mask in a.masks:
            if mask is not None:
                masks += 1
                assert coco_size(mask) == (height, width)
                assert sum(coco_to_brush(mask)) > 0
    assert masks > 0


def test_multiword_class_maps_to_one_label_and_text_threshold_applies(tiny_gsam2: dict[str, str]) -> None:
    model = create_model("grounded-sam2", classes="stop sign", segment=False, **tiny_gsam2, **OPEN)
    (found,) = model.predict([random_image_item(3, (64, 48))])
    assert isinstance(found, Detections) and set(found.labels) == {"stop sign"} and len(found) == 20
    strict = create_model("grounded-sam2", classes="stop sign", segment=False, **tiny_gsam2,
                          **{**OPEN, "text_threshold": 1.0})  # fmt: skip
    (none,) = strict.predict([random_image_item(3, (64, 48))])
    assert isinstance(none, Detections) and len(none) == 0


def test_mask_score_threshold_drops_and_counts(tiny_gsam2: dict[str, str]) -> None:
    model = create_model(
        "grounded-sam2", classes=CLASSES, **tiny_gsam2, **{**OPEN, "mask_score_threshold": 1.01}
    )
    found = model.predict([random_image_item(1, (64, 48)), random_image_item(2, (64, 48))])
    assert all(isinstance(f, Detections) and len(f) == 20 and set(f.masks) == {None} for f in found)
    assert model.drain_counts() == {"masks below the mask score": 40}
    assert model.drain_counts() == {}


def test_detection_only_skips_sam_and_changes_the_signature(tiny_gsam2: dict[str, str]) -> None:
    boxes = create_model("grounded-sam2", classes=CLASSES, segment=False, detector=tiny_gsam2["detector"],
                         segmenter="/nowhere", **OPEN)  # fmt: skip
    (found,) = boxes.predict([random_image_item(4, (64, 48))])
    assert isinstance(found, Detections) and set(found.masks) == {None}
    top = create_model(
        "grounded-sam2", classes=CLASSES, segment=False, max_detections=3, **tiny_gsam2, **OPEN
    )
    (best,) = top.predict([random_image_item(4, (64, 48))])
    assert isinstance(best, Detections) and np.array_equal(best.xyxy, found.xyxy[:3])
    full = create_model("grounded-sam2", classes=CLASSES, **tiny_gsam2, **OPEN)
    assert boxes.signature().key != full.signature().key
    assert full.signature().params["prompt"] == "car . person . stop sign ."
    other = create_model("grounded-sam2", classes=["car"], **tiny_gsam2, **OPEN)
    assert other.signature().key != full.signature().key


def test_clear_errors(tiny_gsam2: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="needs classes"):
        create_model("grounded-sam2", **tiny_gsam2, **OPEN).predict([random_image_item(0, (32, 32))])
    with pytest.raises(SettingsError, match="/nowhere"):
        create_model("grounded-sam2", classes="car", detector="/nowhere", device="cpu").predict(
            [random_image_item(0, (32, 32))]
        )
    many = [f"car {i}" for i in range(20)]  # the tiny model reads 32 tokens
    with pytest.raises(SettingsError, match="pass fewer classes"):
        create_model("grounded-sam2", classes=many, **tiny_gsam2, **OPEN).predict(
            [random_image_item(0, (32, 32))]
        )
    with pytest.raises(SettingsError, match="dtype"):
        create_model("grounded-sam2", dtype="int8")


def test_bad_image_is_that_images_error(tiny_gsam2: dict[str, str]) -> None:
    bad = ImageItem(
        uri="bad.png", data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, info=random_image_item(0, (8, 8)).info
    )
    results = create_model("grounded-sam2", classes=CLASSES, **tiny_gsam2, **OPEN).predict(
        [bad, random_image_item(2, (32, 32))]
    )
    assert not isinstance(results[0], Detections) and "bad.png" in str(results[0])
    assert isinstance(results[1], Detections)


def test_prompt_from_the_projects_labels_through_the_label_map() -> None:
    labels = parse_label_config(LABEL_CONFIG).region_labels
    assert labels == ("civilian vehicle", "person", "traffic light", "text")
    mapping = LabelMap({"car": "civilian vehicle", "truck": "civilian vehicle"})
    options = project_prompt("grounded-sam2", {"device": "cpu"}, labels, mapping)
    assert options == {"device": "cpu", "classes": ["car", "truck", "person", "traffic light", "text"]}
    assert project_prompt("grounded-sam2", {"classes": "dog"}, labels, mapping) == {"classes": "dog"}
    assert project_prompt("detr", {}, labels, mapping) == {}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_bf16_matches_cpu_boxes(tiny_gsam2: dict[str, str]) -> None:
    items = [random_image_item(i, (96, 64)) for i in range(4)]
    cpu = create_model("grounded-sam2", classes=CLASSES, **tiny_gsam2, **OPEN).predict(items)
    gpu = create_model("grounded-sam2", classes=CLASSES, **tiny_gsam2, **{**OPEN, "device": "cuda"}).predict(
        items
    )
    for a, b in zip(cpu, gpu, strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections) and len(a) == len(b)
        assert set(b.labels) <= set(CLASSES)
        np.testing.assert_allclose(np.sort(a.xyxy, 0), np.sort(b.xyxy, 0), atol=2.0)
