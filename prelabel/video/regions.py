"""Tracks as Label Studio ``videorectangle`` regions, and people's regions read back as keyframes.

A track becomes one region: its boxes on Label Studio's frames (``prelabel.video.timeline``),
thinned to keyframes (``prelabel.video.keyframes``), its label the majority of its frames'
(through the label map; a label the project lacks is counted, not posted) and its score the
mean of its frames'. ``time`` of a keyframe is ``frame / rate``, as the frontend writes it
when a person saves. Geometry is converted once, here, with ``prelabel.convert.geometry``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.convert.geometry import xyxy_to_percent
from prelabel.core.errors import LabelConfigError
from prelabel.labelstudio.config import ControlTag, LabelConfig
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.video.keyframes import Keyframe, thin
from prelabel.video.tracks import VideoTracks

__all__ = ["TrackRegions", "VideoRegion", "keyframes_of", "track_regions", "video_controls", "video_regions"]

RESULT_TYPE = "videorectangle"


def video_controls(config: LabelConfig) -> tuple[ControlTag, tuple[str, ...]]:
    """The ``<VideoRectangle>`` on the config's video and the labels its regions may carry."""
    video = config.video
    box = config.find("VideoRectangle", video.name)
    labels = config.video_labels
    if box is None or not labels:
        raise LabelConfigError(
            f"video tracks need a <VideoRectangle> and <Labels> on video {video.name!r}; add e.g. "
            f'<Labels name="label" toName="{video.name}"><Label value="car"/></Labels>'
            f'<VideoRectangle name="box" toName="{video.name}"/> (prelabel project create --video does)'
        )
    return box, labels


@dataclass
class TrackRegions:
    """One video's regions and what was left out: labels the project lacks (counted per label)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    keyframes: int = 0
    unmatched_labels: Counter[str] = field(default_factory=Counter)

    @property
    def score(self) -> float:
        scores = [r["score"] for r in self.results]
        return float(np.mean(scores)) if scores else 0.0


def track_regions(
    found: VideoTracks,
    shown: npt.NDArray[np.int64],
    rate: float,
    duration: float,
    config: LabelConfig,
    label_map: LabelMap,
    min_iou: float = 0.9,
) -> TrackRegions:
    """A region per track; ``shown`` is the decoded frame each Label Studio frame shows
    (``timeline.shown_frames``: its length is ``framesCount``)."""
    control, labels = video_controls(config)
    count = len(shown)
    out = TrackRegions()
    for track in found.tracks:
        label = label_map.resolve(track.label, labels)
        if label is None:
            out.unmatched_labels[track.label] += 1
            continue
        where = np.searchsorted(track.frames, shown)
        where = np.minimum(where, len(track) - 1)
        seen = track.frames[where] == shown  # Label Studio frames whose picture the track is on
        if not seen.any():
            continue
        boxes = np.array(
            [list(xyxy_to_percent(b, found.width, found.height).values()) for b in track.xyxy[where[seen]]]
        )
        keys = thin(np.flatnonzero(seen) + 1, boxes, count, min_iou)
        out.keyframes += len(keys)
        out.results.append(
            {
                "id": f"track-{track.id}",
                "type": RESULT_TYPE,
                "from_name": control.name,
                "to_name": control.to_name,
                "origin": "prediction",
                "score": track.score,
                "value": {
                    "framesCount": count,
                    "duration": duration,
                    "labels": [label],
                    "sequence": [_keyframe_json(k, rate) for k in keys],
                },
            }
        )
    return out


def _keyframe_json(key: Keyframe, rate: float) -> dict[str, Any]:
    return {
        "frame": key.frame,
        "time": key.frame / rate,
        "x": key.x,
        "y": key.y,
        "width": key.width,
        "height": key.height,
        "rotation": key.rotation,
        "enabled": key.enabled,
    }


@dataclass(frozen=True)
class VideoRegion:
    """A person's (or a prediction's) ``videorectangle``: its id, label, keyframes, frame count."""

    region_id: str
    label: str
    keyframes: tuple[Keyframe, ...]
    frames_count: int
    score: float | None = None


def keyframes_of(result: Mapping[str, Any]) -> VideoRegion:
    """A ``videorectangle`` result read; a malformed one raises ``ValueError`` saying what.
    A keyframe without ``enabled`` counts as not enabled, as the frontend reads it."""
    value = result.get("value")
    if not isinstance(value, Mapping) or not isinstance(value.get("sequence"), list):
        raise ValueError("a videorectangle needs value.sequence, a list of keyframes")
    keys = []
    for n, item in enumerate(value["sequence"]):
        try:
            keys.append(
                Keyframe(
                    int(item["frame"]),
                    float(item["x"]),
                    float(item["y"]),
                    float(item["width"]),
                    float(item["height"]),
                    float(item.get("rotation") or 0.0),
                    bool(item.get("enabled", False)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"keyframe {n} needs frame, x, y, width and height numbers ({exc})") from exc
    labels = value.get("labels") or []
    count = int(value.get("framesCount") or 0) or max((k.frame for k in keys), default=0)
    score = result.get("score")
    return VideoRegion(
        str(result.get("id") or ""),
        str(labels[0]) if labels else "",
        tuple(keys),
        count,
        float(score) if isinstance(score, int | float) else None,
    )


def video_regions(results: Iterable[Mapping[str, Any]]) -> tuple[list[VideoRegion], list[str]]:
    """The ``videorectangle`` results of an annotation or prediction, and why each unreadable one failed."""
    found, errors = [], []
    for result in results:
        if result.get("type") != RESULT_TYPE:
            continue
        try:
            found.append(keyframes_of(result))
        except ValueError as exc:
            errors.append(f"region {result.get('id', '?')}: {exc}")
    return found, errors
