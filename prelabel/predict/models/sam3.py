"""SAM 3 through transformers: every concept phrase, every instance, with masks, in one pass per batch.

Each label is a concept (``prelabel.predict.models.concepts``: its phrases, negatives, thresholds).
Per batch the vision encoder (the bulk of the model) runs once over the images; its
features are reused for every (image, phrase) pair, indexed along the batch dimension, so
the detector and mask decoder see up to ``prompt_batch`` pairs per pass and no image is
encoded twice (tests/unit/predict/models/test_sam3.py checks this equals one forward per
image and phrase). The
phrases' text features are computed once per worker. Pixels go to the device as uint8 and
are resized (to the model's square input, aspect not kept, as ``Sam3ImageProcessor`` does),
scaled and normalised there (``prelabel.predict.models.pixels``): no torchvision needed, which cannot
load beside the CPU torch on these machines.

Scores are the processor's (query sigmoid x presence sigmoid, kept above the phrase's
threshold); masks are its too (sigmoid, upsampled bilinear to the displayed image,
``> mask_threshold``), thresholded and run-length encoded on the device
(``prelabel.predict.models.rle``). Then, per image, on the low-resolution masks
(``prelabel.predict.models.instances``): an instance that a better-scoring negative phrase of its
label covers is vetoed, and one object found by several phrases becomes one region.

Boxes: SAM 3's box head and mask head are separate. Where the model's box and the mask's
tight box agree (IoU at least ``BOX_AGREEMENT``) the model's box is kept (it is sub-pixel
and may cover an occluded part the mask leaves out); where they disagree the mask's box is
posted, so the rectangle and the brush of one region show the same object (counted as
"boxes from masks"). A region whose mask is empty keeps the model's box and has no mask.

Exemplars: boxes people drew (``exemplars``: image URI -> [label, x1, y1, x2, y2] pixels on the
displayed image; ``exemplars=project`` asks the flow to fill it from the project's annotated
tasks) prompt their label's first phrase together with the boxes on their own image, so the
model finds more instances like them there. Their digest is in the cache key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prelabel.convert.masks import CocoRle, runs_to_coco
from prelabel.core.errors import PrelabelError, SettingsError
from prelabel.predict.models.base import ImageItem, ModelAdapter, class_list, decode_batch
from prelabel.predict.models.checkpoints import LocalCheckpoint, locate_checkpoint
from prelabel.predict.models.concepts import build_concepts, load_prompts, phrase_thresholds
from prelabel.predict.models.instances import box_iou, mask_boxes, mask_iou, settle
from prelabel.predict.models.pixels import normalise_pixels
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

__all__ = ["BOX_AGREEMENT", "EXEMPLARS_FROM_PROJECT", "FETCH", "Sam3"]

BOX_AGREEMENT = 0.8
"""Mask-box IoU at or above which the model's own box is posted; below it, the mask's box."""
EXEMPLARS_FROM_PROJECT = "project"
FETCH = (
    "accept the licence of facebook/sam3 on the Hugging Face Hub, log in with `hf auth login`, run "
    "`hf download facebook/sam3` (into the cache above) or `hf download facebook/sam3 --local-dir DIR` "
    "and pass --model-option checkpoint=DIR"
)
TEXT_LENGTH = 32  # Sam3Processor pads every phrase to 32 tokens
MASK_CHUNK = 32  # instances upsampled to full size at a time (bounds device memory)
# Sam3ImageProcessor's defaults, for keys a checkpoint's preprocessor_config.json leaves out
_PROCESSOR_DEFAULTS = {
    "size": {"height": 1008, "width": 1008},
    "image_mean": [0.5] * 3,
    "image_std": [0.5] * 3,
}


@dataclass
class _Found:
    """One image's candidate instances, gathered from its (image, phrase) rows."""

    scores: list[Any] = field(default_factory=list)  # (k,) per row
    boxes: list[Any] = field(default_factory=list)  # (k, 4) xyxy, relative
    masks: list[Any] = field(default_factory=list)  # (k, h, w) mask logits
    phrases: list[int] = field(default_factory=list)  # phrase index per instance


