"""Tracks: every object found in a video, its box on each frame it is seen, with an identity.

A ``Track`` holds parallel arrays (supervision's shape, as ``Detections`` does for an image):
the 0-based frame indices it is seen on (m,), boxes xyxy in pixels (m, 4), scores (m,) and
a label per frame (m,). ``VideoTracks`` is one video's tracks; it round-trips through JSON
for the cache (``prelabel.video.cache``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import PredictionFileError

__all__ = ["Track", "TrackBuilder", "VideoTracks"]


@dataclass(frozen=True, eq=False)
class Track:
    """One object through a video; ``frames`` strictly increasing."""

    id: int
    frames: npt.NDArray[np.int64]
    xyxy: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = frames.shape[0]
        for name, size in (
            ("xyxy", xyxy.shape[0]),
            ("scores", scores.shape[0]),
            ("labels", len(self.labels)),
        ):
            if size != n:
                raise ValueError(f"track {self.id}: {name} must have {n} entries to match frames, got {size}")
        if n and (np.diff(frames) <= 0).any():
            raise ValueError(f"track {self.id}: frames must be strictly increasing")
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def label(self) -> str:
        """The label most of its frames carry (ties: the one seen first)."""
        counts = Counter(self.labels)
        best = max(counts.values())
        return next(label for label in self.labels if counts[label] == best)

    @property
    def score(self) -> float:
        """The mean of its frames' scores."""
        return float(self.scores.mean()) if len(self) else 0.0


@dataclass(frozen=True, eq=False)
class VideoTracks:
    """One video's tracks on its decoded frames (``frames`` of ``width`` x ``height`` pixels)."""

    frames: int
    width: int
    height: int
    tracks: tuple[Track, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "tracks": [
                {
                    "id": t.id,
                    "frames": t.frames.tolist(),
                    "xyxy": t.xyxy.round(3).tolist(),
                    "scores": t.scores.round(6).tolist(),
                    "labels": list(t.labels),
                }
                for t in self.tracks
            ],
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<tracks>") -> VideoTracks:
        """Parse ``to_json``'s shape; anything else raises ``PredictionFileError``."""
        try:
            tracks = tuple(
                Track(
                    int(t["id"]),
                    np.asarray(t["frames"]),
                    np.asarray(t["xyxy"], dtype=np.float64),
                    np.asarray(t["scores"], dtype=np.float64),
                    tuple(t["labels"]),
                )
                for t in data["tracks"]
            )
            return cls(int(data["frames"]), int(data["width"]), int(data["height"]), tracks)
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictionFileError(source, f"not a tracks document ({exc})") from exc


@dataclass
class TrackBuilder:
    """Collects a tracker's per-frame outputs (object id -> box, score, label) into tracks."""

    boxes: dict[int, list[tuple[int, Sequence[float], float, str]]] = field(default_factory=dict)

    def add(
        self,
        frame: int,
        ids: Sequence[int],
        xyxy: npt.ArrayLike,
        scores: Sequence[float],
        labels: Sequence[str],
    ) -> None:
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        for obj, box, score, label in zip(ids, boxes, scores, labels, strict=True):
            self.boxes.setdefault(int(obj), []).append((frame, box.tolist(), float(score), str(label)))

    def build(self, frames: int, width: int, height: int) -> VideoTracks:
        """The tracks, numbered 1, 2, ... in the order the objects first appear."""
        order = sorted(self.boxes, key=lambda obj: (self.boxes[obj][0][0], obj))
        tracks = []
        for number, obj in enumerate(order, start=1):
            rows = sorted(self.boxes[obj], key=lambda row: row[0])
            tracks.append(
                Track(
                    number,
                    np.array([r[0] for r in rows]),
                    np.array([r[1] for r in rows]),
                    np.array([r[2] for r in rows]),
                    tuple(r[3] for r in rows),
                )
            )
        return VideoTracks(frames, width, height, tuple(tracks))
