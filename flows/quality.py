"""``quality``: how good a model version's predictions were, against what people kept."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.common import connection
from flows.params import QualityParams
from prelabel.quality import QualitySummary
from prelabel.quality.tracks import TrackQuality, is_video_project
from tasks.labelstudio import load_project
from tasks.quality import measure, measure_videos, write_quality_report, write_track_report

__all__ = ["quality"]


@flow(name="quality", log_prints=False)
def quality(params: QualityParams) -> QualitySummary | TrackQuality:
    """Measure the version's predictions against the latest annotations, then report; a video
    project's are tracks (per label MOTA, IDF1, HOTA)."""
    _, ls = connection(params)
    if is_video_project(load_project(ls, params.project_id).config):
        tracks, errors = measure_videos(ls, params.project_id, params.model_version, params.iou_threshold)
        return write_track_report(Path(params.output_dir), tracks, errors)
    report, pairs = measure(
        ls, params.project_id, params.model_version, params.iou_threshold, params.keypoint_tolerance
    )
    return write_quality_report(Path(params.output_dir), report, pairs)
