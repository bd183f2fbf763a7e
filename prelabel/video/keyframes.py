"""Keyframes of a ``videorectangle``: thinned from a track, and expanded as Label Studio draws them.

The frontend (1.23.2, ``VideoRectangleRegion.getShape`` and ``VideoRegion.isInLifespan``)
draws a region on frame ``t`` from its keyframes sorted by frame:

- the shape: a keyframe at ``t`` gives its own box; between two keyframes each value is
  interpolated linearly (rotation along the shorter way round); after the last keyframe the
  last box is held; before the first nothing is drawn;
- the lifespan: the last keyframe at or before ``t`` decides: drawn when it is ``enabled``,
  and a keyframe with ``enabled: false`` is still drawn on its own frame (it ends a segment).

``expand`` follows exactly these rules (``prelabel pull --format mot`` uses it on people's
keyframes). ``thin`` goes the other way: a track's box on each frame it is seen (runs of
consecutive frames) becomes as few keyframes as keep that interpolation within ``min_iou``
(box IoU) of the track on every frame: from each keyframe the next is the farthest frame
reached (found by doubling, then halving), then every keyframe whose neighbours already
interpolate within the tolerance is dropped, until none is. A run that ends before the
video does ends with ``enabled: false`` (the object left or was lost), and a run that
starts again gets a new keyframe. Boxes are in percent of the frame, as posted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Keyframe", "box_iou_xywh", "expand", "thin"]

Boxes = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Keyframe:
    """One keyframe: Label Studio's frame (1-based), the box (percent, x/y its top-left corner),
    its rotation (degrees) and whether the region goes on after it."""

    frame: int
    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0
    enabled: bool = True

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.width, self.height)


def box_iou_xywh(a: Boxes, b: Boxes) -> npt.NDArray[np.float64]:
    """IoU of paired boxes (n, 4) x, y, width, height; two equal boxes of no area count as 1."""
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    same = (a == b).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(same, 1.0, iou)


def _between(
    start: Boxes, end: Boxes, start_frame: int, end_frame: int, frames: npt.NDArray[np.int64]
) -> Boxes:
    """The frontend's ``interpolateProp`` for x, y, width, height on ``frames``."""
    r = (frames - start_frame) / (end_frame - start_frame)
    return start + (end - start) * r[:, None]


def _within(boxes: Boxes, i: int, j: int, min_iou: float) -> bool:
    """Whether keyframes at run positions ``i`` and ``j`` interpolate every frame between them
    within ``min_iou`` of its box (positions are consecutive frames)."""
    if j - i < 2:
        return True
    inner = np.arange(i + 1, j)
    guess = _between(boxes[i], boxes[j], i, j, inner)
    return bool((box_iou_xywh(guess, boxes[inner]) >= min_iou).all())


def _held(boxes: Boxes, i: int, min_iou: float) -> bool:
    """Whether holding the box at position ``i`` covers every later frame of the run."""
    rest = boxes[i + 1 :]
    return bool((box_iou_xywh(np.broadcast_to(boxes[i], rest.shape), rest) >= min_iou).all())


def _run_keys(boxes: Boxes, min_iou: float, holds: bool) -> list[int]:
    """Positions of the keyframes of one run; ``holds``: the run lasts to the video's end, so its
    last box may be held from an earlier keyframe."""
    last = len(boxes) - 1
    keys, i = [0], 0
    while i < last:
        good, step = i + 1, 1
        while good + step <= last and _within(boxes, i, good + step, min_iou):
            good += step
            step *= 2
        bad = min(good + step, last + 1)
        while bad - good > 1:  # good reaches, bad does not (or is past the run)
            middle = (good + bad) // 2
            if _within(boxes, i, middle, min_iou):
                good = middle
            else:
                bad = middle
        keys.append(good)
        i = good
    changed = True
    while changed:
        changed = False
        for k in range(1, len(keys) - 1):
            if _within(boxes, keys[k - 1], keys[k + 1], min_iou):
                del keys[k]
                changed = True
                break
    while (
        holds
        and len(keys) > 1
        and _within(boxes, keys[-2], keys[-1], min_iou)
        and _held(boxes, keys[-2], min_iou)
    ):
        keys.pop()
    return keys


