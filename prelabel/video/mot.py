"""People's video tracks as training data: MOTChallenge CSV and COCO-style JSON, per video.

Each ``videorectangle`` of an annotation is expanded as the frontend draws it
(``prelabel.video.keyframes.expand``) into a box on every frame it is shown, in pixels (a
rotated one as its enclosing box). MOT frame ``k`` is Label Studio's frame ``k``: the k-th
frame of the video when the project counts frames at the video's own rate (as ``prelabel
project create --video`` makes it, through each task's ``fps``). Identities are 1, 2, ... in
the annotation's region order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prelabel.convert.geometry import corners_to_xyxy, percent_to_corners
from prelabel.core.atomic import atomic_write, atomic_write_csv
from prelabel.video.keyframes import expand
from prelabel.video.regions import VideoRegion

__all__ = ["MOT_COLUMNS", "MotRow", "mot_rows", "to_coco_frames", "write_mot", "write_tracks_csv"]

MOT_COLUMNS = ["frame", "id", "x", "y", "w", "h", "conf", "class", "visibility", "z"]


@dataclass(frozen=True)
class MotRow:
    """One box of one track on one frame, in pixels (x, y: top-left corner)."""

    frame: int
    track: int
    x: float
    y: float
    w: float
    h: float
    label: str
    score: float = 1.0


def mot_rows(found: Sequence[VideoRegion], width: int, height: int) -> list[MotRow]:
    """Every region's boxes on the frames it is drawn on, sorted by frame then identity."""
    rows = []
    for number, region in enumerate(found, start=1):
        count = region.frames_count or max((k.frame for k in region.keyframes), default=0)
        frames, boxes = expand(region.keyframes, count)
        for frame, (x, y, w, h, rotation) in zip(frames.tolist(), boxes.tolist(), strict=True):
            if rotation:
                corners = percent_to_corners(
                    {"x": x, "y": y, "width": w, "height": h, "rotation": rotation}, width, height
                )
                x1, y1, x2, y2 = corners_to_xyxy(corners)
            else:
                x1, y1 = x * width / 100, y * height / 100
                x2, y2 = x1 + w * width / 100, y1 + h * height / 100
            score = 1.0 if region.score is None else region.score
            rows.append(MotRow(frame, number, x1, y1, x2 - x1, y2 - y1, region.label, score))
    return sorted(rows, key=lambda r: (r.frame, r.track))


def write_mot(path: Any, rows: Sequence[MotRow]) -> None:
    """MOTChallenge's CSV (no header in the format itself: the columns are ``MOT_COLUMNS``)."""
    lines = "".join(
        f"{r.frame},{r.track},{r.x:.3f},{r.y:.3f},{r.w:.3f},{r.h:.3f},{r.score:.6g},-1,-1,-1\n" for r in rows
    )
    atomic_write(path, lines)


def write_tracks_csv(path: Any, video: str, rows: Sequence[MotRow]) -> None:
    """The same boxes with their video and label, for a table."""
    atomic_write_csv(
        path,
        ["video", *MOT_COLUMNS[:6], "label"],
        ([video, r.frame, r.track, r.x, r.y, r.w, r.h, r.label] for r in rows),
    )


def to_coco_frames(
    video: str, rows: Sequence[MotRow], width: int, height: int, frames_count: int, categories: Sequence[str]
) -> dict[str, Any]:
    """COCO JSON with one image per frame (``<video>/<frame:06d>``, ``frame_index`` 1-based) and
    an annotation per box carrying its ``track_id``; categories in the given order, then others."""
    names = list(dict.fromkeys([*categories, *(r.label for r in rows)]))
    ids = {name: i + 1 for i, name in enumerate(names)}
    images = [
        {
            "id": k,
            "file_name": f"{video}/{k:06d}",
            "frame_index": k,
            "width": width,
            "height": height,
            "video": video,
        }
        for k in range(1, frames_count + 1)
    ]
    annotations = [
        {
            "id": n,
            "image_id": r.frame,
            "category_id": ids[r.label],
            "bbox": [r.x, r.y, r.w, r.h],
            "area": float(np.float64(r.w) * r.h),
            "iscrowd": 0,
            "track_id": r.track,
            "score": r.score,
        }
        for n, r in enumerate(rows, start=1)
    ]
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in ids.items()],
    }
