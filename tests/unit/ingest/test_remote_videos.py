"""Remote videos copied only while a step reads them, and every failure said of the URI (a web
server in this process stands in for the remote end)."""

from __future__ import annotations

import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from prelabel.core.errors import SourceError
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.remote_videos import probe_source_video, video_file
from tests.support.videos import write_video

pytest.importorskip("av")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A folder on a loopback web server: a video, and a file that is none."""
    (tmp_path / "site").mkdir()
    write_video(tmp_path / "site" / "gate.webm", frames=5)
    (tmp_path / "site" / "notes.webm").write_bytes(b"not a video")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder copies go to, watched."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_remote_video_is_copied_while_probed_and_while_read(
    site: str, scratch: Path, tmp_path: Path
) -> None:
    from prelabel.video.probe import probe_video

    url = f"{site}/gate.webm"
    info = probe_source_video(url, Fetcher())
    here = probe_video(tmp_path / "site" / "gate.webm")
    assert (info.path, info.sha256, info.frames, info.width) == (url, here.sha256, 5, here.width)
    assert list(scratch.iterdir()) == []  # the probe's copy is gone
    with video_file(info, Fetcher()) as local:
        copy = Path(local.path)
        assert (
            copy.parent.parent == scratch
            and copy.read_bytes() == (tmp_path / "site" / "gate.webm").read_bytes()
        )
        assert copy.suffix == ".webm" and local.sha256 == info.sha256
    assert list(scratch.iterdir()) == []  # and the reader's
    with video_file(here, Fetcher()) as same:  # a local video is read where it is
        assert same is here


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("{site}/notes.webm", "{site}/notes.webm: cannot read video"),  # of the URL, not of a copy
        ("{site}/missing.webm", "{site}/missing.webm: HTTP 404"),
        ("ftp://example.org/clip.mp4", "ftp://example.org/clip.mp4: unsupported scheme"),
        ("http://[::1/clip.mp4", "malformed URI"),
    ],
)
def test_a_video_that_cannot_be_read_is_one_error_naming_its_uri(
    uri: str, says: str, site: str, scratch: Path
) -> None:
    with pytest.raises(SourceError) as caught:
        probe_source_video(uri.format(site=site), Fetcher())
    assert says.format(site=site) in str(caught.value) and str(scratch) not in str(caught.value)
    assert list(scratch.iterdir()) == []
