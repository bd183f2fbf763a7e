"""Grounding DINO -> SAM 2 through transformers: open-vocabulary boxes, then a mask per box.

The prompt is the class list ("car . person . stop sign ."). Each detection is mapped back
to exactly one prompt class through the tokens of that class's span, so labels are always
prompt classes, never raw token phrases. Both models load on first predict, once per
worker; pixels go to the model's device as uint8 (one pinned, non-blocking copy per group on
CUDA) and are resized and normalised there, so the GPU path has no per-image CPU
preprocessing beyond decoding (which the flows run a batch ahead: ``prelabel.predict.stages``).
The resize and normalisation reproduce the processor's ``pixel_values`` (same shape) and
``select`` its ``post_process_grounded_object_detection`` (tests/unit/predict/models/test_grounded_sam2.py).

Batching: Grounding DINO's Swin backbone sees the padding of a mixed-size batch, so only
same-size images share a pass (up to ``batch_size`` at a time, which also bounds device
memory); the SAM 2 image encoder takes the same images together, and their box prompts go
through the mask decoder together, padded to the largest count (each box is decoded on its
own, so padding changes nothing). Masks are upsampled, thresholded and run-length encoded a
chunk of boxes at a time on the device (``prelabel.predict.models.rle``): only their runs reach the
host, where they become COCO RLE.

Grounding DINO's deformable attention runs as one fused Triton kernel on CUDA
(``prelabel.predict.models.deformable``; ``fused_attention=False`` keeps transformers' PyTorch path,
which CPU runs always use). Speed settings that leave the outputs equal up to the order of
float sums (tests/unit/predict/models/test_grounded_sam2.py): ``attn_implementation`` (transformers' attention
code for both models), ``channels_last`` (memory format of the models and their pixels) and
``block_queries`` (the kernel's tile); ``benchmarks/gpu_variants.py`` compares them on a GPU.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.convert.masks import CocoRle, runs_to_coco
from prelabel.core.errors import PrelabelError, SettingsError
from prelabel.predict.models.base import ImageItem, ModelAdapter, class_list, decode_batch
from prelabel.predict.models.deformable_tile import BLOCK_QUERIES, check_block_queries
from prelabel.predict.models.pixels import SAM_MEAN, SAM_STD, detector_pixels, normalise_pixels
from prelabel.predict.models.registry import register
from prelabel.predict.models.rle import masks_to_runs
from prelabel.predict.models.runtime import (
    StageTimer,
    autocast,
    host_to_device,
    load_pretrained,
    require_torch,
    select_device,
)
from prelabel.records import Detections, ModelSignature

# the pixel functions are re-exported: the adapter's preprocessing, as tests and benchmarks use it
__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "SAM_MEAN",
    "SAM_STD",
    "GroundedSam2",
    "build_prompt",
    "detector_pixels",
    "normalise_pixels",
]

# transformers' attention code, by name; None leaves the choice to transformers (SDPA wherever a
# model supports it: SAM 2, Grounding DINO's Swin backbone and BERT text encoder; eager elsewhere)
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


def build_prompt(classes: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Grounding DINO's prompt ("car . stop sign .") and each class's character span in it."""
    parts, spans, position = [], [], 0
    for name in classes:
        text = " ".join(name.replace(".", " ").lower().split())
        if not text:
            raise SettingsError(f"class {name!r} has no words to prompt with")
        parts.append(text)
        spans.append((position, position + len(text)))
        position += len(text) + 3  # the " . " separator
    return " . ".join(parts) + " .", spans


