"""The video pipeline's steps, free of Prefect: collect -> probe -> track (through the cache) -> regions.

``flows/video.py`` composes them; a video is the unit (a task run tracks a batch of whole
videos; a shard is a list of videos). A failing video is an error row, never a failed batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prelabel.core.errors import DetectionError, PrelabelError, SourceError
from prelabel.core.failures import ErrorRow, Stage, failure_row, item_failure
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.manifest import read_manifest
from prelabel.ingest.remote_videos import probe_source_video, video_file
from prelabel.ingest.sources import REMOTE_SCHEMES
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.models.video import VideoModel
from prelabel.store.cache import PredictionCache
from prelabel.video.cache import get_tracks, put_tracks
from prelabel.video.probe import VIDEO_SUFFIXES, VideoInfo, no_videos
from prelabel.video.regions import track_regions
from prelabel.video.timeline import frames_count, ls_frame_rate, shown_frames
from prelabel.video.tracks import VideoTracks

__all__ = [
    "TrackedBatch",
    "VideoPredictions",
    "collect_videos",
    "probe_all",
    "task_fields",
    "track_videos",
    "video_predictions",
]


def collect_videos(input_dir: str | None, manifest: str | None) -> list[str]:
    """The videos of a run: a folder's video files (hidden ones skipped), or a manifest's URIs
    (local paths, ``s3://`` keys, http(s) URLs)."""
    if manifest is not None:
        return [row.uri for row in read_manifest(manifest)]
    if input_dir is None:
        raise SourceError("give a folder of videos or a manifest")
    base = Path(input_dir)
    videos = [
        str(p)
        for p in sorted(base.rglob("*"))
        if p.suffix.lower() in VIDEO_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(base).parts)
    ]
    if not videos:
        raise no_videos(input_dir)
    return videos


def probe_all(
    uris: Sequence[str], fetcher: Fetcher | None = None
) -> tuple[dict[str, VideoInfo], list[ErrorRow]]:
    """Each video probed (``prelabel.video.probe``; a remote one from a copy deleted after); one
    that cannot be read is an error row."""
    found: dict[str, VideoInfo] = {}
    errors: list[ErrorRow] = []
    for uri in uris:
        with item_failure(errors, uri, Stage.READ):
            if fetcher is None and uri.startswith(REMOTE_SCHEMES):
                from prelabel.core.settings import load_settings

                fetcher = Fetcher(load_settings())  # S3's endpoint and keys
            found[uri] = probe_source_video(uri, fetcher or Fetcher())
    return found, errors


def task_fields(info: VideoInfo) -> dict[str, str]:
    """What a new video task's data carries beside the video: its rate (the ``<Video frameRate="$fps">``
    of ``project create --video``) and size (``pull --format mot`` turns percent into pixels)."""
    return {"fps": f"{info.rate:.6g}", "width": str(info.width), "height": str(info.height)}


@dataclass
class TrackedBatch:
    """Tracks of a batch of videos by URI, its error rows, and where the tracks came from."""

    tracks: dict[str, VideoTracks] = field(default_factory=dict)
    errors: list[ErrorRow] = field(default_factory=list)
    cached: int = 0
    inferred: int = 0


def track_videos(
    videos: Mapping[str, VideoInfo],
    model: VideoModel,
    cache: PredictionCache | None,
    refresh: bool = False,
    fetcher: Fetcher | None = None,
) -> TrackedBatch:
    """Tracks from the cache where present, else from the model (then cached; a remote video
    from a copy deleted after); the same bytes under two names are tracked once."""
    out = TrackedBatch()
    signature = model.signature()
    done: dict[str, VideoTracks] = {}
    for uri, info in videos.items():
        known = done.get(info.sha256)
        if known is None and cache is not None and not refresh:
            known = get_tracks(cache, info.sha256, signature)
        if known is not None:
            out.tracks[uri], out.cached = known, out.cached + 1
            continue
        try:  # as the cache gives it back (boxes and scores rounded): a rerun posts the same numbers
            with video_file(info, fetcher) as local:
                found = VideoTracks.from_json(model.track(local).to_json(), uri)
        except (SourceError, DetectionError) as exc:  # this video's frames or detections: its row
            out.errors.append(failure_row(uri, Stage.INFER, exc))
            continue
        if cache is not None:
            put_tracks(cache, info.sha256, signature, found)
        done[info.sha256] = out.tracks[uri] = found
        out.inferred += 1
    return out


@dataclass
class VideoPredictions:
    """Predictions by task id, with what the report counts."""

    predictions: dict[int, dict[str, Any]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    regions: int = 0
    keyframes: int = 0
    unmatched_labels: Counter[str] = field(default_factory=Counter)
    errors: list[ErrorRow] = field(default_factory=list)


def video_predictions(
    tracked: Mapping[str, VideoTracks],
    videos: Mapping[str, VideoInfo],
    tasks: Mapping[str, tuple[int, Mapping[str, Any]]],
    config: LabelConfig,
    label_map: LabelMap,
    min_iou: float = 0.9,
) -> VideoPredictions:
    """One prediction per video task (``tasks``: URI -> task id and data): a region per track on
    the frames Label Studio counts at the task's frame rate."""
    out = VideoPredictions()
    video = config.video
    for uri, found in tracked.items():
        task_id, data = tasks[uri]
        info = videos[uri]
        with item_failure(out.errors, uri, Stage.CONVERT) as attempt:
            rate = ls_frame_rate(video, data)
            shown = shown_frames(info.times, rate, frames_count(info.duration, rate))
            try:
                regions = track_regions(found, shown, rate, info.duration, config, label_map, min_iou)
            except ValueError as exc:
                raise PrelabelError(str(exc)) from exc
        if attempt.failed:
            continue
        out.predictions[task_id] = {"result": regions.results, "score": regions.score}
        out.names[task_id] = Path(uri).name
        out.regions += len(regions.results)
        out.keyframes += regions.keyframes
        out.unmatched_labels.update(regions.unmatched_labels)
    return out
