"""Grounded SAM 2's preprocessing on the model's device: uint8 images resized and normalised
as the transformers processors would (``prelabel.predict.models.grounded_sam2``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["SAM_MEAN", "SAM_STD", "detector_pixels", "normalise_pixels"]

# SAM 2 checkpoints are trained on ImageNet-normalised pixels.
SAM_MEAN = (0.485, 0.456, 0.406)
SAM_STD = (0.229, 0.224, 0.225)


def detector_pixels(images: Any, image_processor: Any) -> Any:
    """uint8 (n, 3, H, W) -> Grounding DINO's input, as its image processor's ``pixel_values``.

    Same shape as the processor's; values differ by the processor's rounding to uint8 after
    resizing (mean abs difference about 0.005, tests/unit/predict/models/test_grounded_sam2.py).
    """
    size = image_processor.size
    target = _shortest_edge_size(
        int(images.shape[-2]), int(images.shape[-1]), size["shortest_edge"], size.get("longest_edge")
    )
    return normalise_pixels(images, target, image_processor.image_mean, image_processor.image_std)


def _shortest_edge_size(height: int, width: int, shortest: int, longest: int | None) -> tuple[int, int]:
    """The (height, width) DETR-style processors resize to: shortest edge, capped longest edge
    (transformers' ``get_size_with_aspect_ratio``: the capped short edge rounds, the long edge
    is cut from the unrounded one)."""
    size, raw = shortest, float(shortest)
    if longest is not None:
        low, high = min(height, width), max(height, width)
        if high / low * size > longest:
            raw = longest * low / high
            size = round(raw)
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return int(raw * height / width), size
    return size, int(raw * width / height)


def normalise_pixels(images: Any, size: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> Any:
    """uint8 (n, 3, H, W) -> resized (antialiased bilinear), scaled to [0, 1], normalised floats."""
    import torch

    pixels = images.float() / 255.0
    if tuple(pixels.shape[-2:]) != size:
        pixels = torch.nn.functional.interpolate(
            pixels, size=size, mode="bilinear", align_corners=False, antialias=True
        )
    shift = torch.tensor(mean, device=pixels.device).view(1, 3, 1, 1)
    scale = torch.tensor(std, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - shift) / scale
