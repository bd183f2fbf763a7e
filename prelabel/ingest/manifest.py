"""Manifests: the CSV list of images a run works on, and ``ingest_items`` that writes one.

A manifest row is an image reference (``uri``: a local path, ``s3://`` key or URL), its file
name, content hash and displayed size, plus the source's extra columns (a label, a video's
timestamp). ``ingest_items`` lists a source, samples it (before any download), fetches and checks
each kept image (type, size, decodable header, EXIF-oriented size), drops repeated content
(the same bytes under another name is reported as a duplicate, inferred once), and records
every failure as an error row.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prelabel.core.atomic import atomic_write_csv, csv_value
from prelabel.core.errors import PrelabelError, SourceError
from prelabel.core.failures import ErrorRow, Stage, failure_row, write_errors
from prelabel.core.images import DEFAULT_MAX_PIXELS, read_image_info
from prelabel.core.redact import redact
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.remote_videos import probe_source_video, video_fields
from prelabel.ingest.sampling import StratumCount, stratified_sample
from prelabel.ingest.sources import (
    RestSource,
    SourceItem,
    iter_image_files,
    iter_project,
    iter_rest,
    iter_s3,
    iter_url_list,
)

if TYPE_CHECKING:
    from prelabel.core.settings import Settings

__all__ = [
    "Duplicate",
    "IngestResult",
    "ManifestRow",
    "SourceSpec",
    "frames_dir_for",
    "ingest_items",
    "iter_source",
    "read_manifest",
    "write_ingest_report",
    "write_manifest",
]

_COLUMNS = ("uri", "name", "sha256", "width", "height")
_VIDEOS_AT_ONCE = 4  # whole videos checked at a time (each copied to disk when remote)


@dataclass(frozen=True)
class ManifestRow:
    """One image of a manifest."""

    uri: str
    name: str
    sha256: str = ""
    width: int = 0
    height: int = 0
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Duplicate:
    """An image whose bytes another kept image already has, or a URI listed twice."""

    uri: str
    duplicate_of: str
    sha256: str
    reason: str = "same bytes"


@dataclass
class IngestResult:
    """The kept rows (source order), failures, duplicates, and the sample's strata."""

    rows: list[ManifestRow] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    strata: list[StratumCount] = field(default_factory=list)
    listed: int = 0


@dataclass(frozen=True)
class SourceSpec:
    """What ``prelabel ingest --source`` names, and how to read it."""

    source: str
    video_fps: float | None = None
    frames_dir: str | None = None
    url_column: str = "url"
    url_path: str = "items[].image_url"
    label_path: str | None = None
    page_size: int = 100
    max_items: int | None = None
    videos: bool = False  # videos kept whole: a row per video (for video projects), not frames


def iter_source(spec: SourceSpec, fetcher: Fetcher, settings: Settings | None = None) -> Iterator[SourceItem]:
    """The items of a folder, ``s3://`` prefix, ``.txt``/``.csv`` URL list, paged REST endpoint,
    Label Studio project (``ls://ID``), or video file/folder (frames written to ``frames_dir``)."""
    source = spec.source
    if spec.videos:
        yield from _whole_videos(spec, fetcher, settings)
        return
    if source.startswith("ls://"):
        from prelabel.core.settings import load_settings

        yield from iter_project(source, settings or load_settings())
        return
    if source.startswith("s3://"):
        yield from iter_s3(source, settings)
        return
    if source.startswith(("http://", "https://")):
        rest = RestSource(source, spec.url_path, spec.label_path, spec.page_size, spec.max_items)
        yield from iter_rest(rest, fetcher)
        return
    from prelabel.ingest.video import VIDEO_SUFFIXES

    path = Path(source)
    if path.suffix.lower() in (".txt", ".csv"):
        yield from iter_url_list(path, spec.url_column)
    elif spec.video_fps is not None or path.suffix.lower() in VIDEO_SUFFIXES:
        yield from _video_items(path, spec.video_fps or 0.0, Path(spec.frames_dir or "frames"))
    else:
        yield from (SourceItem(str(p), p.name) for p in iter_image_files(path))


