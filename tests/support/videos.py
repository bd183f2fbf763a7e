"""Small videos made with PyAV: coloured shapes moving over a plain background, so no binary
fixtures are committed. Each shape's true box on every frame comes back with the file."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Shape:
    """A filled rectangle of ``color`` and ``size`` (w, h) moving from ``start`` by ``step``
    pixels a frame, on screen from frame ``enter`` up to (not including) ``leave``."""

    color: tuple[int, int, int]
    size: tuple[int, int]
    start: tuple[float, float]
    step: tuple[float, float]
    enter: int = 0
    leave: int | None = None

    def box(self, frame: int) -> tuple[float, float, float, float] | None:
        if frame < self.enter or (self.leave is not None and frame >= self.leave):
            return None
        x = self.start[0] + self.step[0] * frame
        y = self.start[1] + self.step[1] * frame
        return (round(x), round(y), round(x) + self.size[0], round(y) + self.size[1])


SHAPES = (
    Shape((230, 40, 40), (14, 10), (4, 6), (3, 1)),
    Shape((40, 60, 230), (10, 12), (60, 30), (-2, 1), enter=2),
)


def write_video(
    path: Path,
    frames: int = 12,
    size: tuple[int, int] = (96, 64),
    fps: int = 12,
    shapes: tuple[Shape, ...] = SHAPES,
    times: list[float] | None = None,
) -> Path:
    """Write a video (VP8 in WebM, or H.264 in MP4 by the suffix); ``times`` (seconds) gives each
    frame's own timestamp: a variable frame rate."""
    import av

    codec = "libvpx" if path.suffix == ".webm" else "libx264"
    base = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = base
        if codec == "libvpx":
            stream.options = {"lag-in-frames": "0", "auto-alt-ref": "0"}
        for n in range(frames):
            rgb = np.full((size[1], size[0], 3), 250, dtype=np.uint8)
            for shape in shapes:
                box = shape.box(n)
                if box is not None:
                    x1, y1, x2, y2 = (int(v) for v in box)
                    rgb[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = shape.color
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = round((times[n] if times is not None else n / fps) / base)
            frame.time_base = base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
