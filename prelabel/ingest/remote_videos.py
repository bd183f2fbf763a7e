"""Remote videos (``s3://`` keys, http(s) URLs) on this machine: PyAV reads files, not bytes.

A remote video is copied into a temporary folder for as long as one step needs it, then
deleted: probed (``probe_source_video``: ingest, and a run before it matches tasks) and, when
not cached, tracked (``video_file``). Disk holds the videos in use at once, never a data set; a
remote video is fetched once per step that reads its frames. Every failure names the URI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prelabel.core.errors import SourceError
from prelabel.core.redact import safe_url
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.sources import REMOTE_SCHEMES

if TYPE_CHECKING:
    from prelabel.video.probe import VideoInfo

__all__ = ["check_video_uri", "probe_source_video", "video_fields", "video_file"]


def check_video_uri(uri: str) -> None:
    """A video URI prelabel reads: a path, an ``s3://`` key or an http(s) URL (another scheme
    would be handed to FFmpeg, which would fetch it past every guard)."""
    if "://" in uri and not uri.startswith(REMOTE_SCHEMES):
        raise SourceError(f"{safe_url(uri)}: unsupported scheme (use a local path, s3:// or http(s)://)")


@contextmanager
def _copy(uri: str, fetcher: Fetcher) -> Iterator[Path]:
    """A temporary copy of remote ``uri`` (named by a hash of it, with its suffix), deleted after."""
    try:
        suffix = PurePosixPath(urlsplit(uri).path).suffix.lower()
    except ValueError as exc:
        raise SourceError(f"{safe_url(uri)}: malformed URI ({exc})") from exc
    kept = suffix if suffix[1:].isalnum() and suffix.isascii() and len(suffix) <= 8 else ""
    name = hashlib.sha256(uri.encode()).hexdigest()[:16] + kept
    with tempfile.TemporaryDirectory(prefix="prelabel-video-") as folder:
        copy = Path(folder) / name
        try:
            fetcher.download(uri, copy)
        except OSError as exc:  # the disk: full, or refusing the file
            raise SourceError(f"{safe_url(uri)}: cannot copy it here ({exc.strerror or exc})") from exc
        yield copy


def _named(uri: str, copy: Path, exc: SourceError) -> SourceError:
    """``exc`` about the temporary ``copy``, said of ``uri`` (the copy is gone when anyone reads it)."""
    return SourceError(str(exc).replace(str(copy), safe_url(uri)))


def probe_source_video(uri: str, fetcher: Fetcher) -> VideoInfo:
    """``uri`` probed (size, frame times, content hash); a remote one from a copy deleted after,
    its ``path`` the URI again (``video_file`` gives a copy when frames are read)."""
    from prelabel.video.probe import probe_video  # numpy and PyAV: only where a video is read

    check_video_uri(uri)
    if not uri.startswith(REMOTE_SCHEMES):
        return probe_video(uri)
    with _copy(uri, fetcher) as copy:
        try:
            return dataclasses.replace(probe_video(copy), path=uri)
        except SourceError as exc:
            raise _named(uri, copy, exc) from exc


@contextmanager
def video_file(video: VideoInfo, fetcher: Fetcher | None) -> Iterator[VideoInfo]:
    """``video`` with a ``path`` PyAV can open: itself when local, else a copy for the block's life."""
    if not video.path.startswith(REMOTE_SCHEMES):
        yield video
        return
    if fetcher is None:
        from prelabel.core.settings import load_settings

        fetcher = Fetcher(load_settings())  # S3's endpoint and keys
    with _copy(video.path, fetcher) as copy:
        yield dataclasses.replace(video, path=str(copy))


def video_fields(video: VideoInfo) -> dict[str, str]:
    """A video's manifest columns beside its size and hash: frames, rate, duration."""
    return {"frames": str(video.frames), "fps": f"{video.rate:.6g}", "duration": f"{video.duration:.3f}"}