def _whole_videos(spec: SourceSpec, fetcher: Fetcher, settings: Settings | None) -> Iterator[SourceItem]:
    """The videos a source names, each an item of its own (a folder's or a prefix's video files,
    a URL list's or a REST endpoint's URLs)."""
    from prelabel.ingest.video import iter_video_files
    from prelabel.video.probe import VIDEO_SUFFIXES

    source = spec.source
    if source.startswith("ls://"):
        raise SourceError(f"{source}: videos come from a folder, an s3:// prefix or a list of URLs")
    if source.startswith("s3://"):
        yield from iter_s3(source, settings, VIDEO_SUFFIXES)
    elif source.startswith(("http://", "https://")):
        rest = RestSource(source, spec.url_path, spec.label_path, spec.page_size, spec.max_items)
        yield from iter_rest(rest, fetcher)
    elif Path(source).suffix.lower() in (".txt", ".csv"):
        yield from iter_url_list(source, spec.url_column)
    else:
        yield from (SourceItem(str(p), p.name) for p in iter_video_files(source))


def _video_items(source: Path, fps: float, frames: Path) -> Iterator[SourceItem]:
    """Every video's frames, each video in a folder of its own (``a/cam.mp4`` and ``b/cam.mp4``
    never share one); a video that cannot be read is one problem item, the others go on."""
    from prelabel.ingest.video import iter_video_files, iter_video_frames

    used: dict[str, Path] = {}
    for video in iter_video_files(source):
        relative = video.relative_to(source) if source.is_dir() else Path(video.name)
        stem = "_".join(relative.with_suffix("").parts)
        if stem in used:
            yield SourceItem(
                str(video), video.name, problem=f"its frames would clash with those of {used[stem]}"
            )
            continue
        used[stem] = video
        try:
            yield from iter_video_frames(video, fps, frames / stem, prefix=stem)
        except SourceError as exc:
            yield SourceItem(str(video), video.name, problem=str(exc))


def ingest_items(
    items: Iterable[SourceItem],
    fetcher: Fetcher,
    *,
    sample: int | None = None,
    stratify_by: str | None = None,
    equal: bool = False,
    seed: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[int], None] | None = None,
    videos: bool = False,
) -> IngestResult:
    """List -> sample -> fetch and check -> drop duplicates; see the module docstring. With
    ``videos`` each item is a whole video, probed (a remote one from a copy deleted after)."""
    result = IngestResult()
    items = _usable(items, result)
    if sample is not None:
        key = None
        if stratify_by is not None:
            key = _stratum_of(stratify_by)
        drawn = stratified_sample(items, sample, key, equal=equal, seed=seed)
        kept, result.strata = drawn.items, drawn.strata
        result.listed = sum(s.available for s in drawn.strata)
    else:
        kept = list(items)
        result.listed = len(kept)
    order: dict[str, int] = {}
    by_uri: dict[str, SourceItem] = {}
    for item in kept:
        if item.uri in by_uri:  # listed again: the first listing (and its columns) is kept
            result.duplicates.append(Duplicate(item.uri, item.uri, "", "listed again"))
            continue
        order[item.uri], by_uri[item.uri] = len(order), item
    found: dict[str, ManifestRow] = {}
    lock = threading.Lock()

    def check(uri: str, outcome: bytes | SourceError) -> None:
        item = by_uri[uri]
        try:
            if isinstance(outcome, SourceError):
                raise outcome
            if videos:
                video = probe_source_video(uri, fetcher)
                info = (video.sha256, video.width, video.height)
                fields = {**item.fields, **video_fields(video)}
            else:
                image = read_image_info(outcome, item.name, max_pixels)
                info, fields = (image.sha256, image.width, image.height), dict(item.fields)
        except PrelabelError as exc:
            row = failure_row(uri, Stage.INGEST, exc)
            with lock:
                result.errors.append(row)
            return
        with lock:
            found[uri] = ManifestRow(uri, item.name, *info, fields)
            if progress is not None:
                progress(1)

    if videos:  # a few at a time: each may be gigabytes on its way through this machine's disk
        with ThreadPoolExecutor(_VIDEOS_AT_ONCE) as pool:
            list(pool.map(lambda uri: check(uri, b""), by_uri))
    else:
        fetcher.fetch(by_uri, check)
    first: dict[str, str] = {}
    for uri in sorted(found, key=order.__getitem__):
        row = found[uri]
        if row.sha256 in first:
            result.duplicates.append(Duplicate(uri, first[row.sha256], row.sha256, "same bytes"))
            continue
        first[row.sha256] = uri
        result.rows.append(row)
    result.errors.sort(key=lambda e: order.get(e.file, 0))
    return result


