"""Ingest s3: the tests of `test_ingest.py` that need real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from prelabel.core.errors import SourceError
from prelabel.core.settings import Settings
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.sources import SourceItem, iter_s3
from prelabel.store.s3 import s3_client
from tests.unit.ingest.test_ingest import SAMPLES


def test_s3_prefix_listing_and_reading(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(
        s3_endpoint_url=s3_endpoint, s3_region="us-east-1", s3_access_key_id="k", s3_secret_access_key="s"
    )  # type: ignore[arg-type]
    client = s3_client(settings)
    client.create_bucket(Bucket="listing")
    for i in range(1205):  # more than one listing page
        client.put_object(Bucket="listing", Key=f"p/{i:05d}.png", Body=b"x")
    client.put_object(Bucket="listing", Key="p/._hidden.jpg", Body=b"x")
    client.put_object(Bucket="listing", Key="p/notes.txt", Body=b"x")
    client.put_object(Bucket="listing", Key="p/sub/real.JPG", Body=next(iter(SAMPLES.values())))
    listed = list(iter_s3("s3://listing/p/", settings))
    assert len(listed) == 1206 and listed[-1] == SourceItem("s3://listing/p/sub/real.JPG", "real.JPG")
    fetched = Fetcher(settings).fetch_all(["s3://listing/p/sub/real.JPG", "s3://listing/p/nothing.jpg"])
    assert fetched["s3://listing/p/sub/real.JPG"] == next(iter(SAMPLES.values()))
    assert "NoSuchKey" in str(fetched["s3://listing/p/nothing.jpg"])
    with pytest.raises(SourceError, match="cannot list"):
        list(iter_s3("s3://no-such-bucket/p", settings))


def test_videos_kept_whole_from_a_prefix_a_row_each_with_size_frames_and_rate(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prelabel.ingest.manifest import SourceSpec, ingest_items, iter_source
    from prelabel.video.probe import probe_video
    from tests.support.videos import write_video

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where a copy goes while probed
    seen: list[str] = []

    def probe(path: Path) -> object:
        seen.append(str(path))
        return probe_video(path)

    monkeypatch.setattr("prelabel.video.probe.probe_video", probe)
    settings = Settings(
        s3_endpoint_url=s3_endpoint, s3_region="us-east-1", s3_access_key_id="k", s3_secret_access_key="s"
    )  # type: ignore[arg-type]
    client = s3_client(settings)
    client.create_bucket(Bucket="clips")
    video = write_video(tmp_path / "dock.webm", frames=9, fps=9)
    client.upload_file(str(video), "clips", "cams/dock.webm")
    client.upload_file(str(video), "clips", "cams/again/dock-copy.webm")  # the same bytes again
    client.put_object(Bucket="clips", Key="cams/broken.mp4", Body=b"not a video")
    client.put_object(Bucket="clips", Key="cams/still.jpg", Body=next(iter(SAMPLES.values())))  # not a video
    fetcher = Fetcher(settings)
    spec = SourceSpec("s3://clips/cams/", videos=True)
    result = ingest_items(iter_source(spec, fetcher, settings), fetcher, videos=True)
    probed = probe_video(video)
    assert [(r.uri, r.name, r.sha256, r.width, r.height) for r in result.rows] == [
        ("s3://clips/cams/again/dock-copy.webm", "dock-copy.webm", probed.sha256, 96, 64)
    ]
    assert result.rows[0].fields == {"frames": "9", "fps": "9", "duration": f"{probed.duration:.3f}"}
    assert [(d.uri, d.duplicate_of, d.reason) for d in result.duplicates] == [
        ("s3://clips/cams/dock.webm", "s3://clips/cams/again/dock-copy.webm", "same bytes")
    ]
    assert [e.file for e in result.errors] == ["s3://clips/cams/broken.mp4"] and result.listed == 3
    assert len(seen) == 3 and all(path.startswith(str(tmp_path / "tmp")) for path in seen)  # copies
    assert list((tmp_path / "tmp").iterdir()) == []  # each deleted once probed
    with pytest.raises(SourceError, match="videos come from a folder"):
        list(iter_source(SourceSpec("ls://3", videos=True), fetcher, settings))
