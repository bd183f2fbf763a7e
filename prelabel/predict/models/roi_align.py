"""``torchvision.ops.roi_align`` in plain torch, for SAM 3's box exemplars where torchvision cannot load.

Why: SAM 3's geometry encoder pools each exemplar box's image features with torchvision's
``roi_align``, and the only torchvision wheel for the CPU torch here is a CUDA build that
fails at import. This computes the same average of bilinear samples (torchvision's rules:
``aligned=False``, an adaptive ``ceil(roi / output)`` grid of samples per bin, samples more
than one pixel outside the map count as 0, others clamp to the edge). Bilinear weights
factor into a row and a column part, so each box is two small matrices and one ``einsum``;
exemplar boxes are few, so the loop over boxes costs nothing next to the model.
``install_roi_align`` hands it to transformers' SAM 3 code only when torchvision is absent.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

__all__ = ["install_roi_align", "roi_align"]


def _weights(positions: Any, size: int) -> Any:
    """(samples, size) bilinear weights of 1-d sample positions on a grid of ``size`` pixels."""
    import torch

    inside = (positions >= -1.0) & (positions <= size)
    at = positions.clamp(min=0.0)
    low = at.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    at = torch.where(low >= size - 1, low.to(at.dtype), at)
    frac = at - low.to(at.dtype)
    weights = torch.zeros((len(positions), size), dtype=positions.dtype, device=positions.device)
    rows = torch.arange(len(positions), device=positions.device)
    weights.index_put_((rows, low), (1 - frac) * inside, accumulate=True)
    weights.index_put_((rows, high), frac * inside, accumulate=True)
    return weights


def roi_align(features: Any, boxes: Any, output_size: int, spatial_scale: float = 1.0) -> Any:
    """Features (n, C, H, W) pooled in each box: (boxes, C, output_size, output_size).

    ``boxes`` is a list (one (k, 4) xyxy tensor per image, in feature pixels before
    ``spatial_scale``), as torchvision takes it; the output lists the boxes image by image.
    """
    import torch

    height, width = int(features.shape[-2]), int(features.shape[-1])
    pooled = []
    for image, image_boxes in enumerate(boxes):
        values = features[image].float()
        for box in image_boxes.float() * spatial_scale:
            x1, y1, x2, y2 = (float(v) for v in box)
            roi_w, roi_h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
            grid_h, grid_w = math.ceil(roi_h / output_size), math.ceil(roi_w / output_size)
            ys = _samples(y1, roi_h / output_size, output_size, grid_h, values.device)
            xs = _samples(x1, roi_w / output_size, output_size, grid_w, values.device)
            sampled = torch.einsum("yh,chw,xw->cyx", _weights(ys, height), values, _weights(xs, width))
            channels = sampled.shape[0]
            pooled.append(sampled.view(channels, output_size, grid_h, output_size, grid_w).mean(dim=(2, 4)))
    if not pooled:
        return features.new_zeros((0, features.shape[1], output_size, output_size))
    return torch.stack(pooled).to(features.dtype)


def _samples(start: float, bin_size: float, bins: int, grid: int, device: Any) -> Any:
    """Sample positions of ``bins`` bins of ``grid`` samples each, at the centre of each sub-bin."""
    import torch

    bin_index = torch.arange(bins, device=device, dtype=torch.float32)[:, None]
    step = (torch.arange(grid, device=device, dtype=torch.float32)[None, :] + 0.5) * bin_size / grid
    return (start + bin_index * bin_size + step).reshape(-1)


def install_roi_align() -> bool:
    """Give transformers' SAM 3 code this ``roi_align`` when torchvision is not importable;
    True when it was installed (with torchvision there, its own runs)."""
    from transformers.models.sam3 import modeling_sam3

    if hasattr(modeling_sam3, "torchvision"):  # imported there when torchvision is available
        return False
    modeling_sam3.torchvision = SimpleNamespace(ops=SimpleNamespace(roi_align=roi_align))  # type: ignore[attr-defined]
    return True
