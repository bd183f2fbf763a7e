"""Label Studio's frames of a video, and which decoded frame each one shows.

Label Studio numbers a video's frames 1..``framesCount`` at the ``<Video frameRate>`` of the
labeling config (a number, or ``$key`` of the task's data; 24 when absent or unreadable, the
inverse of a rate below 1), whatever the file's own rate. Frame ``k`` seeks the player to
``(k - 1) / rate`` plus 2 ms, so it shows the last decoded frame that starts by then, and
``framesCount`` is ``round(duration * rate)`` (Label Studio 1.23.2's frontend, with its
frame-seek precision flag on, as shipped). Predictions are built on that grid so that each
box lands on the picture the editor shows, also for variable frame rates and for a config
whose rate is not the file's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.labelstudio.config import ObjectTag

__all__ = ["DEFAULT_RATE", "SEEK_PAST", "frames_count", "ls_frame_rate", "shown_frames"]

DEFAULT_RATE = 24.0
SEEK_PAST = 0.002  # seconds past a frame's start that the frontend seeks to


def ls_frame_rate(video: ObjectTag, data: Mapping[str, Any] | None = None) -> float:
    """The frame rate Label Studio counts a task's video in (as its ``Video`` tag reads it)."""
    raw: Any = video.frame_rate
    if raw.startswith("$"):
        raw = (data or {}).get(raw[1:], "")
    try:
        rate = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_RATE
    if not math.isfinite(rate) or rate <= 0:
        return DEFAULT_RATE
    return 1 / rate if rate < 1 else rate


def frames_count(duration: float, rate: float) -> int:
    """How many frames Label Studio's timeline has (at least one)."""
    return max(1, round(duration * rate))


def shown_frames(times: npt.NDArray[np.float64], rate: float, count: int) -> npt.NDArray[np.int64]:
    """For each Label Studio frame 1..``count``, the 0-based index of the decoded frame it shows
    (``times``: the decoded frames' start times in seconds, sorted); shape (count,)."""
    seek = (np.arange(count, dtype=np.float64)) / rate + SEEK_PAST
    shown = np.searchsorted(times, seek, side="right") - 1
    return np.clip(shown, 0, max(len(times) - 1, 0)).astype(np.int64)
