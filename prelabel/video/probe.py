"""What a video is, read without decoding a frame: size, frame times, rate, duration, content hash.

PyAV demuxes the packets of the first video stream and keeps their presentation times, so
a variable frame rate is told by its timestamps (the average rate is frames / duration),
and the frame count is the packets', not the container's guess. The sha256 of the file's
bytes is the cache key's video half (read in 8 MiB blocks: memory stays flat).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import SourceError

__all__ = [
    "UPLOAD_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "no_videos",
    "probe_video",
    "require_av",
    "upload_problem",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
_BLOCK = 8 << 20
_VARIABLE = 0.01  # a frame interval further than this fraction from the mean: a variable rate


def no_videos(root: str | Path) -> SourceError:
    """The one error of a folder without a single video prelabel reads."""
    kinds = ", ".join(sorted(VIDEO_SUFFIXES))
    return SourceError(f"0 videos found in {root} (prelabel reads {kinds}; hidden files are skipped)")


def require_av() -> object:
    """The PyAV module, or a clear error naming the extra to install."""
    try:
        import av
    except ImportError as exc:
        raise SourceError("videos need PyAV: pip install 'prelabel[video]'") from exc
    return av


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """One video file: ``times`` are its frames' presentation times in seconds from the first
    frame (sorted, shape (frames,)); ``duration`` runs to the end of the last frame."""

    path: str
    sha256: str
    width: int
    height: int
    times: npt.NDArray[np.float64]
    duration: float
    nominal: float = 0.0  # the stream's declared rate (exact for a constant rate: 30000/1001)

    @property
    def frames(self) -> int:
        return int(self.times.shape[0])

    @property
    def rate(self) -> float:
        """Frames per second: the stream's declared rate for a constant rate, else frames / duration."""
        if self.nominal > 0 and not self.variable:
            return self.nominal
        return self.frames / self.duration if self.duration > 0 else 0.0

    @property
    def variable(self) -> bool:
        """Whether frame intervals differ (a variable frame rate)."""
        if self.frames < 3:
            return False
        steps = np.diff(self.times)
        return bool(np.abs(steps - steps.mean()).max() > _VARIABLE * steps.mean())


def probe_video(path: str | Path) -> VideoInfo:
    """Probe a local video file; an unreadable one raises ``SourceError`` naming it."""
    av = require_av()
    source = Path(path)
    try:
        with av.open(str(source)) as container:  # type: ignore[attr-defined]
            if not container.streams.video:
                raise SourceError(f"{source}: no video stream")
            stream = container.streams.video[0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            nominal = float(stream.guessed_rate or stream.average_rate or 0)
            stamps, ends = [], []
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                stamps.append(float(packet.pts * packet.time_base))
                ends.append(float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except (av.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise SourceError(f"{source}: cannot read video ({exc})") from exc
    if not stamps or width <= 0 or height <= 0:
        raise SourceError(f"{source}: no video frames")
    times = np.sort(np.asarray(stamps, dtype=np.float64))
    start = float(times[0])
    times -= start
    last_step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    duration = max(max(ends) - start, float(times[-1]) + last_step)
    return VideoInfo(str(source), _sha256(source), width, height, times, duration, nominal)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


UPLOAD_SUFFIXES = frozenset({".mp4", ".webm"})
"""The video extensions Label Studio 1.23's upload accepts (its ``SUPPORTED_EXTENSIONS``)."""


def upload_problem(path: str, max_pixels: int = 0) -> SourceError | None:
    """Why a local video cannot be uploaded as a task (its extension, or it does not probe), or
    None. ``max_pixels`` is the image check's argument, unused: a frame's size is the video's."""
    suffix = Path(path).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        return SourceError(
            f"{path}: Label Studio does not accept {suffix or 'files without an extension'} video uploads "
            f"(it takes {', '.join(sorted(UPLOAD_SUFFIXES))}): convert it, or serve it from storage"
        )
    try:
        probe_video(path)
    except SourceError as exc:
        return exc
    return None
