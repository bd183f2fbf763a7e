"""Video files sampled into frames: ``<video stem>_<milliseconds>.jpg``.

Decoded with PyAV (FFmpeg's libraries in the wheel, maintained, exact presentation
timestamps; OpenCV's frame counts and seeking are approximate for variable frame rates).
Frames are decoded in order and one is kept whenever its timestamp reaches the next
sampling instant, so 0.25 fps keeps the frames at 0 s, 4 s, 8 s ...; 0 keeps every frame.
Each frame is written as it is decoded: memory holds one frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prelabel.core.errors import SourceError
from prelabel.ingest.sources import SourceItem
from prelabel.video.probe import VIDEO_SUFFIXES

__all__ = ["VIDEO_SUFFIXES", "iter_video_files", "iter_video_frames"]


def iter_video_files(root: str | Path) -> Iterator[Path]:
    """A video file itself, or the video files under a folder (sorted, hidden ones skipped)."""
    base = Path(root)
    if base.is_file():
        yield base
        return
    if not base.is_dir():
        raise SourceError(f"{base}: no such video file or folder")
    for path in sorted(base.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(base).parts)
        if not hidden and path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            yield path


def iter_video_frames(
    video: str | Path, fps: float, frames_dir: str | Path, quality: int = 95, prefix: str | None = None
) -> Iterator[SourceItem]:
    """Frames of ``video`` at ``fps`` (0: all) written as JPEGs to ``frames_dir`` as
    ``<prefix>_<ms>.jpg`` (prefix: the video's stem)."""
    try:
        import av
    except ImportError as exc:
        raise SourceError("video sources need PyAV: pip install 'prelabel[video]'") from exc
    if fps < 0:
        raise SourceError(f"video fps must be >= 0, got {fps}")
    path, out = Path(video), Path(frames_dir)
    out.mkdir(parents=True, exist_ok=True)
    step_ms = 0.0 if fps == 0 else 1000.0 / fps
    next_ms = 0.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SourceError(f"{path}: no video stream")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if frame.pts is None or frame.time is None:
                    continue
                ms = frame.time * 1000.0
                if ms + 1e-6 < next_ms:
                    continue
                next_ms = (next_ms + step_ms * (1 + (ms - next_ms) // step_ms)) if step_ms else ms
                name = f"{prefix or path.stem}_{round(ms)}.jpg"
                target = out / name
                frame.to_image().save(target, "JPEG", quality=quality)  # type: ignore[no-untyped-call]
                yield SourceItem(str(target), name, {"video": str(path), "ms": str(round(ms))})
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot decode video ({exc})") from exc