def thin(
    frames: npt.ArrayLike, boxes: npt.ArrayLike, last_frame: int, min_iou: float = 0.9
) -> list[Keyframe]:
    """Keyframes for a track seen on ``frames`` (Label Studio frames, increasing) with ``boxes``
    (n, 4) x, y, width, height in percent; ``last_frame`` is the video's (``framesCount``)."""
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
    seen = np.asarray(frames, dtype=np.int64).reshape(-1)
    shapes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if seen.shape[0] != shapes.shape[0]:
        raise ValueError(f"{seen.shape[0]} frames but {shapes.shape[0]} boxes")
    if seen.size and ((np.diff(seen) <= 0).any() or seen[0] < 1 or seen[-1] > last_frame):
        raise ValueError(f"frames must increase within 1..{last_frame}")
    keyframes: list[Keyframe] = []
    if not seen.size:
        return keyframes
    starts = np.flatnonzero(np.diff(seen, prepend=-1) != 1)
    for a, b in zip(starts, [*starts[1:], len(seen)], strict=True):
        run = shapes[a:b]
        ends_video = int(seen[b - 1]) == last_frame
        keys = _run_keys(run, min_iou, holds=ends_video)
        for k in keys:
            x, y, w, h = (float(v) for v in run[k])
            keyframes.append(Keyframe(int(seen[a + k]), x, y, w, h))
        if not ends_video:
            end = keyframes[-1]
            if end.frame != int(seen[b - 1]):  # the run's last frame ends it (a keyframe there)
                x, y, w, h = (float(v) for v in run[-1])
                end = Keyframe(int(seen[b - 1]), x, y, w, h)
                keyframes.append(end)
            keyframes[-1] = Keyframe(end.frame, end.x, end.y, end.width, end.height, end.rotation, False)
    return keyframes


def _angle(value: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The frontend's ``normalizeAngle``: onto (-180, 180] (JavaScript's sign-keeping %)."""
    a = np.asarray(value, dtype=np.float64).copy()
    positive = a > 0
    a[positive] -= 360 * np.ceil(a[positive] / 360)
    return np.fmod(a - 180, 360) + 180


def expand(sequence: Sequence[Keyframe], frames_count: int) -> tuple[npt.NDArray[np.int64], Boxes]:
    """The frames 1..``frames_count`` on which the frontend draws the region, and the box it
    draws on each, (n,) and (n, 5) x, y, width, height, rotation in percent and degrees.
    Keyframes are sorted by frame first (stably, as the frontend keeps them)."""
    keys = sorted(sequence, key=lambda k: k.frame)
    frames: list[npt.NDArray[np.int64]] = []
    boxes: list[Boxes] = []
    for n, key in enumerate(keys):
        if key.frame > frames_count:
            break
        if n + 1 < len(keys) and keys[n + 1].frame == key.frame:
            continue  # of keyframes on one frame, the last decides the lifespan and what follows
        first = next(k for k in keys if k.frame == key.frame)  # the first gives that frame's box
        following = keys[n + 1] if n + 1 < len(keys) else None
        end = frames_count + 1 if following is None else min(following.frame, frames_count + 1)
        span = np.arange(key.frame, end if key.enabled else key.frame + 1, dtype=np.int64)
        shape = np.empty((len(span), 5))
        if following is None:
            shape[:] = [*key.box, key.rotation]
        else:
            r = (span - key.frame) / (following.frame - key.frame)
            start, stop = np.array(key.box), np.array(following.box)
            shape[:, :4] = start + (stop - start) * r[:, None]
            turn = _angle(np.array([following.rotation - key.rotation]))[0]
            shape[:, 4] = _angle(key.rotation + turn * r)
        shape[0] = [*first.box, first.rotation]
        frames.append(span)
        boxes.append(shape)
    if not frames:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 5))
    return np.concatenate(frames), np.concatenate(boxes)
