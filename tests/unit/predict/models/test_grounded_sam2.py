"""Grounding DINO -> SAM 2 from tiny random-weight checkpoints loaded through from_pretrained."""

from __future__ import annotations

import re
from typing import cast

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment

from prelabel.convert.masks import coco_size, coco_to_brush
from prelabel.core.errors import SettingsError
from prelabel.ingest.samples import LABEL_CONFIG
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.batches import project_prompt
from prelabel.predict.models import ImageItem, create_model
from prelabel.predict.models.grounded_sam2 import GroundedSam2, build_prompt, detector_pixels
from prelabel.records import Detections
from tests.conftest import random_image_item
from tests.support import python_prints

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


# (width, height): the tiny processor resizes to shortest edge 64, longest 96
SIZES = [
    (80, 60),  # plain downscale
    (96, 64),  # already the target size: no resize
    (300, 40),  # extreme landscape: the long edge caps the short one (13 x 96)
    (40, 300),  # extreme portrait
    (200, 130),  # a capped edge whose rounding once differed by a pixel
    (33, 97),  # the capped short edge equals the image's: kept as it is
]


def test_pixels_match_the_processors_pixel_values(tiny_gsam2: dict[str, str]) -> None:
    model = cast(
        GroundedSam2, create_model("grounded-sam2", classes=CLASSES, segment=False, **tiny_gsam2, **OPEN)
    )
    _, processor, _ = model._load()
    rng = np.random.default_rng(0)
    for width, height in SIZES:
        rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        reference = processor(images=Image.fromarray(rgb), text="car .", return_tensors="pt")["pixel_values"]
        ours = detector_pixels(torch.from_numpy(rgb).permute(2, 0, 1)[None], processor.image_processor)
        assert ours.shape == reference.shape, (width, height)
        # the processor rounds its resized pixels to uint8 (one step: 1 / 255 / std = 0.017);
        # measured mean abs difference 0.0044-0.0053 where resized, 0 where not
        difference = (ours - reference).abs()
        assert float(difference.mean()) < 0.008 and float(difference.max()) < 0.035, (width, height)


def test_boxes_scores_labels_match_the_processors_post_processing(tiny_gsam2: dict[str, str]) -> None:
    box_threshold, text_threshold = 0.5, 0.97  # random weights: some boxes dropped by each threshold
    thresholds = {"box_threshold": box_threshold, "text_threshold": text_threshold}
    model = cast(
        GroundedSam2,
        create_model("grounded-sam2", classes=CLASSES, segment=False, **tiny_gsam2, **{**OPEN, **thresholds}),
    )
    detector, processor, _ = model._load()
    words = {name: set(name.split()) for name in CLASSES}
    by_box = by_text = kept = 0
    for seed, (width, height) in enumerate(SIZES):
        rgb = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
        inputs = processor(images=Image.fromarray(rgb), text=build_prompt(CLASSES)[0], return_tensors="pt")
        with torch.inference_mode():
            outputs = detector(**inputs)
        (reference,) = processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=box_threshold,
            text_threshold=text_threshold,
            target_sizes=[(height, width)],
        )
        (ours,) = model.select(outputs.logits, outputs.pred_boxes, (height, width))
        # the reference's phrase: the prompt's tokens above the text threshold; we keep a box
        # when one of them is a class's word, and label it with one of those classes
        phrases = [set(text.replace(".", " ").split()) for text in reference["text_labels"]]
        classed = [i for i, phrase in enumerate(phrases) if any(words[c] & phrase for c in CLASSES)]
        order = sorted(classed, key=lambda i: -float(reference["scores"][i]))
        boxes = reference["boxes"][order].numpy().clip(0, [width, height, width, height])
        np.testing.assert_allclose(ours.scores, reference["scores"][order].numpy(), rtol=1e-6)
        np.testing.assert_allclose(ours.xyxy, boxes.reshape(-1, 4), rtol=1e-5, atol=1e-4)
        assert all(words[label] & phrases[i] for label, i in zip(ours.labels, order, strict=True))
        by_box += int((outputs.logits.sigmoid().amax(-1) <= box_threshold).sum())
        by_text += len(phrases) - len(classed)
        kept += len(ours)
    assert kept > 0 and by_box > 0 and by_text > 0, (kept, by_box, by_text)


def test_multiword_class_maps_to_one_label_and_text_threshold_applies(tiny_gsam2: dict[str, str]) -> None:
    model = create_model("grounded-sam2", classes="stop sign", segment=False, **tiny_gsam2, **OPEN)
    (found,) = model.predict([random_image_item(3, (64, 48))])
    assert isinstance(found, Detections) and set(found.labels) == {"stop sign"} and len(found) == 20
    strict = create_model(
        "grounded-sam2", classes="stop sign", segment=False, **tiny_gsam2, **{**OPEN, "text_threshold": 1.0}
    )
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
    boxes = create_model(
        "grounded-sam2",
        classes=CLASSES,
        segment=False,
        detector=tiny_gsam2["detector"],
        segmenter="/nowhere",
        **OPEN,
    )
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


