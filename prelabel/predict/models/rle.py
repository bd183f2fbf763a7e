"""Masks thresholded and run-length encoded where they are (CPU or CUDA), change points copied back.

Why: a 1080p mask is 2 MB on the device; copying ten of them to the host costs more than
the model's mask decoder, and ``pycocotools.encode`` then walks every pixel on one CPU
thread. The change points of a mask are a few hundred numbers, so the whole upsampled mask
is thresholded and compared with itself shifted by one pixel on the device (column-major,
COCO's order; nothing is cropped, since SAM 2 masks can leave their box), and only the
positions where the value changes travel to the host. The runs they give are COCO RLE's
uncompressed counts; pycocotools compresses them to the same string ``encode`` writes.

torch is imported lazily (the ``models`` extra); the result is plain numpy and str.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.convert.masks import CocoRle, runs_to_coco
from prelabel.core.errors import MaskError

__all__ = ["masks_to_coco", "masks_to_runs"]


def masks_to_runs(masks: Any, threshold: float | None = None) -> list[npt.NDArray[np.int64]]:
    """COCO's uncompressed counts of each mask in an (n, H, W) tensor, computed on its device.

    ``masks`` is bool (used as is) or numeric (foreground where ``> threshold``; ``threshold``
    is then required). Counts alternate background and foreground runs in column-major
    order, starting with background (a first count of 0 when the first pixel is set); they
    sum to H * W. Only the change positions (int64, a few per column) and the first pixel of
    each mask are copied to the host.
    """
    import torch

    if masks.ndim != 3:
        raise MaskError(f"masks must be (n, height, width), got shape {tuple(masks.shape)}")
    count, height, width = (int(v) for v in masks.shape)
    if height * width == 0:
        raise MaskError(f"cannot encode masks of {height}x{width} pixels")
    if count == 0:
        return []
    if masks.dtype == torch.bool:
        binary = masks
    elif threshold is None:
        raise MaskError(f"masks of dtype {masks.dtype} need a threshold")
    else:
        binary = masks > threshold
    # Column-major, as COCO counts run: (n, W * H), one copy on the device.
    flat = binary.transpose(1, 2).reshape(count, height * width)
    change = torch.nonzero(flat[:, 1:] != flat[:, :-1])  # (k, 2) rows sorted by (mask, position)
    first = flat[:, 0].cpu().numpy()
    where = change.cpu().numpy()
    # Split the change positions per mask; a change after position p starts a run at p + 1.
    bounds = np.searchsorted(where[:, 0], np.arange(count + 1))
    positions = where[:, 1] + 1
    total = height * width
    runs = []
    for m in range(count):
        edges = np.concatenate(([0], positions[bounds[m] : bounds[m + 1]], [total]))
        lengths = np.diff(edges)
        if first[m]:
            lengths = np.concatenate(([0], lengths))
        runs.append(lengths.astype(np.int64))
    return runs


def masks_to_coco(masks: Any, threshold: float | None = None) -> list[CocoRle]:
    """Compressed COCO RLE of each (H, W) mask of an (n, H, W) tensor, equal to ``mask_to_coco``'s."""
    height, width = (int(v) for v in masks.shape[1:]) if masks.ndim == 3 else (0, 0)
    return [runs_to_coco(runs, height, width) for runs in masks_to_runs(masks, threshold)]
