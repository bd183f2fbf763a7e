"""Sources, fetching with faults, sampling, deduplication and manifests (real servers on loopback)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prelabel.core.errors import SourceError
from prelabel.ingest.fetch import Fetcher, FetchOptions
from prelabel.ingest.manifest import ingest_items, read_manifest, write_manifest
from prelabel.ingest.samples import make_samples
from prelabel.ingest.sampling import quotas, stratified_sample
from prelabel.ingest.sources import RestSource, SourceItem, iter_rest, iter_url_list
from prelabel.ingest.video import iter_video_files, iter_video_frames
from prelabel.store.uris import name_of
from tests.support.http_faults import Site, serve

SAMPLES = {s.name: s.data for s in make_samples()}
FAULTS = {
    "slow": "timed out",
    "missing": "HTTP 404",
    "error": "HTTP 500",
    "html": "'text/html' is not an image",
    "truncated": "failed after",
    "huge": "over the 1,048,576-byte limit",
    "garbage": "cannot",
}
QUICK = FetchOptions(concurrency=8, timeout=1.0, retries=2, backoff=0.01, max_bytes=2**20)


@pytest.mark.slow
def test_every_fault_is_that_urls_error_and_the_rest_complete(tmp_path: Path) -> None:
    name = next(iter(SAMPLES))
    with serve(Site(SAMPLES)) as site:
        good = [f"{site.url}/img/{n}" for n in SAMPLES]
        recovering = [f"{site.url}/flaky/{name}", f"{site.url}/limited/{name}"]
        bad = {f"{site.url}/{kind}/{name}": text for kind, text in FAULTS.items()}
        listing = tmp_path / "urls.txt"
        listing.write_text("# images\n" + "\n".join([*good, *recovering, *bad, "ftp://example/x.jpg"]) + "\n")
        result = ingest_items(iter_url_list(listing), Fetcher(options=QUICK))
    errors = {e.file: e.error for e in result.errors}
    for url, text in bad.items():
        assert text in errors[url], (url, errors[url])
    assert "unsupported scheme" in errors["ftp://example/x.jpg"]
    kept = {row.uri for row in result.rows}
    assert set(good) <= kept and not kept & set(bad)
    # the recovered ones hold the same bytes as /img/NAME: reported as duplicates, not lost
    assert {d.uri for d in result.duplicates} == set(recovering)
    assert all(d.duplicate_of == f"{site.url}/img/{name}" for d in result.duplicates)
    assert site.hits[f"/flaky/{name}"] == 2 and site.hits[f"/limited/{name}"] == 2
    assert site.hits[f"/error/{name}"] == 3  # bounded retries


def test_manifest_round_trip_and_clear_errors(tmp_path: Path) -> None:
    local = tmp_path / "images"
    local.mkdir()
    for n, data in SAMPLES.items():
        (local / n).write_bytes(data)
    (local / "copy.jpg").write_bytes(next(iter(SAMPLES.values())))
    items = [SourceItem(str(p), p.name, {"label": "a"}) for p in sorted(local.iterdir())]
    result = ingest_items(items, Fetcher())
    assert len(result.rows) == 4 and len(result.duplicates) == 1 and result.listed == 5
    path = write_manifest(tmp_path / "m.csv", result.rows)
    again = read_manifest(path)
    assert again == result.rows and again[0].fields == {"label": "a"} and again[0].width > 0
    (tmp_path / "bad.csv").write_text("path\nx.jpg\n")
    with pytest.raises(SourceError, match="'uri' column"):
        read_manifest(tmp_path / "bad.csv")
    with pytest.raises(SourceError, match="no such manifest"):
        read_manifest(tmp_path / "none.csv")


def test_paged_rest_source_with_labels() -> None:
    records = [
        {"image_url": f"/img/{i}.jpg", "meta": {"species": "oak" if i % 3 else "pine"}} for i in range(25)
    ]
    with serve(Site({}, records=records)) as site:
        for record in records:
            record["image_url"] = site.url + str(record["image_url"]).split(site.url)[-1]
        source = RestSource(f"{site.url}/api/trees", "trees[].image_url", "meta.species", page_size=10)
        items = list(iter_rest(source, Fetcher(options=QUICK)))
        assert [i.name for i in items] == [f"{i}.jpg" for i in range(25)]
        assert Counter(i.fields["label"] for i in items) == {"oak": 16, "pine": 9}
        assert site.hits["/api/trees"] == 4  # three pages and the empty one
        capped = list(
            iter_rest(
                RestSource(f"{site.url}/api/trees", "trees[].image_url", max_items=12, page_size=10),
                Fetcher(options=QUICK),
            )
        )
        assert len(capped) == 12
        with pytest.raises(SourceError, match="no 'photos'"):
            list(iter_rest(RestSource(f"{site.url}/api/trees", "photos[].url"), Fetcher(options=QUICK)))


def test_stratified_samples_are_exact_and_reproducible() -> None:
    items = [
        SourceItem(f"u{i}", f"{i}.jpg", {"label": "abc"[i % 3] if i < 900 else "d"}) for i in range(1000)
    ]
    label = lambda item: item.fields["label"]  # noqa: E731
    first = stratified_sample(items, 100, label, seed=7)
    again = stratified_sample(items, 100, label, seed=7)
    other = stratified_sample(items, 100, label, seed=8)
    assert first.items == again.items and first.items != other.items and len(first.items) == 100
    assert {s.stratum: s.sampled for s in first.strata} == {"a": 30, "b": 30, "c": 30, "d": 10}
    assert Counter(label(i) for i in first.items) == {"a": 30, "b": 30, "c": 30, "d": 10}
    assert [int(i.uri[1:]) for i in first.items] == sorted(int(i.uri[1:]) for i in first.items)
    equal = stratified_sample(items, 100, label, equal=True, seed=7)
    assert Counter(label(i) for i in equal.items) == {"a": 25, "b": 25, "c": 25, "d": 25}
    assert quotas({"a": 5, "b": 100}, 40, equal=True) == {"a": 5, "b": 35}
    assert quotas({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}
    assert quotas({"a": 3}, 10) == {"a": 3}


def test_sample_before_download_and_missing_column(tmp_path: Path) -> None:
    with serve(Site(SAMPLES)) as site:
        listing = tmp_path / "urls.csv"
        rows = [f"{site.url}/img/{n},{'x' if i % 2 else 'y'}" for i, n in enumerate(SAMPLES)]
        listing.write_text("url,kind\n" + "\n".join(rows) + "\n")
        result = ingest_items(
            iter_url_list(listing), Fetcher(options=QUICK), sample=2, stratify_by="kind", seed=1
        )
        assert len(result.rows) == 2 and {r.fields["kind"] for r in result.rows} == {"x", "y"}
        assert sum(site.hits.values()) == 2  # only the sampled images were downloaded
        assert [(s.stratum, s.available, s.sampled) for s in result.strata] == [("x", 2, 1), ("y", 2, 1)]
        with pytest.raises(SourceError, match="no 'species' column"):
            ingest_items(iter_url_list(listing), Fetcher(options=QUICK), sample=2, stratify_by="species")
    with pytest.raises(SourceError, match="no 'link' column"):
        list(iter_url_list(listing, url_column="link"))


def test_names_from_uris() -> None:
    assert name_of("http://h/a/My%20Photo.jpg?sig=1") == "My Photo.jpg"
    assert name_of("s3://b/k/x.png") == "x.png" and name_of("/tmp/y.jpg") == "y.jpg"


def _make_video(path: Path, seconds: int = 3, fps: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            pixels = np.full((48, 64, 3), (i * 8) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_frames_at_a_rate_and_all(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    _make_video(videos / "clip.mp4")
    (videos / "notes.txt").write_text("x")
    assert list(iter_video_files(videos)) == [videos / "clip.mp4"]
    frames = list(iter_video_frames(videos / "clip.mp4", 1.0, tmp_path / "frames"))
    assert [f.name for f in frames] == ["clip_0.jpg", "clip_1000.jpg", "clip_2000.jpg"]
    assert Image.open(frames[1].uri).size == (64, 48) and frames[1].fields["ms"] == "1000"
    quarter = list(iter_video_frames(videos / "clip.mp4", 0.25, tmp_path / "q"))
    assert [f.name for f in quarter] == ["clip_0.jpg"]
    every = list(iter_video_frames(videos / "clip.mp4", 0, tmp_path / "all"))
    assert len(every) == 30 and every[1].name == "clip_100.jpg"
    (videos / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match=r"broken\.mp4"):
        list(iter_video_frames(videos / "broken.mp4", 1.0, tmp_path / "b"))
