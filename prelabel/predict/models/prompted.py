"""A mask for what a person points at: SAM 2 prompted by clicks and a box, one image at a time.

Interactive labeling asks for one object per request, many times on the same image, so the
image's embedding (the image encoder: nearly all of the work) is computed once by ``embed`` and
reused by every ``segment`` on that image (the caller keeps it; ``prelabel.serve`` holds an LRU
of them). ``PromptSegmenter`` is the interface the ML backend uses; ``Sam2Prompter`` implements
it on transformers' ``Sam2Model`` (a SAM 3 tracker checkpoint has the same prompt interface).

Pixels go to the device as uint8 and are resized to the model's square input and normalised
there (``prelabel.predict.models.pixels``), as ``grounded-sam2`` does; prompts are scaled from displayed
pixels to that square. A single click is ambiguous (a part or the whole?), so it asks for SAM's
three candidates and keeps the one with the best predicted IoU; a box or several points ask for
one. The mask is upsampled to the displayed image, thresholded and run-length encoded on the
device (``prelabel.predict.models.rle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from prelabel.convert.masks import CocoRle, coco_area
from prelabel.core.errors import PrelabelError, SettingsError
from prelabel.core.images import LoadedImage
from prelabel.predict.models.pixels import SAM_MEAN, SAM_STD, normalise_pixels
from prelabel.predict.models.rle import masks_to_coco
from prelabel.predict.models.runtime import (
    autocast,
    host_to_device,
    load_pretrained,
    require_torch,
    select_device,
)

__all__ = ["Prompt", "PromptSegmenter", "Sam2Prompter", "Segment"]


@dataclass(frozen=True)
class Prompt:
    """What a person gave on one image, in displayed pixels: ``points`` (n, 2) x y, ``labels``
    (n,) 1 on the object or 0 off it, and a ``box`` xyxy (4,) or None."""

    points: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int64]
    box: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(points) != len(labels):
            raise ValueError(f"{len(points)} points but {len(labels)} labels")
        box = None if self.box is None else np.asarray(self.box, dtype=np.float64).reshape(4)
        if len(points) == 0 and box is None:
            raise ValueError("a prompt needs a point or a box")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "box", box)

    @classmethod
    def of_box(cls, box: npt.ArrayLike) -> Prompt:
        """A box alone, xyxy pixels."""
        return cls(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.asarray(box, dtype=np.float64))


@dataclass(frozen=True)
class Segment:
    """The object's mask on the displayed image (None: the model found no pixel) and its score."""

    mask: CocoRle | None
    score: float


class PromptSegmenter(Protocol):
    """Masks from clicks and boxes, with the image's features computed once per image."""

    def embed(self, image: LoadedImage) -> Any:
        """The image's features, to pass to ``segment`` for every prompt on that image."""
        ...

    def segment(self, features: Any, prompt: Prompt) -> Segment:
        """The mask of the object ``prompt`` points at."""
        ...


@dataclass(frozen=True)
class _Features:
    embeddings: Any  # the image encoder's feature maps, on the device
    height: int
    width: int


class Sam2Prompter:
    """``PromptSegmenter`` on a SAM 2 checkpoint (a hub id or a folder), loaded on first use."""

    def __init__(
        self,
        checkpoint: str = "facebook/sam2.1-hiera-tiny",
        revision: str | None = None,
        device: str | None = None,
        dtype: str = "bfloat16",
        mask_threshold: float = 0.0,
    ) -> None:
        if dtype not in ("bfloat16", "float16", "float32"):
            raise SettingsError(f"segmenter dtype {dtype!r}: use bfloat16, float16 or float32")
        self.checkpoint, self.revision, self.device, self.dtype = checkpoint, revision, device, dtype
        self.mask_threshold = mask_threshold
        self._model: Any = None

    def load(self) -> Any:
        """The model on its device (loaded once)."""
        if self._model is None:
            require_torch("the segmenter")
            from transformers import AutoModel

            self.device = select_device(self.device)
            model = load_pretrained(AutoModel, self.checkpoint, self.revision)
            if not hasattr(model, "get_image_embeddings") or not hasattr(
                model.config, "prompt_encoder_config"
            ):
                raise SettingsError(f"segmenter {self.checkpoint!r} is not a SAM 2 checkpoint")
            self._model = model.to(self.device).eval()
        return self._model

    @property
    def _side(self) -> int:
        return int(self.load().config.prompt_encoder_config.image_size)

    def embed(self, image: LoadedImage) -> _Features:
        torch = require_torch("the segmenter")
        model, side = self.load(), self._side
        pixels = host_to_device(np.array(image.rgb)[None], self.device or "cpu").permute(0, 3, 1, 2)
        with torch.inference_mode(), autocast(self.device or "cpu", self.dtype):
            embeddings = model.get_image_embeddings(normalise_pixels(pixels, (side, side), SAM_MEAN, SAM_STD))
        return _Features(embeddings, image.info.height, image.info.width)

    def segment(self, features: Any, prompt: Prompt) -> Segment:
        if not isinstance(features, _Features):
            raise PrelabelError("features of another segmenter were given to SAM 2")
        torch = require_torch("the segmenter")
        model, side, device = self.load(), self._side, self.device or "cpu"
        scale = np.array([side / features.width, side / features.height])
        inputs: dict[str, Any] = {}
        if len(prompt.points):
            points = prompt.points * scale
            inputs["input_points"] = torch.tensor(points[None, None], dtype=torch.float32, device=device)
            inputs["input_labels"] = torch.tensor(prompt.labels[None, None], dtype=torch.long, device=device)
        if prompt.box is not None:
            box = prompt.box * np.tile(scale, 2)
            inputs["input_boxes"] = torch.tensor(box[None, None], dtype=torch.float32, device=device)
        ambiguous = prompt.box is None and len(prompt.points) == 1
        with torch.inference_mode(), autocast(device, self.dtype):
            outputs = model(image_embeddings=features.embeddings, multimask_output=ambiguous, **inputs)
            scores = outputs.iou_scores[0, 0].float()
            best = int(scores.argmax())
            logits = torch.nn.functional.interpolate(
                outputs.pred_masks[0, 0, best][None, None].float(),
                (features.height, features.width),
                mode="bilinear",
                align_corners=False,
            )[0]
            mask = masks_to_coco(logits, self.mask_threshold)[0]
        return Segment(mask if coco_area(mask) else None, float(scores[best]))
