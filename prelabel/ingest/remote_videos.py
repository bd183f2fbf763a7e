"""Remote videos (``s3://`` keys, http(s) URLs) on this machine: PyAV reads files, not bytes.

A run copies each remote video once per process (``local_copy``: it is decoded once to probe and
again to track) into a temporary folder removed when the process ends; ``ingest`` probes one
copy at a time and deletes it at once (``probe_source_video``), so its disk holds one video.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prelabel.ingest.fetch import Fetcher

if TYPE_CHECKING:
    from prelabel.video.probe import VideoInfo

__all__ = ["REMOTE", "local_copy", "probe_source_video", "video_fields"]

REMOTE = ("s3://", "http://", "https://")
"""What a video URI names when it is not a path on this machine."""

_copies: list[Path] = []  # the process's folder of copies, made on first use
_copies_lock = threading.Lock()


def _name(uri: str) -> str:
    return PurePosixPath(urlsplit(uri).path).name or "video"


def local_copy(uri: str, fetcher: Fetcher) -> str:
    """A remote video's copy for the rest of this process (made once), or a local path as it is."""
    if not uri.startswith(REMOTE):
        return uri
    with _copies_lock:
        if not _copies:
            _copies.append(Path(tempfile.mkdtemp(prefix="prelabel-videos-")))
            atexit.register(shutil.rmtree, _copies[0], True)
    name = _name(uri)
    copy = _copies[0] / hashlib.sha256(uri.encode()).hexdigest()[:16] / name
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        part = copy.with_name(f"{name}.part")
        fetcher.download(uri, part)
        part.replace(copy)
    return str(copy)


def probe_source_video(uri: str, fetcher: Fetcher) -> VideoInfo:
    """``uri`` probed (size, frame times, content hash), a remote one from a copy deleted after."""
    from prelabel.video.probe import probe_video  # numpy and PyAV: only where a video is read

    if not uri.startswith(REMOTE):
        return probe_video(uri)
    with tempfile.TemporaryDirectory(prefix="prelabel-probe-") as folder:
        copy = Path(folder) / _name(uri)
        fetcher.download(uri, copy)
        return probe_video(copy)


def video_fields(video: VideoInfo) -> dict[str, str]:
    """A video's manifest columns beside its size and hash: frames, rate, duration."""
    return {"frames": str(video.frames), "fps": f"{video.rate:.6g}", "duration": f"{video.duration:.3f}"}
