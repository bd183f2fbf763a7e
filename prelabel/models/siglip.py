"""Zero-shot image classification through transformers: the image's Choices from prompts.

SigLIP by default; any checkpoint that ``AutoModelForZeroShotImageClassification`` loads (the
zero-shot pipeline's models: SigLIP 2, CLIP, ...). Each choice is asked as ``template`` with
the choice in place of ``{}``. Scores follow transformers' zero-shot pipeline: SigLIP was
trained with a sigmoid loss, so each choice gets its own sigmoid probability (they need not
sum to 1; a right label often scores 0.1-0.4), while the CLIP family gets a softmax over the
choices; SigLIP's texts are padded to 64 tokens, as in training (its text embeddings change
with the padding). Choices scoring at least ``threshold`` are kept, best first, at most
``top_k``.

The processor resizes every image to the model's input size, so a batch's images share one
pass; the few prompts go through the text tower with each batch. The default checkpoint's
tokenizer is SentencePiece (``sentencepiece``, in the ``models`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prelabel.errors import PrelabelError, SettingsError
from prelabel.models.base import ImageItem, ModelAdapter, class_list, decode_batch
from prelabel.models.registry import register
from prelabel.models.runtime import autocast, load_pretrained, require_torch, select_device
from prelabel.records import Choice, Detections, ModelSignature

__all__ = ["Siglip"]

SIGLIP_TEXT_LENGTH = 64  # the text length SigLIP checkpoints were trained with (zero-shot pipeline)


@register("siglip")
class Siglip(ModelAdapter):
    """The image's choices by zero-shot classification; alone (no boxes) or after a detector."""

    task_types = ("classification",)
    choices_from_project = True
    refines = True

    def __init__(
        self,
        choices: Sequence[str] | str | None = None,
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
        self.choices = class_list(choices)
        self.checkpoint, self.revision, self.template = checkpoint, revision, template
        if top_k < 1:
            raise SettingsError(f"siglip: top_k must be 1 or more, got {top_k}")
        self.threshold, self.top_k = threshold, top_k
        self.batch_size, self.device = max(1, batch_size), device
        self._loaded: tuple[Any, Any, dict[str, Any], bool] | None = None

    def signature(self) -> ModelSignature:
        params = {"choices": self.choices, "template": self.template, "threshold": self.threshold,
                  "top_k": self.top_k}  # fmt: skip
        return ModelSignature("siglip", f"{self.checkpoint}@{self.revision or 'main'}", params)

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        return [
            found if isinstance(found, PrelabelError) else Detections(choices=found)
            for found in self._classify(batch)
        ]

    def refine(
        self, batch: Sequence[ImageItem], previous: Sequence[Detections]
    ) -> list[Detections | PrelabelError]:
        return [
            found if isinstance(found, PrelabelError) else before.replace(choices=found)
            for found, before in zip(self._classify(batch), previous, strict=True)
        ]

    def _classify(self, batch: Sequence[ImageItem]) -> list[tuple[Choice, ...] | PrelabelError]:
        if not self.choices:
            raise SettingsError(
                "siglip needs choices to pick from: pass the model option choices=indoor,outdoor "
                "or run it on a project whose labeling config has <Choices>"
            )
        torch = require_torch("siglip")
        model, processor, text, sigmoid = self._load()
        device = self.device or "cpu"
        loaded, decoded = decode_batch(batch)
        out: list[tuple[Choice, ...] | PrelabelError] = [
            found if isinstance(found, PrelabelError) else () for found in decoded
        ]
        order = list(loaded)
        for start in range(0, len(order), self.batch_size):
            group = order[start : start + self.batch_size]
            pixels = processor(images=[loaded[i].rgb for i in group], return_tensors="pt").to(device)
            with torch.inference_mode(), autocast(device):
                logits = model(**text, **pixels).logits_per_image.float()
            scores = logits.sigmoid() if sigmoid else logits.softmax(-1)
            for i, row in zip(group, scores.cpu().tolist(), strict=True):
                ranked = sorted(zip(self.choices, row, strict=True), key=lambda pair: -pair[1])
                out[i] = tuple(Choice(label, score) for label, score in ranked[: self.top_k]
                               if score >= self.threshold)  # fmt: skip
        return out

    def _load(self) -> tuple[Any, Any, dict[str, Any], bool]:
        """The model, its processor, the prompts' tokens on the device, and sigmoid (or softmax)."""
        if self._loaded is None:
            require_torch("siglip")
            from transformers import AutoModelForZeroShotImageClassification, AutoProcessor

            self.device = select_device(self.device)
            processor = load_pretrained(AutoProcessor, self.checkpoint, self.revision)
            model = load_pretrained(AutoModelForZeroShotImageClassification, self.checkpoint, self.revision)
            sigmoid = "siglip" in model.config.model_type
            padding: dict[str, Any] = (
                {"padding": "max_length", "max_length": SIGLIP_TEXT_LENGTH, "truncation": True}
                if sigmoid else {"padding": True}
            )  # fmt: skip
            prompts = [self.template.replace("{}", choice) for choice in self.choices]
            text = processor(text=prompts, return_tensors="pt", **padding)
            self._loaded = (model.to(self.device).eval(), processor,
                            {k: v.to(self.device) for k, v in text.items()}, sigmoid)  # fmt: skip
        return self._loaded
