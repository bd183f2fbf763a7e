"""Frames streamed in chunks: memory holds one chunk of decoded frames, whatever the video's length."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import SourceError
from prelabel.video.probe import require_av

__all__ = ["FrameChunk", "iter_chunks"]


@dataclass(frozen=True, eq=False)
class FrameChunk:
    """Consecutive decoded frames: ``rgb`` (n, height, width, 3) uint8, the first one numbered
    ``start`` (0-based, in presentation order)."""

    start: int
    rgb: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.rgb.shape[0])


def iter_chunks(path: str | Path, size: int) -> Iterator[FrameChunk]:
    """The video's frames, ``size`` at a time, in presentation order (PyAV decodes in order)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    av = require_av()
    source = Path(path)
    buffer: list[npt.NDArray[np.uint8]] = []
    start = 0
    try:
        with av.open(str(source)) as container:  # type: ignore[attr-defined]
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                buffer.append(frame.to_ndarray(format="rgb24"))
                if len(buffer) == size:
                    yield FrameChunk(start, np.stack(buffer))
                    start, buffer = start + size, []
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:  # type: ignore[attr-defined]
        raise SourceError(f"{source}: cannot decode video ({exc})") from exc
    if buffer:
        yield FrameChunk(start, np.stack(buffer))