@register("grounded-sam2")
class GroundedSam2(ModelAdapter):
    """Grounding DINO boxes for prompt classes, SAM 2 masks for the boxes (``segment=False``: boxes)."""

    task_types = ("detection", "instance-segmentation")
    prompt_from_project = True
    needs = (
        "weights: IDEA-Research/grounding-dino-tiny and facebook/sam2.1-hiera-tiny (open, fetched on "
        "first use); "
        "a CUDA GPU (21.8 GiB peak at batch 16, 1080p, bf16; CPU works, slowly)"
    )

    def __init__(
        self,
        classes: Sequence[str] | str | None = None,
        detector: str = "IDEA-Research/grounding-dino-tiny",
        detector_revision: str | None = None,
        segmenter: str = "facebook/sam2.1-hiera-tiny",
        segmenter_revision: str | None = None,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        mask_threshold: float = 0.0,
        mask_score_threshold: float = 0.5,
        max_detections: int = 100,
        segment: bool = True,
        batch_size: int = 8,
        box_chunk: int = 32,
        dtype: str = "bfloat16",
        device: str | None = None,
        fused_attention: bool = True,
        attn_implementation: str | None = None,
        channels_last: bool = False,
        block_queries: int = BLOCK_QUERIES,
    ) -> None:
        if dtype not in ("bfloat16", "float16", "float32"):
            raise SettingsError(f"grounded-sam2 dtype {dtype!r}: use bfloat16, float16 or float32")
        if attn_implementation is not None and attn_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise SettingsError(
                f"grounded-sam2 attn_implementation {attn_implementation!r}: use eager or sdpa, "
                "or leave it unset for transformers' choice"
            )
        if not isinstance(channels_last, bool):
            raise SettingsError(f"grounded-sam2 channels_last {channels_last!r}: use true or false")
        self.classes = class_list(classes)
        self.detector, self.detector_revision = detector, detector_revision
        self.segmenter, self.segmenter_revision = segmenter, segmenter_revision
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        self.mask_threshold, self.mask_score_threshold = mask_threshold, mask_score_threshold
        self.segment, self.dtype, self.device = segment, dtype, device
        # Not in the signature (the cache key), except attn_implementation="eager": each changes
        # only how the same sums are computed, so outputs are equal up to the order of float sums
        # (tests/unit/predict/models/test_deformable.py and test_grounded_sam2.py), and a new key would make
        # a faster run redo cached images. "eager" changes Grounding DINO's scores: transformers'
        # eager BERT adds the text encoder's boolean per-class mask instead of applying it (5.24).
        self.fused_attention = fused_attention
        self.attn_implementation, self.channels_last = attn_implementation, channels_last
        try:
            self.block_queries = check_block_queries(block_queries)
        except SettingsError as exc:
            raise SettingsError(f"grounded-sam2 {exc}") from exc
        self.max_detections = max(1, max_detections)
        self.batch_size, self.box_chunk = max(1, batch_size), max(1, box_chunk)
        self._models: tuple[Any, Any, Any] | None = None
        self._text: tuple[dict[str, Any], list[Any], int] | None = None
        self._counts: Counter[str] = Counter()
        self.timer: StageTimer | None = None  # seconds per stage (benchmarks/grounded_sam2.py)

    def signature(self) -> ModelSignature:
        revision = f"{self.detector}@{self.detector_revision or 'main'}"
        params: dict[str, Any] = {
            "prompt": build_prompt(self.classes)[0] if self.classes else "",
            "box_threshold": self.box_threshold,
            "text_threshold": self.text_threshold,
            "max_detections": self.max_detections,
            "segment": self.segment,
        }
        if self.attn_implementation == "eager":
            params["attn_implementation"] = "eager"
        if self.segment:
            revision += f"+{self.segmenter}@{self.segmenter_revision or 'main'}"
            params |= {
                "mask_threshold": self.mask_threshold,
                "mask_score_threshold": self.mask_score_threshold,
            }
        return ModelSignature("grounded-sam2", revision, params)

    def drain_counts(self) -> dict[str, int]:
        counts, self._counts = dict(self._counts), Counter()
        return counts

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        if not self.classes:
            raise SettingsError(
                "grounded-sam2 needs classes to look for: pass the model option classes=car,person "
                "or run it on a project whose labeling config lists labels"
            )
        detector, processor, segmenter = self._load()
        with self._stage("decode"):
            loaded, out = decode_batch(batch)
        device = self.device or "cpu"
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in loaded.items():
            by_size[image.rgb.size].append(i)
        for members in by_size.values():
            for start in range(0, len(members), self.batch_size):
                group = members[start : start + self.batch_size]
                # uploaded once as uint8, in one copy: both models resize and normalise on the device
                with self._stage("copies"):
                    stacked = np.stack([np.asarray(loaded[i].rgb) for i in group])
                    pixels = list(host_to_device(stacked, device).permute(0, 3, 1, 2))
                with self._stage("detector"):
                    detected = self._detect(detector, processor, pixels)
                have = [k for k, found in enumerate(detected) if len(found)]
                if self.segment and have:
                    masks = self._segment(
                        segmenter, [pixels[k] for k in have], [detected[k].xyxy for k in have]
                    )
                    for k, image_masks in zip(have, masks, strict=True):
                        found = detected[k]
                        detected[k] = Detections(found.xyxy, found.scores, found.labels, masks=image_masks)
                for i, found in zip(group, detected, strict=True):
                    out[i] = found
        return out

    def _stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        return (
            contextlib.nullcontext() if self.timer is None else self.timer.stage(name, self.device or "cpu")
        )

    def _load(self) -> tuple[Any, Any, Any]:
        if self._models is None:
            require_torch("grounded-sam2")
            from transformers import AutoModel, AutoModelForZeroShotObjectDetection, AutoProcessor

            from prelabel.predict.models.deformable import fuse_deformable_attention

            torch = require_torch("grounded-sam2")
            self.device = select_device(self.device)
            layout = torch.channels_last if self.channels_last else torch.preserve_format
            attention = self._attention()
            processor = load_pretrained(AutoProcessor, self.detector, self.detector_revision)
            detector = load_pretrained(
                AutoModelForZeroShotObjectDetection,
                self.detector,
                self.detector_revision,
                **({} if attention[0] is None else {"attn_implementation": attention[0]}),
            )
            if self.fused_attention:
                fuse_deformable_attention(detector, self.block_queries)
            segmenter = None
            if self.segment:
                segmenter = load_pretrained(
                    AutoModel,
                    self.segmenter,
                    self.segmenter_revision,
                    **({} if attention[1] is None else {"attn_implementation": attention[1]}),
                )
                config = getattr(segmenter, "config", None)
                if not hasattr(segmenter, "get_image_embeddings") or not hasattr(
                    config, "prompt_encoder_config"
                ):
                    raise SettingsError(f"segmenter {self.segmenter!r} is not a SAM 2 checkpoint")
                segmenter = segmenter.to(self.device, memory_format=layout).eval()
            self._models = (detector.to(self.device, memory_format=layout).eval(), processor, segmenter)
        return self._models

    def _attention(self) -> tuple[str | dict[str, str] | None, str | None]:
        """``attn_implementation`` as the detector's and the segmenter's loaders take it.

        Grounding DINO's own attention layers have only an eager path (transformers refuses
        "sdpa" for the whole model), so "sdpa" goes to its sub-models, the Swin backbone and
        the BERT text encoder, which is what transformers picks for them when unset."""
        if self.attn_implementation == "sdpa":
            return {"": "eager", "backbone_config": "sdpa", "text_config": "sdpa"}, "sdpa"
        return self.attn_implementation, self.attn_implementation

    def _pixels_layout(self, pixels: Any) -> Any:
        """Model inputs in the models' memory format (``channels_last``: NHWC strides)."""
        if not self.channels_last:
            return pixels
        import torch

        return pixels.contiguous(memory_format=torch.channels_last)

    def _text_inputs(self, detector: Any, processor: Any) -> tuple[dict[str, Any], list[Any], int]:
        """Token ids of the prompt, each class's token positions, and the prompt's length."""
        if self._text is None:
            torch = require_torch("grounded-sam2")
            prompt, spans = build_prompt(self.classes)
            encoded = processor.tokenizer(prompt, return_offsets_mapping=True, return_tensors="pt")
            offsets = encoded.pop("offset_mapping")[0].tolist()
            limit = int(detector.config.max_text_len)
            if len(offsets) > limit:
                raise SettingsError(
                    f"the prompt of {len(self.classes)} classes is {len(offsets)} tokens; "
                    f"{self.detector} reads at most {limit}: pass fewer classes"
                )
            device = self.device or "cpu"
            positions = [
                torch.tensor(
                    [t for t, (b, e) in enumerate(offsets) if e > b and low <= b and e <= high],
                    dtype=torch.long,
                    device=device,
                )
                for low, high in spans
            ]
            self._text = ({k: v.to(device) for k, v in encoded.items()}, positions, len(offsets))
        return self._text

    def _detect(self, detector: Any, processor: Any, images: list[Any]) -> list[Detections]:
        """Boxes, scores and prompt classes for same-size images (3, H, W uint8 on the device)."""
        torch = require_torch("grounded-sam2")
        text, _, _ = self._text_inputs(detector, processor)
        pixels = self._pixels_layout(detector_pixels(torch.stack(images), processor.image_processor))
        count = len(images)
        with torch.inference_mode(), autocast(pixels.device.type, self.dtype):
            outputs = detector(
                pixel_values=pixels,
                pixel_mask=torch.ones((count, *pixels.shape[-2:]), dtype=torch.long, device=pixels.device),
                **{k: v.expand(count, -1) for k, v in text.items()},
            )
        height, width = int(images[0].shape[1]), int(images[0].shape[2])
        return self.select(outputs.logits, outputs.pred_boxes, (height, width))

    def select(self, logits: Any, pred_boxes: Any, size: tuple[int, int]) -> list[Detections]:
        """Detections from Grounding DINO's outputs for images of ``size`` (height, width) pixels.

        logits (images, queries, text positions), pred_boxes (images, queries, 4) cx cy w h
        relative: a box's score is its best token (as ``post_process_grounded_object_detection``),
        its class the prompt class with the best token, boxes clipped to the image.
        """
        torch = require_torch("grounded-sam2")
        detector, processor, _ = self._load()
        _, positions, tokens = self._text_inputs(detector, processor)
        probs = logits[..., :tokens].float().sigmoid()  # (images, queries, tokens)
        box_scores = probs.amax(-1)
        # a class's score: its best token (classes x a few tokens; no classes x tokens tensor)
        class_scores = torch.stack([probs[..., where].amax(-1) for where in positions], -1)
        best_scores, best_classes = class_scores.max(-1)
        keep = (box_scores > self.box_threshold) & (best_scores > self.text_threshold)
        cx, cy, w, h = pred_boxes.float().unbind(-1)
        corners = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        height, width = size
        scale = torch.tensor([width, height, width, height], dtype=corners.dtype, device=corners.device)
        corners = torch.minimum((corners * scale).clamp(min=0), scale)
        found = []
        for b in range(len(logits)):
            scores = box_scores[b][keep[b]]
            order = scores.argsort(descending=True)[: self.max_detections]
            xyxy = corners[b][keep[b]][order].cpu().numpy().astype(np.float64)
            classes = best_classes[b][keep[b]][order].cpu().tolist()
            found.append(
                Detections(
                    xyxy=xyxy.reshape(-1, 4),
                    scores=scores[order].cpu().numpy().astype(np.float64),
                    labels=tuple(self.classes[k] for k in classes),
                )
            )
        return found

    def _segment(
        self, segmenter: Any, images: list[Any], boxes: list[npt.NDArray[np.float64]]
    ) -> list[tuple[CocoRle | None, ...]]:
        """One mask (or None when below the mask score) per box, for images with boxes."""
        torch = require_torch("grounded-sam2")
        side = int(segmenter.config.prompt_encoder_config.image_size)
        device = images[0].device
        masks: list[list[CocoRle | None]] = [[] for _ in images]
        with torch.inference_mode(), autocast(device.type, self.dtype):
            with self._stage("encoder"):
                pixels = self._pixels_layout(
                    torch.cat(
                        [normalise_pixels(image[None], (side, side), SAM_MEAN, SAM_STD) for image in images]
                    )
                )
                embeddings = segmenter.get_image_embeddings(pixels)
            most = max(len(b) for b in boxes)
            for start in range(0, most, self.box_chunk):
                prompts = []
                for image, image_boxes in zip(images, boxes, strict=True):
                    chunk = image_boxes[start : start + self.box_chunk]
                    width_of_chunk = min(self.box_chunk, most - start)
                    padded = np.resize(chunk if len(chunk) else image_boxes[:1], (width_of_chunk, 4))
                    height, width = image.shape[1:]
                    prompts.append(padded * np.array([side / width, side / height] * 2))
                with self._stage("decoder"):
                    outputs = segmenter(
                        image_embeddings=embeddings,
                        input_boxes=torch.tensor(np.stack(prompts), dtype=torch.float32, device=device),
                        multimask_output=False,
                    )
                with self._stage("mask encode"):
                    scores = outputs.iou_scores[:, :, 0].float()
                    present = outputs.object_score_logits[:, :, 0].float() > 0
                    for b, (image, image_boxes) in enumerate(zip(images, boxes, strict=True)):
                        real = max(0, min(self.box_chunk, len(image_boxes) - start))
                        good = (
                            ((scores[b, :real] >= self.mask_score_threshold) & present[b, :real])
                            .cpu()
                            .tolist()
                        )
                        picked = [j for j in range(real) if good[j]]
                        self._counts["masks below the mask score"] += real - len(picked)
                        chunk_masks: list[CocoRle | None] = [None] * real
                        if picked:
                            logits = torch.nn.functional.interpolate(
                                outputs.pred_masks[b, picked, 0].float()[None],
                                tuple(image.shape[1:]),
                                mode="bilinear",
                                align_corners=False,
                            )
                            # thresholded and run-length encoded on the device: runs come back, not masks
                            height, width = (int(v) for v in image.shape[1:])
                            runs = masks_to_runs(logits[0], self.mask_threshold)
                            for j, counts in zip(picked, runs, strict=True):
                                if counts.size > 1:  # [H * W] alone: no pixel set
                                    chunk_masks[j] = runs_to_coco(counts, height, width)
                                else:
                                    self._counts["empty masks"] += 1
                        masks[b] += chunk_masks
        return [tuple(m) for m in masks]
