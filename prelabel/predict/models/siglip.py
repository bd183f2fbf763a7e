"""Zero-shot image classification through transformers: the image's Choices from prompts,
and after a detector each detection's (``region_choices``, a perRegion Choices' options).

SigLIP by default; any checkpoint that ``AutoModelForZeroShotImageClassification`` loads (the
zero-shot pipeline's models: SigLIP 2, CLIP, ...). Each choice is asked as ``template`` with
the choice in place of ``{}``. Scores follow transformers' zero-shot pipeline: SigLIP was
trained with a sigmoid loss, so each choice gets its own sigmoid probability (they need not
sum to 1; a right label often scores 0.1-0.4), while the CLIP family gets a softmax over the
choices; SigLIP's texts are padded to 64 tokens, as in training (its text embeddings change
with the padding). Choices scoring at least ``threshold`` are kept, best first, at most
``top_k``. A detection is classified on its crop: its box on the displayed image (the
detector's grid), each side grown by ``CROP_PADDING`` of the box's size, clipped to the image.

The processor resizes every image to the model's input size, so a batch's images share one
pass; the few prompts go through the text tower with each batch. The default checkpoint's
tokenizer is SentencePiece (``sentencepiece``, in the ``models`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.convert.geometry import clean_boxes
from prelabel.core.errors import PrelabelError, SettingsError
from prelabel.predict.models.base import ImageItem, ModelAdapter, class_list, decode_batch
from prelabel.predict.models.registry import register
from prelabel.predict.models.runtime import autocast, load_pretrained, require_torch, select_device
from prelabel.records import Choice, Detections, ModelSignature

__all__ = ["Siglip"]

SIGLIP_TEXT_LENGTH = 64  # the text length SigLIP checkpoints were trained with (zero-shot pipeline)
CROP_PADDING = 0.1
"""Share of a box's width (height) added left and right (above and below) of its crop: a
detector's box is tight and may clip the object's edge, and these classifiers learnt from
photos that frame an object with some surroundings; ViTPose grows its crops by 1.25 for the
same reason. More lets neighbours fill the crop of a small object in a crowd."""


@register("siglip")
class Siglip(ModelAdapter):
    """The image's choices by zero-shot classification; alone (no boxes) or after a detector,
    which also classifies each detection when given ``region_choices``."""

    task_types = ("classification",)
    choices_from_project = True
    refines = True

    def __init__(
        self,
        choices: Sequence[str] | str | None = None,
        region_choices: Sequence[str] | str | None = None,
        checkpoint: str = "google/siglip-base-patch16-224",
        revision: str | None = None,
        template: str = "a photo of {}.",
        threshold: float = 0.1,
        top_k: int = 1,
        batch_size: int = 8,
        device: str | None = None,
    ) -> None:
        if "{}" not in template:
            raise SettingsError(f"siglip template {template!r} needs {{}} where the choice goes")
        self.choices, self.region_choices = class_list(choices), class_list(region_choices)
        self.checkpoint, self.revision, self.template = checkpoint, revision, template
        if top_k < 1:
            raise SettingsError(f"siglip: top_k must be 1 or more, got {top_k}")
        self.threshold, self.top_k = threshold, top_k
        self.batch_size, self.device = max(1, batch_size), device
        self._loaded: tuple[Any, Any, bool] | None = None
        self._prompts: dict[tuple[str, ...], dict[str, Any]] = {}  # options -> their tokens on the device

    def signature(self) -> ModelSignature:
        params = {
            "choices": self.choices,
            "template": self.template,
            "threshold": self.threshold,
            "top_k": self.top_k,
        }
        if self.region_choices:  # only when given: the cache entries made without them stay valid
            params["region_choices"] = self.region_choices
        return ModelSignature("siglip", f"{self.checkpoint}@{self.revision or 'main'}", params)

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        self._require(self.choices)
        return self.refine(batch, [Detections()] * len(batch))

    def refine(
        self, batch: Sequence[ImageItem], previous: Sequence[Detections]
    ) -> list[Detections | PrelabelError]:
        self._require(self.choices or self.region_choices)
        loaded, out = decode_batch(batch)
        found = dict(zip(loaded, self._classify([loaded[i].rgb for i in loaded], self.choices), strict=True))
        crops: list[Any] = []
        owners: list[tuple[int, int]] = []  # (image, detection) of each crop
        for i in loaded if self.region_choices else ():
            for j, box in _crop_boxes(previous[i].xyxy, *loaded[i].rgb.size):
                crops.append(loaded[i].rgb.crop(box))
                owners.append((i, j))
        regions = {i: list(previous[i].region_choices) for i in loaded}
        for (i, j), classes in zip(owners, self._classify(crops, self.region_choices), strict=True):
            regions[i][j] = classes
        for i in loaded:
            choices = found[i] if self.choices else previous[i].choices
            out[i] = previous[i].replace(choices=choices, region_choices=tuple(regions[i]))
        return out

    def _require(self, options: Sequence[str]) -> None:
        if not options:
            raise SettingsError(
                "siglip needs choices to pick from: pass the model option choices=indoor,outdoor "
                "(after a detector, region_choices=parked,moving classifies each detection) "
                "or run it on a project whose labeling config has <Choices>"
            )

    def _classify(self, images: Sequence[Any], options: Sequence[str]) -> list[tuple[Choice, ...]]:
        """Each image's options scoring at least ``threshold``, best first, at most ``top_k``."""
        if not images or not options:
            return [() for _ in images]
        torch = require_torch("siglip")
        model, processor, sigmoid = self._load()
        text = self._text(options)
        device = self.device or "cpu"
        out: list[tuple[Choice, ...]] = []
        for start in range(0, len(images), self.batch_size):
            pixels = processor(images=list(images[start : start + self.batch_size]), return_tensors="pt")
            with torch.inference_mode(), autocast(device):
                logits = model(**text, **pixels.to(device)).logits_per_image.float()
            scores = logits.sigmoid() if sigmoid else logits.softmax(-1)
            for row in scores.cpu().tolist():
                ranked = sorted(zip(options, row, strict=True), key=lambda pair: -pair[1])
                out.append(
                    tuple(
                        Choice(label, score)
                        for label, score in ranked[: self.top_k]
                        if score >= self.threshold
                    )
                )
        return out

    def _load(self) -> tuple[Any, Any, bool]:
        """The model, its processor, and sigmoid (or softmax)."""
        if self._loaded is None:
            require_torch("siglip")
            from transformers import AutoModelForZeroShotImageClassification, AutoProcessor

            self.device = select_device(self.device)
            processor = load_pretrained(AutoProcessor, self.checkpoint, self.revision)
            model = load_pretrained(AutoModelForZeroShotImageClassification, self.checkpoint, self.revision)
            self._loaded = (model.to(self.device).eval(), processor, "siglip" in model.config.model_type)
        return self._loaded

    def _text(self, options: Sequence[str]) -> dict[str, Any]:
        """The prompts' tokens for ``options``, on the device (made once per list)."""
        key = tuple(options)
        if key not in self._prompts:
            _, processor, sigmoid = self._load()
            padding: dict[str, Any] = (
                {"padding": "max_length", "max_length": SIGLIP_TEXT_LENGTH, "truncation": True}
                if sigmoid
                else {"padding": True}
            )
            prompts = [self.template.replace("{}", choice) for choice in options]
            text = processor(text=prompts, return_tensors="pt", **padding)
            self._prompts[key] = {k: v.to(self.device) for k, v in text.items()}
        return self._prompts[key]


Box = tuple[int, int, int, int]


def _crop_boxes(xyxy: npt.NDArray[np.float64], width: int, height: int) -> list[tuple[int, Box]]:
    """(detection, crop box) for each box with area on the image: whole pixels (left, top,
    right, bottom) around the clipped box grown by ``CROP_PADDING``, inside the image."""
    cleanup = clean_boxes(xyxy, width, height)
    grow = (cleanup.boxes[:, 2:] - cleanup.boxes[:, :2]) * CROP_PADDING
    low = np.floor(np.maximum(cleanup.boxes[:, :2] - grow, 0))
    high = np.ceil(np.minimum(cleanup.boxes[:, 2:] + grow, (width, height)))
    boxes: list[list[int]] = np.concatenate([low, high], axis=1).astype(int).tolist()
    return [
        (int(j), (boxes[j][0], boxes[j][1], boxes[j][2], boxes[j][3])) for j in np.flatnonzero(cleanup.keep)
    ]