# Speed settings: each changes how the same sums are computed, not what they are. On CPU in
# float32 the outputs agree within these tolerances (measured: scores within 5e-7, boxes and
# masks identical); the signature (cache key) stays the default's.
SPEED_SETTINGS = {
    # SDPA named explicitly: SAM 2, Grounding DINO's Swin backbone and BERT text encoder
    "sdpa attention": {"attn_implementation": "sdpa"},
    # NHWC strides for the models' 4-d weights and their pixel inputs
    "channels last": {"channels_last": True},
}


def _attention_used(model: GroundedSam2) -> set[str]:
    """The attention implementations the loaded models' (sub-)configs name."""
    detector, _, segmenter = model._load()
    configs = [detector.config, detector.config.text_config, detector.config.backbone_config]
    configs += [segmenter.config, segmenter.config.vision_config, segmenter.config.mask_decoder_config]
    return {config._attn_implementation for config in configs}


def _nhwc(model: GroundedSam2) -> set[bool]:
    """Whether each 4-d weight of the loaded models has channels-last strides (those whose two
    layouts differ: a 1x1 kernel's are the same)."""
    detector, _, segmenter = model._load()
    weights = [p for part in (detector, segmenter) for p in part.parameters() if p.dim() == 4]
    nhwc = [p.is_contiguous(memory_format=torch.channels_last) for p in weights]
    return {last for p, last in zip(weights, nhwc, strict=True) if last != p.is_contiguous()}


@pytest.mark.parametrize("setting", SPEED_SETTINGS)
def test_speed_settings_give_the_defaults_outputs(tiny_gsam2: dict[str, str], setting: str) -> None:
    items = [random_image_item(i, (80, 60) if i % 2 else (64, 64)) for i in range(3)]
    default, faster = (
        cast(GroundedSam2, create_model("grounded-sam2", classes=CLASSES, **tiny_gsam2, **OPEN, **options))
        for options in ({}, SPEED_SETTINGS[setting])
    )
    # the setting took effect on the loaded models
    assert _nhwc(faster) == {setting == "channels last"} and _nhwc(default) == {False}
    assert _attention_used(default) == _attention_used(faster) == {"eager", "sdpa"}
    assert faster.signature() == default.signature()
    masks = 0
    for a, b in zip(faster.predict(items), default.predict(items), strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections) and len(a) == len(b) == 20
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)
        assert a.labels == b.labels and a.masks == b.masks
        masks += sum(m is not None for m in a.masks)
    assert masks > 0


def test_eager_attention_changes_the_scores_and_the_signature(tiny_gsam2: dict[str, str]) -> None:
    """transformers' eager BERT adds Grounding DINO's boolean per-class text mask instead of
    applying it (5.24; its SDPA path applies it), so "eager" is a different model: its own
    cache key. SAM 2's eager attention gives the default's masks for the same boxes."""
    items = [random_image_item(i, (80, 60)) for i in range(2)]
    default, eager = (
        cast(GroundedSam2, create_model("grounded-sam2", classes=CLASSES, **tiny_gsam2, **OPEN, **options))
        for options in ({}, {"attn_implementation": "eager"})
    )
    assert _attention_used(eager) == {"eager"}
    assert eager.signature().key != default.signature().key
    found, changed = (cast(list[Detections], model.predict(items)) for model in (default, eager))
    assert max(float(np.abs(a.scores - b.scores).max()) for a, b in zip(found, changed, strict=True)) > 1e-3
    pixels = [torch.from_numpy(np.array(item.load().rgb)).permute(2, 0, 1) for item in items]
    boxes = [f.xyxy for f in found]
    masks = [model._segment(model._load()[2], pixels, boxes) for model in (default, eager)]
    assert masks[0] == masks[1] and any(m is not None for image in masks[0] for m in image)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("attn_implementation", "flash_attention_2"),  # neither model has it without the flash package
        ("attn_implementation", "SDPA"),  # names are transformers' own, lower case
        ("channels_last", "yes"),  # a string, not a boolean
        ("block_queries", 48),  # not a power of two
        ("block_queries", 4),  # below the range
        ("block_queries", 512),  # above the range
        ("block_queries", True),  # a boolean is not a block size
    ],
)
def test_speed_settings_refuse_bad_values_by_name(option: str, value: object) -> None:
    # the wrong types are caught by the registry's option check, the rest by the adapter
    with pytest.raises(SettingsError, match=rf"grounded-sam2.* {option}\b.* {re.escape(repr(value))}"):
        create_model("grounded-sam2", classes=CLASSES, **{option: value})


def test_the_adapter_registers_without_importing_torch() -> None:
    """``import prelabel.predict.models`` (the command line's checks) needs no torch: the adapter's
    options, the kernel's block size too, are checked without it."""
    code = (
        "import sys\n"
        "from prelabel.predict.models import create_model\n"
        "create_model('grounded-sam2', classes='car', block_queries=64, channels_last=True)\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
    )
    python_prints(code)


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
        # pair each CPU box with one GPU box as whole rows (bf16 may reorder near-equal scores):
        # every pair must agree in all four coordinates
        cost = np.abs(a.xyxy[:, None, :] - b.xyxy[None, :, :]).max(-1)
        rows, cols = linear_sum_assignment(cost)
        np.testing.assert_allclose(a.xyxy[rows], b.xyxy[cols], atol=2.0)
