"""Instances of one image found by several concept prompts: vetoed, merged, boxed.

A concept model answers each phrase on its own, so one object can come back once per phrase
that fits it (``car`` and ``vehicle``), and a look-alike can come back from a negative
phrase. These work on the instances' low-resolution masks on the device: one matrix
product gives every pair's mask IoU, and the greedy passes run on the host over that small
matrix (a few hundred instances at most).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["box_iou", "mask_boxes", "mask_iou", "settle"]


def mask_iou(binary: Any) -> npt.NDArray[np.float64]:
    """IoU of every pair of (n, h, w) boolean masks, as an (n, n) host array (0 where both are empty)."""
    import torch

    flat = binary.flatten(1).float()
    inter = flat @ flat.T
    area = flat.sum(1)
    union = area[:, None] + area[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    return np.asarray(iou.cpu().numpy(), dtype=np.float64)


def settle(
    scores: Sequence[float],
    labels: Sequence[str | None],
    phrases: Sequence[int],
    vetoes: Sequence[frozenset[str]],
    iou: npt.NDArray[np.float64],
    overlap: float,
) -> tuple[list[int], int, int]:
    """Which instances to keep, best first; with how many a negative vetoed and how many merged.

    ``labels[i]`` is the label an instance was found for (None: found by a negative phrase,
    which vetoes the labels in ``vetoes[i]``); ``phrases[i]`` the phrase that found it. An
    instance is vetoed when a better-scoring negative of its label covers it (mask IoU at
    least ``overlap``), and merged away when a better-scoring instance of another phrase
    does: one object found by two phrases is one region, with the better score and the
    label of that phrase. Instances of one phrase never merge: the model already keeps one
    query per object there, and two touching objects of one kind stay two.
    """
    score = np.asarray(scores, dtype=np.float64)
    phrase = np.asarray(phrases, dtype=np.int64)
    negative = np.array([label is None for label in labels], dtype=bool)
    vetoing = {label: np.array([label in v for v in vetoes], dtype=bool) for label in set(labels) - {None}}
    kept_mask = np.zeros(len(scores), dtype=bool)
    kept: list[int] = []
    vetoed = merged = 0
    for i in np.argsort(-score, kind="stable").tolist():
        label = labels[i]
        if label is None:
            continue
        covering = iou[i] >= overlap
        if (covering & negative & vetoing[label] & (score > score[i])).any():
            vetoed += 1
        elif (covering & kept_mask & (phrase != phrase[i])).any():
            merged += 1
        else:
            kept_mask[i] = True
            kept.append(i)
    return kept, vetoed, merged


def mask_boxes(binary: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The tight xyxy pixel box of each (n, H, W) boolean mask (edges: a set pixel at column
    c spans [c, c + 1)), computed on the device, and which masks have any pixel set."""
    import torch

    rows, cols = binary.any(2), binary.any(1)  # (n, H), (n, W)
    height, width = rows.shape[1], cols.shape[1]
    first_y, first_x = rows.int().argmax(1), cols.int().argmax(1)
    last_y = height - 1 - rows.flip(1).int().argmax(1)
    last_x = width - 1 - cols.flip(1).int().argmax(1)
    boxes = torch.stack([first_x, first_y, last_x + 1, last_y + 1], 1)
    return np.asarray(boxes.cpu().numpy(), dtype=np.float64), rows.any(1).cpu().numpy()


def box_iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """IoU of each pair of rows of two (n, 4) xyxy arrays (0 where both are empty)."""
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2, y2 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