def _usable(items: Iterable[SourceItem], result: IngestResult) -> Iterator[SourceItem]:
    """The items a source could give; each problem item becomes an error row on the way."""
    for item in items:
        if item.problem is None:
            yield item
        else:
            result.errors.append(
                failure_row(item.uri, Stage.INGEST, SourceError(f"{item.uri}: {item.problem}"))
            )


def _stratum_of(column: str) -> Callable[[SourceItem], str]:
    def stratum(item: SourceItem) -> str:
        if column not in item.fields:
            raise SourceError(f"{item.uri}: no {column!r} column to stratify by (has {sorted(item.fields)})")
        return item.fields[column]

    return stratum


def frames_dir_for(manifest: str | Path, frames_dir: str | None = None) -> str:
    """Where a source's video frames go: as given, else ``<manifest stem>_frames`` beside it."""
    path = Path(manifest)
    return frames_dir or str(path.parent / f"{path.stem}_frames")


def write_manifest(path: str | Path, rows: Sequence[ManifestRow]) -> Path:
    """Write ``rows`` as CSV: the fixed columns, then every extra column seen."""
    target = Path(path)
    extra = list(dict.fromkeys(k for row in rows for k in row.fields if k not in _COLUMNS))
    lines = (
        [r.uri, r.name, r.sha256, r.width, r.height, *(r.fields.get(k, "") for k in extra)] for r in rows
    )
    atomic_write_csv(target, [*_COLUMNS, *extra], lines)
    return target


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Rows of a manifest CSV; only ``uri`` is required (a plain list of images works)."""
    source = Path(path)
    if not source.is_file():
        raise SourceError(f"{source}: no such manifest")
    rows = []
    line = 1
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "uri" not in (reader.fieldnames or []):
                raise SourceError(f"{source}: a manifest needs a 'uri' column (columns: {reader.fieldnames})")
            for line, raw in enumerate(reader, start=2):
                rows.append(_manifest_row(raw, f"{source}, line {line}"))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise SourceError(f"{source}, line {line + 1}: not a readable CSV manifest ({exc})") from exc
    return rows


def _manifest_row(raw: Mapping[str | None, str | None], where: str) -> ManifestRow:
    record = {k: csv_value(v or "") for k, v in raw.items() if isinstance(k, str)}
    uri = record.get("uri", "").strip()
    if not uri:
        raise SourceError(f"{where}: empty uri")
    size = (record.get("width") or "0", record.get("height") or "0")
    if not all(v.isdigit() and len(v) <= 6 for v in size):
        raise SourceError(
            f"{where}: width/height must be whole numbers of pixels, got {size[0][:20]}/{size[1][:20]}"
        )
    extra = {k: v for k, v in record.items() if k and k not in _COLUMNS}
    name = record.get("name") or Path(uri).name
    return ManifestRow(uri, name, record.get("sha256", ""), int(size[0]), int(size[1]), extra)


def write_ingest_report(manifest: Path, result: IngestResult) -> dict[str, str]:
    """Errors, duplicates and strata counts as CSVs beside the manifest; their paths by kind."""
    stem, folder = manifest.stem, manifest.parent
    files = {"errors": folder / f"{stem}_errors.csv", "duplicates": folder / f"{stem}_duplicates.csv"}
    write_errors(files["errors"], result.errors)
    duplicates = ([redact(d.uri), redact(d.duplicate_of), d.sha256, d.reason] for d in result.duplicates)
    atomic_write_csv(files["duplicates"], ["uri", "duplicate_of", "sha256", "reason"], duplicates)
    if result.strata:
        files["strata"] = folder / f"{stem}_strata.csv"
        strata = ([s.stratum, s.available, s.sampled] for s in result.strata)
        atomic_write_csv(files["strata"], ["stratum", "available", "sampled"], strata)
    return {kind: str(path) for kind, path in files.items()}