@register("sam3")
class Sam3(ModelAdapter):
    """SAM 3 concept segmentation: all instances of each label's phrases, a mask each
    (``segment=False``: boxes only)."""

    task_types = ("detection", "instance-segmentation")
    prompt_from_project = True
    keyed_options = {"threshold": "thresholds"}  # noqa: RUF012  (a ClassVar in the base)
    needs = (
        "weights: facebook/sam3 (gated: accept its licence, then hf download; 3.4 GB) or checkpoint=DIR; "
        "a CUDA GPU (840 M parameters, bf16; CPU works, slowly)"
    )

    def __init__(
        self,
        classes: Sequence[str] | str | None = None,
        prompts: str | Mapping[str, Any] | None = None,
        checkpoint: str = "facebook/sam3",
        revision: str | None = None,
        threshold: float = 0.5,
        thresholds: Mapping[str, float] | None = None,
        mask_threshold: float = 0.5,
        merge_iou: float = 0.5,
        max_detections: int = 100,
        segment: bool = True,
        exemplars: str | Mapping[str, Sequence[Sequence[Any]]] | None = None,
        batch_size: int = 8,
        prompt_batch: int = 16,
        dtype: str = "bfloat16",
        device: str | None = None,
    ) -> None:
        if dtype not in ("bfloat16", "float16", "float32"):
            raise SettingsError(f"sam3 dtype {dtype!r}: use bfloat16, float16 or float32")
        if isinstance(exemplars, str) and exemplars != EXEMPLARS_FROM_PROJECT:
            raise SettingsError(f"sam3 exemplars {exemplars!r}: use exemplars=project")
        self.concepts = build_concepts(class_list(classes), load_prompts(prompts) if prompts else [])
        # without concepts yet (the command line's check, before the project's labels are read)
        # the threshold names are checked when the run makes the model with them
        self.thresholds: dict[str, float] = {}
        if self.concepts:
            self.thresholds = phrase_thresholds(self.concepts, threshold, thresholds or {})
        self.mask_threshold, self.merge_iou = mask_threshold, merge_iou
        self.max_detections, self.segment = max(1, max_detections), segment
        self.exemplars = exemplars
        self.batch_size, self.prompt_batch = max(1, batch_size), max(1, prompt_batch)
        self.dtype, self.device = dtype, device
        self.checkpoint: LocalCheckpoint = locate_checkpoint("sam3", checkpoint, revision, FETCH)
        # phrases in prompt order: every label's phrases, then negatives no label uses
        self.phrases = list(dict.fromkeys(p for c in self.concepts for p in c.phrases))
        self.phrases += list(dict.fromkeys(n for c in self.concepts for n in c.negatives))
        label_of = {p: c.label for c in self.concepts for p in c.phrases}
        self._labels: list[str | None] = [label_of.get(p) for p in self.phrases]
        self._vetoes = [frozenset(c.label for c in self.concepts if p in c.negatives) for p in self.phrases]
        self._models: tuple[Any, dict[str, Any]] | None = None
        self._text: tuple[Any, Any] | None = None
        self._counts: Counter[str] = Counter()
        self.timer: StageTimer | None = None  # seconds per stage (benchmarks/sam3_gpu.py)

    def signature(self) -> ModelSignature:
        params: dict[str, Any] = {
            "concepts": [c.as_json() for c in self.concepts],
            "thresholds": self.thresholds,
            "mask_threshold": self.mask_threshold,
            "merge_iou": self.merge_iou,
            "max_detections": self.max_detections,
            "segment": self.segment,
        }
        if self.exemplars is not None:
            params["exemplars"] = _digest(self.exemplars)
        return ModelSignature("sam3", self.checkpoint.revision, params)

    def drain_counts(self) -> dict[str, int]:
        counts, self._counts = dict(self._counts), Counter()
        return counts

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        if not self.concepts:
            raise SettingsError(
                "sam3 needs concepts to look for: pass classes=car,person or prompts=FILE, or run it on "
                "a project whose labeling config lists labels"
            )
        if self.exemplars == EXEMPLARS_FROM_PROJECT:
            raise SettingsError("sam3 exemplars=project takes people's boxes from a project: prelabel run")
        model, processor = self._load()
        with self._stage("decode"):
            loaded, out = decode_batch(batch)
        members = list(loaded)
        for start in range(0, len(members), self.batch_size):
            group = members[start : start + self.batch_size]
            found = self._infer(model, processor, [batch[i] for i in group], [loaded[i].rgb for i in group])
            for i, detections in zip(group, found, strict=True):
                out[i] = detections
        return out

    def _stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        return (
            contextlib.nullcontext() if self.timer is None else self.timer.stage(name, self.device or "cpu")
        )

    def _load(self) -> tuple[Any, dict[str, Any]]:
        if self._models is None:
            require_torch("sam3")
            from transformers import Sam3Model
            from transformers.image_processing_base import ImageProcessingMixin

            from prelabel.predict.models.roi_align import install_roi_align

            install_roi_align()
            self.device = select_device(self.device)
            folder = str(self.checkpoint.path)  # loaded from the folder: nothing is fetched
            model = load_pretrained(Sam3Model, folder, None)
            if not hasattr(model, "get_vision_features"):
                raise SettingsError(f"checkpoint {self.checkpoint.name!r} is not a SAM 3 model")
            try:
                config, _ = ImageProcessingMixin.get_image_processor_dict(folder)
            except OSError:
                config = {}
            processor = {k: config.get(k, default) for k, default in _PROCESSOR_DEFAULTS.items()}
            self._models = (model.to(self.device).eval(), processor)
        return self._models

    def _text_features(self, model: Any) -> tuple[Any, Any]:
        """Every phrase's text features (phrases, 32, hidden) and attention mask, computed once."""
        if self._text is None:
            from transformers import AutoTokenizer

            torch = require_torch("sam3")
            tokenizer = load_pretrained(AutoTokenizer, str(self.checkpoint.path), None)
            encoded = tokenizer(
                self.phrases, padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt"
            )
            if encoded["input_ids"].shape[1] > TEXT_LENGTH:
                longest = max(self.phrases, key=lambda p: len(tokenizer(p)["input_ids"]))
                raise SettingsError(f"sam3 reads {TEXT_LENGTH} tokens a phrase; {longest!r} is longer")
            device = self.device or "cpu"
            ids, mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
            with torch.inference_mode(), autocast(device, self.dtype):
                features = model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
            self._text = (features, mask)
        return self._text

    def _infer(
        self, model: Any, processor: dict[str, Any], items: Sequence[ImageItem], images: Sequence[Any]
    ) -> list[Detections]:
        """Detections for a group of decoded images (any sizes: the model's input is square)."""
        torch = require_torch("sam3")
        device = self.device or "cpu"
        side = (int(processor["size"]["height"]), int(processor["size"]["width"]))
        with torch.inference_mode(), autocast(device, self.dtype):
            with self._stage("copies"):
                pixels = torch.cat(
                    [
                        normalise_pixels(
                            host_to_device(np.array(rgb), device).permute(2, 0, 1)[None],
                            side,
                            processor["image_mean"],
                            processor["image_std"],
                        )
                        for rgb in images
                    ]
                )
            with self._stage("vision"):
                vision = model.get_vision_features(pixel_values=pixels)
            text = self._text_features(model)
            rows, boxes = self._rows(items, images)
            found = [_Found() for _ in images]
            with self._stage("decoder"):
                for with_boxes in (False, True):
                    chosen = [(k, p) for k, p in rows if ((k, p) in boxes) == with_boxes]
                    for start in range(0, len(chosen), self.prompt_batch):
                        chunk = chosen[start : start + self.prompt_batch]
                        exemplars = [boxes[r] for r in chunk if r in boxes]
                        self._decode(model, vision, text, chunk, exemplars, found)
            with self._stage("masks"):
                return [
                    self._settle(candidates, rgb.size[1], rgb.size[0])
                    for candidates, rgb in zip(found, images, strict=True)
                ]

    def _rows(
        self, items: Sequence[ImageItem], images: Sequence[Any]
    ) -> tuple[list[tuple[int, int]], dict[tuple[int, int], list[list[float]]]]:
        """The (image, phrase) pairs of a group, and the exemplar boxes of the pairs that have
        them (cx, cy, w, h relative to the image, as the model takes them)."""
        rows = [(k, p) for k in range(len(items)) for p in range(len(self.phrases))]
        boxes: dict[tuple[int, int], list[list[float]]] = {}
        if not isinstance(self.exemplars, Mapping):
            return rows, boxes
        first = {c.label: self.phrases.index(c.phrases[0]) for c in self.concepts}
        first |= {p: i for i, p in enumerate(self.phrases) if self._labels[i] is not None}
        for k, (item, rgb) in enumerate(zip(items, images, strict=True)):
            width, height = rgb.size
            for label, *xyxy in self.exemplars.get(item.uri, ()):
                if str(label) not in first:
                    self._counts["exemplars of labels not prompted"] += 1
                    continue
                x1, y1, x2, y2 = (float(v) for v in xyxy)
                box = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
                boxes.setdefault((k, first[str(label)]), []).append(box)
                self._counts["exemplar boxes"] += 1
        return rows, boxes

    def _decode(
        self,
        model: Any,
        vision: Any,
        text: Any,
        rows: Sequence[tuple[int, int]],
        boxes: Sequence[list[list[float]]],
        found: list[_Found],
    ) -> None:
        """One detector + mask decoder pass over (image, phrase) rows; each row's instances above
        its phrase's threshold (the best ``max_detections``) join its image's candidates."""
        torch = require_torch("sam3")
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        device = vision.fpn_hidden_states[0].device
        images = torch.tensor([k for k, _ in rows], device=device)
        phrases = torch.tensor([p for _, p in rows], device=device)
        features, mask = text
        embeds = type(vision)(
            fpn_hidden_states=tuple(h.index_select(0, images) for h in vision.fpn_hidden_states),
            fpn_position_encoding=tuple(h.index_select(0, images) for h in vision.fpn_position_encoding),
        )
        prompts: dict[str, Any] = {}
        if boxes:
            most = max(len(b) for b in boxes)
            padded = [b + [[0.0] * 4] * (most - len(b)) for b in boxes]
            labels = [[1] * len(b) + [-10] * (most - len(b)) for b in boxes]  # -10: padding
            prompts = {
                "input_boxes": torch.tensor(padded, dtype=torch.float32, device=device),
                "input_boxes_labels": torch.tensor(labels, dtype=torch.long, device=device),
            }
        outputs = model(
            vision_embeds=embeds,
            text_embeds=BaseModelOutputWithPooling(pooler_output=features.index_select(0, phrases)),
            attention_mask=mask.index_select(0, phrases),
            **prompts,
        )
        scores = outputs.pred_logits.float().sigmoid() * outputs.presence_logits.float().sigmoid()
        limits = torch.tensor([self.thresholds[self.phrases[p]] for _, p in rows], device=device)
        keep = (scores > limits[:, None]).cpu().numpy()
        host_scores = scores.cpu().numpy()
        for r, (k, p) in enumerate(rows):
            queries = np.flatnonzero(keep[r])
            queries = queries[np.argsort(-host_scores[r, queries], kind="stable")][: self.max_detections]
            if not len(queries):
                continue
            where = torch.from_numpy(queries).to(device)
            candidates = found[k]
            candidates.scores.append(scores[r, where])
            candidates.boxes.append(outputs.pred_boxes[r, where].float())
            candidates.masks.append(outputs.pred_masks[r, where])
            candidates.phrases += [p] * len(queries)

    def _settle(self, found: _Found, height: int, width: int) -> Detections:
        """One image's regions from its candidates: vetoed, merged, capped, masked and boxed."""
        torch = require_torch("sam3")
        if not found.phrases:
            return Detections()
        scores = torch.cat(found.scores)
        low = torch.cat(found.masks).float()
        host_scores = scores.cpu().numpy().astype(np.float64)
        iou = mask_iou(low.sigmoid() > self.mask_threshold)
        kept, vetoed, merged = settle(
            host_scores.tolist(),
            [self._labels[p] for p in found.phrases],
            found.phrases,
            [self._vetoes[p] for p in found.phrases],
            iou,
            self.merge_iou,
        )
        self._counts["vetoed by a negative phrase"] += vetoed
        self._counts["merged: one object, several phrases"] += merged
        kept = kept[: self.max_detections]
        size = np.array([width, height, width, height], dtype=np.float64)
        xyxy = torch.cat(found.boxes)[kept].cpu().numpy().astype(np.float64) * size
        xyxy = np.minimum(np.clip(xyxy, 0, None), size)
        masks: list[CocoRle | None] = [None] * len(kept)
        if self.segment and kept:
            for start in range(0, len(kept), MASK_CHUNK):
                chunk = kept[start : start + MASK_CHUNK]
                probs = torch.nn.functional.interpolate(
                    low[chunk].sigmoid()[None], (height, width), mode="bilinear", align_corners=False
                )[0]
                binary = probs > self.mask_threshold
                tight, filled = mask_boxes(binary)
                runs = masks_to_runs(binary)
                part = slice(start, start + len(chunk))
                disagree = filled & (box_iou(xyxy[part], tight) < BOX_AGREEMENT)
                xyxy[part][disagree] = tight[disagree]
                self._counts["boxes from masks"] += int(disagree.sum())
                self._counts["empty masks"] += int((~filled).sum())
                for j, (counts, has) in enumerate(zip(runs, filled, strict=True)):
                    masks[start + j] = runs_to_coco(counts, height, width) if has else None
        return Detections(
            xyxy=xyxy.reshape(-1, 4),
            scores=host_scores[kept],
            labels=tuple(str(self._labels[found.phrases[i]]) for i in kept),
            masks=tuple(masks),
        )


def _digest(exemplars: str | Mapping[str, Sequence[Sequence[Any]]]) -> str:
    """A stable digest of the exemplar boxes (rounded to 0.01 pixel), for the cache key."""
    if isinstance(exemplars, str):
        return exemplars
    rows = {
        uri: sorted([str(b[0]), *(round(float(v), 2) for v in b[1:])] for b in boxes)
        for uri, boxes in exemplars.items()
    }
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
