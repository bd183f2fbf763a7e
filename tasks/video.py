"""Tasks of the video pipeline: probe the videos, track a batch of them, post their tracks."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow, Stage, failure_row
from prelabel.labelstudio.client import Project
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.posting import PostReport, post_predictions
from prelabel.predict.videos import TrackedBatch, VideoPredictions, probe_all, track_videos, video_predictions
from prelabel.store.cache import PredictionCache
from prelabel.video.probe import VideoInfo
from prelabel.video.tracks import VideoTracks
from tasks.common import RETRY, LabelStudioConnection
from tasks.inference import api_guard, model_for

__all__ = ["post_tracks", "probe_videos", "track_batch"]


@task(name="probe-videos", cache_policy=NO_CACHE)
def probe_videos(uris: Sequence[str]) -> tuple[dict[str, VideoInfo], list[ErrorRow]]:
    """Frame times, size and content hash of every video (packets only: no frame is decoded)."""
    return probe_all(uris)


@task(name="track-videos", cache_policy=NO_CACHE, **RETRY)
def track_batch(
    videos: Mapping[str, VideoInfo],
    model: str,
    model_options: Mapping[str, Any],
    cache: PredictionCache | None,
    refresh: bool,
) -> TrackedBatch:
    """Tracks of a batch of whole videos, through the cache."""
    from prelabel.predict.models.video import VideoModel

    adapter = model_for(model, model_options)
    if not isinstance(adapter, VideoModel):
        raise PrelabelError(f"model {model!r} does not track videos")
    detector = adapter.image_model()
    with api_guard(detector) if detector else contextlib.nullcontext():
        return track_videos(videos, adapter, cache, refresh)


@task(name="post-tracks", cache_policy=NO_CACHE, **RETRY)
def post_tracks(
    connection: LabelStudioConnection,
    project: Project,
    tracked: Mapping[str, VideoTracks],
    videos: Mapping[str, VideoInfo],
    tasks: Mapping[str, tuple[int, Mapping[str, Any]]],
    versions: Mapping[int, frozenset[str]],
    label_map: LabelMap,
    model_version: str,
    *,
    min_iou: float,
    overwrite: bool,
    dry_run: bool,
    chunk_size: int,
) -> tuple[VideoPredictions, PostReport]:
    """A region per track, one prediction per video task, posted exactly once per model version
    (``prelabel.labelstudio.posting``, as images are)."""
    from prefect.runtime import task_run

    built = video_predictions(tracked, videos, tasks, project.config, label_map, min_iou)
    with connection.client() as client:
        report = post_predictions(
            client,
            project.id,
            built.predictions,
            model_version,
            versions,
            overwrite=overwrite,
            chunk_size=chunk_size,
            dry_run=dry_run,
            recheck=task_run.run_count > 1,
        )
    for task_id, reason in report.refused.items():
        refused = PrelabelError(f"Label Studio refused the prediction: {reason}")
        built.errors.append(failure_row(built.names[task_id], Stage.POST, refused))
    return built, report
